"""Every real-dataset reader on its tiny fixture folder (tests/fixtures/<dataset>, published layouts)."""

import pickle
from pathlib import Path

import numpy as np
import pytest

from data_builders.readers import READERS, LayoutError, build_reader
from data_builders.readers.refer import load_data_pickle

FIXTURES = Path(__file__).parent / "fixtures"
BOX = (slice(8, 16), slice(6, 26))


def expected_box(h=24, w=32):
    mask = np.zeros((h, w), bool)
    mask[BOX] = True
    return mask


def test_textseg_foreground_is_100_only_and_faults_are_reported():
    reader = build_reader("textseg", root=FIXTURES / "textseg")
    train = list(reader.records("train"))
    assert [r.source_id for r in train] == ["textseg/train/a00001", "textseg/train/a00002"]
    rec = train[0]
    assert np.array_equal(rec.mask, expected_box())  # 200 (effect) row and 255 row are not foreground
    assert rec.ignore[16, 6:26].all() and rec.ignore.sum() == 20
    assert rec.attributes["effect_pixels"] == 20 and rec.image.shape == (24, 32, 3)
    test = list(reader.records("test"))
    assert [r.source_id for r in test] == ["textseg/test/a00006"]
    assert reader.report.counts == {"missing": 1, "size mismatch": 1}
    assert any(p.path.endswith("a00004_maskfg.png") for p in reader.report.problems)


def test_totaltext_upper_case_suffix_threshold_and_faults():
    reader = build_reader("totaltext", root=FIXTURES / "totaltext")
    train = list(reader.records("train"))
    assert [r.source_id for r in train] == ["totaltext/train/img1", "totaltext/train/img2"]  # img2 GT is .JPG
    for rec in train:
        assert np.array_equal(rec.mask, expected_box())  # JPEG GT binarised at > 127
    test = list(reader.records("test"))
    assert [r.source_id for r in test] == ["totaltext/test/img3"]
    assert reader.report.counts == {"missing": 1, "unreadable": 1}
    assert {Path(p.path).stem for p in reader.report.problems} == {"img4", "img5"}


def test_icdar13_non_white_pixels_are_text_in_both_gt_namings():
    reader = build_reader("icdar13", root=FIXTURES / "icdar13")
    for split, stem in (("train", "100"), ("test", "img_1")):
        (rec,) = list(reader.records(split))
        assert rec.source_id == f"icdar13/{split}/{stem}"
        assert np.array_equal(rec.mask, expected_box())
    assert reader.report.problems == []


def test_hiertext_rasterises_legible_words_and_ignores_illegible():
    reader = build_reader("hiertext", root=FIXTURES / "hiertext")
    (rec,) = list(reader.records("train"))
    assert rec.attributes["words"] == ["AB", "CD"]
    # Word polygons span x 6..25, y 8..15 (skimage fills the closed polygon, vertices included).
    assert rec.mask[8:16, 6:26].all() and rec.mask.sum() == 8 * 20
    assert rec.ignore[18:23, 2:9].all() and not (rec.ignore & rec.mask).any()
    (val,) = list(reader.records("validation"))  # gzip-compressed GT
    assert np.array_equal(val.mask, rec.mask)
    lines = build_reader("hiertext", root=FIXTURES / "hiertext", level="line")
    (line_rec,) = list(lines.records("train"))
    assert np.array_equal(line_rec.mask, rec.mask)


def test_refcoco_polygon_and_rle_masks_one_record_per_sentence():
    reader = build_reader("refcoco", root=FIXTURES / "refcoco")
    train = list(reader.records("train"))
    assert [r.text for r in train] == ["yellow sign", "the sign in the middle", "top left patch"]
    assert train[0].task == "referring" and train[0].source_id == "refcoco/train/0/0"
    assert train[0].mask[9:15, 7:25].all() and not train[0].mask[0:5].any()  # polygon
    patch = np.zeros((24, 32), bool)
    patch[2:6, 2:10] = True
    assert np.array_equal(train[2].mask, patch)  # compressed RLE
    (val,) = list(reader.records("val"))
    assert np.array_equal(val.mask, expected_box())  # uncompressed RLE
    test_a = list(reader.records("testA"))
    assert [r.text for r in test_a] == ["a patch"]
    assert reader.report.counts == {"unknown annotation": 1}


def test_grefcoco_multi_target_and_no_target():
    reader = build_reader("grefcoco", root=FIXTURES / "grefcoco")
    both, nothing = list(reader.records("train"))
    assert both.text == "both things" and len(both.instance_masks) == 2
    assert both.mask.sum() == both.instance_masks[0].sum() + both.instance_masks[1].sum()
    assert nothing.attributes["no_target"] and not nothing.mask.any() and nothing.mask.shape == (24, 32)
    assert reader.report.problems == []


def test_cocostuff_label_map_names_and_unknown_values():
    reader = build_reader("cocostuff", root=FIXTURES / "cocostuff")
    (rec,) = list(reader.records("val2017"))
    assert rec.task == "semantic" and rec.mask is None
    assert (
        rec.class_names[0] == "person"
        and rec.class_names[123] == "grass"
        and rec.class_names[156] == "sky-other"
    )
    assert rec.label_map[10, 10] == 0 and rec.label_map[0, 0] == 156 and rec.label_map[20, 0] == 123
    assert rec.text == "person|grass|sky-other"
    assert list(reader.records("train2017")) == []
    assert reader.report.counts == {"unknown label values": 1}


@pytest.mark.parametrize("name", sorted(READERS))
def test_wrong_root_raises_one_clear_layout_error(name, tmp_path):
    (tmp_path / "unrelated.txt").write_text("x")
    with pytest.raises(LayoutError, match=r"Expected layout:\n") as info:
        build_reader(name, root=tmp_path)
    assert str(tmp_path) in str(info.value)


def test_restricted_unpickler_refuses_code(tmp_path):
    class Boom:
        def __reduce__(self):
            return (print, ("should never run",))

    path = tmp_path / "refs(unc).p"
    path.write_bytes(pickle.dumps([{"ref_id": 0, "payload": Boom()}], protocol=2))
    with pytest.raises(pickle.UnpicklingError, match=r"refusing global .*print"):
        load_data_pickle(path)
    ok = tmp_path / "ok.p"
    ok.write_bytes(pickle.dumps([{"a": {1, 2}, "b": (1.5, None, "x")}], protocol=2))
    assert load_data_pickle(ok) == [{"a": {1, 2}, "b": (1.5, None, "x")}]
    text_protocol = tmp_path / "p0.p"  # the published REFER files are Python 2 protocol-0 pickles
    text_protocol.write_bytes(pickle.dumps([{"sent": "man left", "ref_id": 3}], protocol=0))
    assert load_data_pickle(text_protocol) == [{"sent": "man left", "ref_id": 3}]


def test_records_convert_to_arrow_dataset():
    reader = build_reader("textseg", root=FIXTURES / "textseg")
    data = reader.to_dataset("train")
    assert len(data) == 2 and data[0]["task"] == "scene_text"
    assert np.array_equal(np.asarray(data[0]["mask"]) > 127, expected_box())
    semantic = build_reader("cocostuff", root=FIXTURES / "cocostuff").to_dataset("val2017")
    assert np.asarray(semantic[0]["mask"])[0, 0] == 156
