"""``text4seg eval`` per expression kind: ``by_kind`` and gRefCOCO's N-acc / T-acc computed by hand on
hand-made masks, the overall figures untouched, the CSV column and printed table, and a 2-shard run
giving the same ``by_kind`` as one process."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pipeline_support import tiny_checkpoints

from text4seg.app.cli import main
from text4seg.app.evaluation.records import read_records
from text4seg.app.evaluation.report import compute_report, metrics_only
from text4seg.app.evaluation.samples import EvalSample
from text4seg.app.evaluation.scoring import score_sample
from text4seg.core.metrics import RecMeter, ReferringMeter

torch.set_num_threads(1)
FIXTURES = Path(__file__).parent / "fixtures"
NEW_KEYS = {"by_kind", *(f"{s}.{k}" for s in ("coarse", "refined", "oracle") for k in ("N-acc", "T-acc"))}


class _Result:
    def __init__(self, coarse, refined):
        self._coarse, self._refined = coarse, refined
        self.grid = [["others"] * 2] * 2

    def mask(self, *, refined=True):
        return self._refined if refined else self._coarse


def _mask(*boxes):
    out = np.zeros((8, 8), bool)
    for y0, y1, x0, x1 in boxes:
        out[y0:y1, x0:x1] = True
    return out


# (query, ground truth, coarse prediction, refined prediction, dataset's target count)
SAMPLES = [
    ("the red word", _mask((0, 4, 0, 4)), _mask((0, 4, 0, 8)), _mask((0, 4, 0, 4)), 1),
    ("the word 'OPEN' at the top", _mask((0, 2, 4, 8)), _mask(), _mask((0, 2, 6, 8)), 1),
    ("the green word", _mask(), _mask((6, 8, 6, 8)), _mask(), 0),  # no target, refined right
    ("all the blue words", _mask(), _mask(), _mask((4, 6, 0, 4)), 0),  # no target, refined wrong
    ("the two signs", _mask((4, 8, 0, 2), (4, 8, 6, 8)), _mask((4, 8, 0, 8)), _mask((4, 8, 0, 2)), 2),
]


def _records():
    records = []
    for index, (query, gt, coarse, refined, n_targets) in enumerate(SAMPLES):
        sample = EvalSample(index, f"s{index}", np.zeros((8, 8, 3), np.uint8), gt, None, "referring", query,
                            n_targets)  # fmt: skip
        record = score_sample(sample, _Result(coarse, refined), grid=(2, 2), rule="nearest", threshold=0.5)
        record.update(index=index, id=f"s{index}", task="referring", query=query, parse_failed=False,
                      repairs=[], refined_called=True, seconds={"total": 1.0}, error=None)  # fmt: skip
        records.append(record)
    return records


def test_by_kind_and_target_accuracies_match_hand_computation():
    report = compute_report(_records())
    kinds = report["by_kind"]
    assert {k: v["n"] for k, v in kinds.items()} == {
        "colour": 3, "position": 1, "size": 0, "content": 1, "no-target": 2, "multi-target": 2, "other": 1,
    }  # fmt: skip
    # colour = samples 0, 2, 3. Refined: I 16+0+0, U 16+0+8; IoUs 1, 1 (both empty), 0; boxes hit, hit, miss.
    assert kinds["colour"]["refined.cIoU"] == 16 / 24
    assert kinds["colour"]["refined.gIoU"] == pytest.approx(2 / 3)
    assert kinds["colour"]["refined.Acc@0.5"] == pytest.approx(2 / 3)
    # Coarse: I 16+0+0, U 32+4+0; IoUs 1/2, 0, 1; box IoU 1/2 is not > 0.5: miss, miss, hit.
    assert kinds["colour"]["coarse.cIoU"] == 16 / 36
    assert kinds["colour"]["coarse.gIoU"] == pytest.approx(1.5 / 3)
    assert kinds["colour"]["coarse.Acc@0.5"] == pytest.approx(1 / 3)
    # no-target = samples 2, 3: nothing to intersect, so cIoU is 0 once a prediction is not empty.
    assert kinds["no-target"]["refined.cIoU"] == 0.0 and kinds["no-target"]["refined.gIoU"] == 0.5
    assert kinds["no-target"]["refined.Acc@0.5"] == 0.5 == report["refined.N-acc"]
    assert report["coarse.N-acc"] == 0.5 and report["oracle.N-acc"] == 1.0
    # content/position = sample 1: I 4, U 8; box IoU 1/2: a miss.
    assert kinds["content"]["refined.cIoU"] == kinds["position"]["refined.gIoU"] == 0.5
    assert kinds["content"]["refined.Acc@0.5"] == 0.0
    assert kinds["content"]["coarse.cIoU"] == 0.0 and report["coarse.T-acc"] == 2 / 3
    # multi-target = sample 3 (the text) and 4 (the dataset's two targets): I 0+8, U 8+16.
    assert kinds["multi-target"]["refined.cIoU"] == 8 / 24
    assert kinds["multi-target"]["refined.gIoU"] == pytest.approx(0.25)
    assert kinds["other"]["refined.gIoU"] == 0.5 and report["refined.T-acc"] == 1.0
    assert kinds["size"] == {"n": 0, **{k: None for k in kinds["colour"] if k != "n"}}


def test_overall_figures_are_those_of_the_plain_meters():
    """The overall keys are the ones the report had before kinds, with the values of meters fed every
    sample directly."""
    records = _records()
    report = compute_report(records)
    scene = compute_report([{**r, "task": "scene_text"} for r in records])
    assert set(report) - set(scene) == NEW_KEYS
    assert {k: v for k, v in report.items() if k not in NEW_KEYS | {"tasks"}} == {
        k: v for k, v in scene.items() if k != "tasks"
    }
    for source, column in (("coarse", 2), ("refined", 3)):
        referring, rec = ReferringMeter(), RecMeter()
        for sample in SAMPLES:
            referring.update(sample[column], sample[1])
            rec.update(sample[column], sample[1])
        assert report[f"{source}.cIoU"] == referring.result()["cIoU"]
        assert report[f"{source}.gIoU"] == referring.result()["gIoU"]
        assert report[f"{source}.Acc@0.5"] == rec.result()["Acc@0.5"]


def test_records_written_before_kinds_still_merge():
    """An older record has no kinds: they come from its query and ground truth (no target count)."""
    records = _records()
    old = compute_report([{k: v for k, v in r.items() if k != "kinds"} for r in records])
    new = compute_report(records)
    assert old["by_kind"]["multi-target"]["n"] == 1 and new["by_kind"]["multi-target"]["n"] == 2
    assert {k: v for k, v in old.items() if k != "by_kind"} == {
        k: v for k, v in new.items() if k != "by_kind"
    }


def _eval(dataset, split, out, *extra):
    ckpt = tiny_checkpoints()
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["eval", "--dataset", dataset, "--root", str(FIXTURES / dataset), "--split", split,
                     "--out", str(out), "--model", str(ckpt.mllm), "--refiner", str(ckpt.refiner),
                     "--grid", "4", "--threads", "1", *extra])  # fmt: skip
    assert code == 0
    return buffer.getvalue()


def test_grefcoco_eval_records_prints_and_reports_kinds(tmp_path):
    printed = _eval("grefcoco", "Train", tmp_path)
    report = json.loads(printed.strip().splitlines()[-1])
    assert [r["kinds"] for r in read_records(tmp_path)] == [["multi-target"], ["no-target", "other"]]
    rows = list(csv.DictReader(open(tmp_path / "per_image.csv")))
    assert [r["kinds"] for r in rows] == ["multi-target", "no-target+other"]
    kinds = report["by_kind"]
    assert kinds["no-target"]["n"] == kinds["multi-target"]["n"] == 1 and kinds["colour"]["n"] == 0
    assert kinds["no-target"]["refined.gIoU"] == report["refined.N-acc"]
    table = printed.split("{")[0]
    assert "multi-target" in table and "refined.N-acc" in table
    assert [line.split()[0] for line in table.splitlines() if line.startswith("no-target")] == ["no-target"]


def test_scene_text_reports_have_no_kinds(tmp_path):
    printed = _eval("icdar13", "Test", tmp_path)
    report = json.loads(printed.strip().splitlines()[-1])
    assert not set(report) & NEW_KEYS and "no-target" not in printed
    assert [r["kinds"] for r in csv.DictReader(open(tmp_path / "per_image.csv"))] == [""]


@pytest.mark.parametrize(("dataset", "split"), [("refcoco", "train"), ("grefcoco", "Train")])
def test_two_shards_give_the_by_kind_of_one_process(tmp_path, monkeypatch, dataset, split):
    """Shard 1 of 2 runs first and marks itself done; shard 0 then runs and merges (the file barrier
    torchrun's two processes meet at)."""
    one = json.loads(_eval(dataset, split, tmp_path / "one").strip().splitlines()[-1])
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    _eval(dataset, split, tmp_path / "two")
    monkeypatch.setenv("RANK", "0")
    two = json.loads(_eval(dataset, split, tmp_path / "two").strip().splitlines()[-1])
    shard_1 = (tmp_path / "two" / "records" / "rank-1.jsonl").read_text().splitlines()
    assert [json.loads(line)["index"] for line in shard_1] == [1]
    assert two["by_kind"] == one["by_kind"] and metrics_only(two) == metrics_only(one)
