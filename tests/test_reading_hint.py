"""benchmarks/reading_hint.py: how often the reading hint lands on a referring expression's target."""

import json

import numpy as np
import pytest

from benchmarks import reading_hint


def _target() -> np.ndarray:
    target = np.zeros((40, 60), bool)
    target[10:20, 10:30] = True  # 200 stroke pixels
    return target


def test_a_hint_hits_when_it_covers_the_target_without_spilling_far():
    target = _target()
    box = np.zeros(target.shape, np.uint8)
    box[8:22, 8:32] = 255  # the word's box: around the strokes, inside the 4 px margin
    assert reading_hint.hint_hits(box, target)
    half = np.zeros_like(box)
    half[10:20, 10:19] = 255  # 90 of 200 pixels: under half
    assert not reading_hint.hint_hits(half, target)
    wide = box.copy()
    wide[:, 35:] = 255  # the target and a larger region elsewhere
    assert not reading_hint.hint_hits(wide, target)


def test_a_no_target_expression_is_hit_only_by_an_empty_hint():
    empty = np.zeros((40, 60), bool)
    assert reading_hint.hint_hits(np.zeros((40, 60), np.uint8), empty)
    some = np.zeros((40, 60), np.uint8)
    some[0, 0] = 255
    assert not reading_hint.hint_hits(some, empty)


@pytest.mark.parametrize(
    ("text", "present", "kind"),
    [
        ("the text that says 'OPEN'", True, "content"),
        ("the red word 'OPEN'", True, "content"),  # content before colour
        ("the text coloured red", True, "colour"),
        ("the top left text", True, "position"),
        ("the largest text", True, "size"),
        ("the text coloured green", False, "no-target"),
    ],
)
def test_expressions_are_counted_under_one_kind(text, present, kind):
    target = _target() if present else np.zeros((40, 60), bool)
    assert reading_hint.kind_of(text, target) == kind


def test_the_benchmark_runs_on_a_referring_export_and_ends_with_its_figures(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    from data_builders.synthetic import SyntheticConfig
    from data_builders.synthetic.build import build
    from data_builders.synthetic.refer_export import export

    cfg = SyntheticConfig(size=128, p_no_text=0.0, max_instances=3, phrasings="heldout")
    list(build(cfg, n=3, out=tmp_path / "arrow", seed=5, workers=1))
    export(tmp_path / "arrow", tmp_path / "layout", split="val")
    reading_hint.main(["--root", str(tmp_path / "layout"), "--min-sides", "none,256"])
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for row in ("min_side_none", "min_side_256"):
        assert 0.0 <= figures[row]["hit_rate"] <= 1.0
        assert figures[row]["hinted"] == sum(v for k, v in figures[row].items() if k.endswith(".n"))
    assert figures["expressions"] >= figures["min_side_none"]["hinted"] > 0


def test_reader_settings_parse_and_refuse_unknown_suffixes():
    views = {"full_view": False, "native_view": False, "orientation": None}
    assert reading_hint.reader_setting("none") == {"min_side": None, **views}
    assert reading_hint.reader_setting("512") == {"min_side": 512, **views}
    assert reading_hint.reader_setting("512+full") == {"min_side": 512, **views, "full_view": True}
    assert reading_hint.reader_setting("512+native+full/0.45") == {
        "min_side": 512,
        "full_view": True,
        "native_view": True,
        "orientation": None,
        "box_threshold": 0.45,
    }
    assert reading_hint.reader_setting("512+upright")["orientation"] == "ppocrv5"
    with pytest.raises(ValueError, match="\\+native and/or \\+upright"):
        reading_hint.reader_setting("512+half")
    with pytest.raises(ValueError, match="\\+native and/or \\+upright"):
        reading_hint.reader_setting("512+full+full")
