"""The ICDAR 2015 reader on the real toy photos and on hand-made folders with faults."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_builders.readers import LayoutError
from data_builders.readers.icdar15 import Icdar15Reader, parse_gt

TOY = Path(__file__).parent / "fixtures" / "real_photos" / "icdar2015_toy"


def test_toy_photos_read_in_natural_order_with_their_words():
    reader = Icdar15Reader(root=TOY)
    assert reader.splits == ("test",)
    photos = list(reader.photos("test"))
    assert [p.source_id for p in photos] == [f"icdar15/test/img_{i}" for i in range(1, 11)]
    assert reader.report.problems == []
    first = photos[0]  # gt_img_1.txt starts with a byte-order mark
    assert first.words[0].text == "Genaxis Theatre" and not first.words[0].dont_care
    np.testing.assert_array_equal(first.polygons[0], [[377, 117], [463, 117], [465, 130], [378, 130]])
    assert first.dont_care == [False, False, True, False, False, True, True]
    assert sum(len(p.words) for p in photos) == 82
    assert sum(w.dont_care for p in photos for w in p.words) == 61


def test_records_mask_cared_for_quads_and_ignore_dont_care_quads():
    reader = Icdar15Reader(root=TOY)
    rec = next(iter(reader.records("test")))
    assert rec.image.shape == (720, 1280, 3) and rec.mask.shape == (720, 1280)
    assert rec.mask[123, 420] and not rec.mask[0, 0]  # inside "Genaxis Theatre"
    assert rec.ignore[160, 390] and not (rec.ignore & rec.mask).any()  # a ### quad
    assert rec.attributes["words"] == ["Genaxis Theatre", "[06]", "62-03", "Carpark"]


def test_parse_gt_keeps_commas_crlf_and_names_the_bad_line():
    words = parse_gt("\ufeff1,2,3,2,3,4,1,4,a,b\r\n\r\n5,5,6,5,6,6,5,6,###\r\n")
    assert [w.text for w in words] == ["a,b", "###"] and [w.dont_care for w in words] == [False, True]
    with pytest.raises(ValueError, match="line 2: non-numeric"):
        parse_gt("1,2,3,2,3,4,1,4,a\n1,2,x,2,3,4,1,4,b\n")


def _photo(folder: Path, stem: str, gt: str | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 12)).save(folder / f"{stem}.jpg")
    if gt is not None:
        (folder / f"gt_{stem}.txt").write_text(gt, encoding="utf-8")


def test_published_layout_and_faults_are_reported(tmp_path):
    images, gts = tmp_path / "ch4_training_images", tmp_path / "ch4_training_localization_transcription_gt"
    _photo(images, "img_1", None)
    gts.mkdir()
    (gts / "gt_img_1.txt").write_text("1,1,5,1,5,5,1,5,ok\n", encoding="utf-8")
    _photo(images, "img_2", None)  # no gt file
    (gts / "gt_img_3.txt").write_text("1,1,5,1,5,5,1,5,ok\n")  # no image
    (gts / "gt_img_4.txt").write_text("1,1,5,1\n")  # bad line
    _photo(images, "img_4", None)
    reader = Icdar15Reader(root=tmp_path)
    assert reader.splits == ("train",)
    assert [p.source_id for p in reader.photos("train")] == ["icdar15/train/img_1"]
    assert reader.report.counts == {"missing": 2, "bad annotation": 1}
    with pytest.raises(ValueError, match="split 'test'"):
        list(reader.photos("test"))


def test_nested_split_folders_and_wrong_root(tmp_path):
    _photo(tmp_path / "test", "a", "0,0,3,0,3,3,0,3,###\n")
    reader = Icdar15Reader(root=tmp_path)
    (photo,) = reader.photos("test")
    assert photo.dont_care == [True]
    with pytest.raises(LayoutError, match="ch4_training_images"):
        Icdar15Reader(root=tmp_path / "test" / "nothing")


def test_photo_records_pair_each_record_with_its_photo_reading_each_file_once(tmp_path):
    _photo(tmp_path, "img_1", "1,1,5,1,5,5,1,5,ok\n0,0,2,0,2,2,0,2,###\n")
    _photo(tmp_path, "img_2", "1,1,5,1\n")  # bad line
    _photo(tmp_path, "img_3", "2,2,6,2,6,6,2,6,yes\n")
    reader = Icdar15Reader(root=tmp_path)
    pairs = list(reader.photo_records("test"))
    assert [(p.source_id, r.source_id) for p, r in pairs] == [
        ("icdar15/test/img_1", "icdar15/test/img_1"),
        ("icdar15/test/img_3", "icdar15/test/img_3"),
    ]
    photo, record = pairs[0]
    assert photo.dont_care == [False, True] and record.attributes["words"] == ["ok"]
    assert reader.report.records == 2 and reader.report.counts == {"bad annotation": 1}
    plain = Icdar15Reader(root=tmp_path)
    assert [r.source_id for r in plain.records("test")] == [r.source_id for _, r in pairs]
    assert plain.report.counts == {"bad annotation": 1}
