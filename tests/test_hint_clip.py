"""benchmarks/hint_clip.py: a hinted query's refined mask clipped to its hint, and where answers sit."""

import json

import numpy as np
import pytest

from benchmarks import hint_clip


def test_the_row_shift_that_best_fits_the_target():
    truth = np.zeros((8, 8), bool)
    truth[5, 2:6] = True
    answer = np.zeros((8, 8), bool)
    answer[4, 2:6] = True  # one row too high: moved down by one it fits
    assert hint_clip.best_row_shift(answer, truth) == 1
    assert hint_clip.best_row_shift(truth, truth) == 0
    answer[:] = False
    answer[7, 2:6] = True  # two rows too low
    assert hint_clip.best_row_shift(answer, truth) == -2
    assert hint_clip.best_row_shift(np.zeros((8, 8), bool), truth) is None
    wide = np.zeros((8, 8), bool)
    wide[4:7, 2:6] = True  # covers the target unshifted: ties go to no shift
    assert hint_clip.best_row_shift(wide, truth) == 0


def test_the_scores_follow_text4seg_eval():
    scores = hint_clip.Scores()
    gt = np.zeros((4, 4), bool)
    gt[:2] = True
    scores.add(gt, gt)  # IoU 1
    scores.add(np.zeros((4, 4), bool), np.zeros((4, 4), bool))  # no target, empty answer: 1
    scores.add(np.ones((4, 4), bool), gt)  # IoU 0.5; boxes 0.5 too: not above it, a miss
    assert scores.figures() == {
        "cIoU": round(16 / 24, 4),
        "gIoU": round(2.5 / 3, 4),
        "acc50": round(2 / 3, 4),
        "n": 3,
    }


def test_pixel_settings_refuse_negative_values():
    assert hint_clip.pixel_settings("0,4,8") == [0, 4, 8]
    with pytest.raises(ValueError, match="non-negative integers"):
        hint_clip.pixel_settings("4,-2")


def test_the_benchmark_runs_on_a_referring_export_and_ends_with_its_figures(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    from data_builders.synthetic import SyntheticConfig
    from data_builders.synthetic.build import build
    from data_builders.synthetic.refer_export import export

    cfg = SyntheticConfig(size=128, p_no_text=0.0, max_instances=3, phrasings="heldout")
    list(build(cfg, n=2, out=tmp_path / "arrow", seed=5, workers=1))
    export(tmp_path / "arrow", tmp_path / "layout", split="val")
    hint_clip.main(["--root", str(tmp_path / "layout"), "--pixels", "0,4", "--snaps", "0,1", "--limit", "3"])
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["expressions"] == 3 and 0 <= figures["hinted"] <= 3
    for setting in ("unclipped", "clip_0", "clip_4", "snap_1", "snap_1+clip_4"):
        assert figures[setting]["all"]["n"] == 3 and 0.0 <= figures[setting]["all"]["cIoU"] <= 1.0
    if figures["hinted"] == 0:  # nothing to clip: every setting scores the same masks
        assert figures["clip_0"]["all"] == figures["unclipped"]["all"] == figures["snap_1+clip_4"]["all"]
    if figures["hinted"]:
        assert set(figures["refine_seconds_per_hinted"]) == {"snap_0", "snap_1"}
    shifted = sum(sum(c.values()) for c in figures["answer_row_shift"].values())
    assert shifted <= 3
    groups = [figures["unclipped"].get(g, {}).get("n", 0) for g in hint_clip.HINT_GROUPS]
    present = 3 - figures["unclipped"].get("no-target", {}).get("n", 0)
    assert sum(groups) == present  # every present target in exactly one group


def test_hint_groups_split_present_targets_by_where_the_hint_lands():
    target = np.zeros((40, 60), bool)
    target[10:20, 10:30] = True
    on, off = np.zeros((40, 60), np.uint8), np.zeros((40, 60), np.uint8)
    on[8:22, 8:32] = 255
    off[30:38, 40:58] = 255
    assert hint_clip.hint_group(on, target) == "hint-on"
    assert hint_clip.hint_group(off, target) == "hint-off"
    assert hint_clip.hint_group(np.zeros_like(on), target) == "no-hint"
    assert hint_clip.hint_group(None, target) == "no-hint"
