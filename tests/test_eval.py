"""``text4seg eval``: a Total-Text-layout run prints coarse and refined fgIoU/F; a run killed with
SIGKILL and resumed equals an uninterrupted one; 2 torchrun processes equal 1 process exactly."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from pipeline_support import REPO, subprocess_env, tiny_checkpoints, totaltext_folder

from text4seg.app.cli import main
from text4seg.app.evaluation.records import RecordWriter, check_run_settings, mark_done, read_records
from text4seg.app.evaluation.report import compute_report, metrics_only
from text4seg.app.evaluation.runner import merge
from text4seg.app.evaluation.samples import EvalSample
from text4seg.app.evaluation.scoring import score_sample

torch.set_num_threads(1)


def eval_args(root, out, *extra):
    ckpt = tiny_checkpoints()
    return [
        "eval", "--dataset", "totaltext", "--root", str(root), "--split", "Test", "--out", str(out),
        "--model", str(ckpt.mllm), "--refiner", str(ckpt.refiner), "--grid", "8", "--threads", "1", *extra,
    ]  # fmt: skip


def last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def tt_root(tmp_path_factory):
    return totaltext_folder(tmp_path_factory.mktemp("totaltext") / "tt")


@pytest.fixture(scope="module")
def reference(tt_root, tmp_path_factory):
    """One uninterrupted single-process run (in this process): (report, printed output, folder)."""
    out = tmp_path_factory.mktemp("eval") / "reference"
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(eval_args(tt_root, out)) == 0
    return last_json(buffer.getvalue()), buffer.getvalue(), out


def test_totaltext_layout_eval_prints_coarse_and_refined_fgiou_and_f(reference, tt_root):
    report, printed, out = reference
    n_test = len(list((tt_root / "Images" / "Test").iterdir()))
    assert report["n_images"] == n_test >= 3
    for key in ("coarse.fgIoU", "coarse.F", "refined.fgIoU", "refined.F", "coarse.grid_IoU", "oracle.fgIoU"):
        assert 0.0 <= report[key] <= 1.0
        assert key in printed.split("{")[0]  # also in the readable summary above the JSON line
    assert report["parse_failure_rate"] == 0.0  # constrained decoding always parses
    assert report["seconds_per_image"] > 0
    # An 8×8 grid of thin synthetic strokes cannot be a good mask even when it is perfect.
    assert report["oracle.fgIoU"] < 0.6
    rows = list(csv.DictReader(open(out / "per_image.csv")))
    assert len(rows) == n_test and {r["id"] for r in rows} == {r["id"] for r in read_records(out)}
    assert (out / "iou_histogram.png").stat().st_size > 1000
    assert (out / "coarse_vs_refined.png").stat().st_size > 1000
    assert json.loads((out / "report.json").read_text()) == report


@pytest.mark.slow
def test_sigkill_then_resume_equals_an_uninterrupted_run(reference, tt_root, tmp_path):
    out = tmp_path / "killed"
    records_file = out / "records" / "rank-0.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "text4seg.app.cli", *eval_args(tt_root, out)],
        cwd=REPO, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if records_file.is_file() and records_file.read_text().count("\n") >= 2:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(read_records(out))
    assert 2 <= done_before < reference[0]["n_images"], "the kill must land mid-run"
    assert not (out / "report.json").exists()
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(eval_args(tt_root, out)) == 0
    resumed = last_json(buffer.getvalue())
    records = read_records(out)
    assert len(records) == len({r["id"] for r in records}) == reference[0]["n_images"]
    done = json.loads((out / "records" / "done-0-of-1.json").read_text())
    assert done["new_records"] == reference[0]["n_images"] - done_before  # nothing redone, nothing lost
    assert metrics_only(resumed) == metrics_only(reference[0])


@pytest.mark.slow
def test_two_torchrun_processes_equal_one_process_exactly(reference, tt_root, tmp_path):
    out = tmp_path / "sharded"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "0"]
    proc = subprocess.run(
        [*cmd, "-m", "text4seg.app.cli", *eval_args(tt_root, out)],
        cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    sharded = last_json(proc.stdout)
    shard_ids = [
        [json.loads(line)["index"] for line in (out / "records" / f"rank-{r}.jsonl").read_text().splitlines()]
        for r in (0, 1)
    ]
    assert all(i % 2 == 0 for i in shard_ids[0]) and all(i % 2 == 1 for i in shard_ids[1])
    assert sorted(shard_ids[0] + shard_ids[1]) == list(range(reference[0]["n_images"]))
    assert metrics_only(sharded) == metrics_only(reference[0])


class _Result:
    def __init__(self, coarse, refined, grid):
        self._coarse, self._refined, self.grid = coarse, refined, grid

    def mask(self, *, refined=True):
        return self._refined if refined else self._coarse


def test_report_figures_match_hand_computation():
    gt = np.zeros((8, 8), bool)
    gt[0:4, 0:4] = True  # 16 px: exactly the top-left grid cell of a 2×2 grid
    coarse = np.zeros((8, 8), bool)
    coarse[0:4, 0:8] = True  # 32 px, 16 of them right
    refined = gt.copy()
    grid = [["text", "text"], ["others", "others"]]
    sample = EvalSample(0, "a", np.zeros((8, 8, 3), np.uint8), gt, None, "scene_text", "text")
    record = score_sample(sample, _Result(coarse, refined, grid), grid=(2, 2), rule="nearest", threshold=0.5)
    record.update(index=0, id="a", task="scene_text", query="text", parse_failed=False, repairs=["row_padded"],
                  refined_called=True, seconds={"total": 2.0}, error=None)  # fmt: skip
    report = compute_report([record])
    assert report["coarse.fgIoU"] == 16 / 32 and report["refined.fgIoU"] == 1.0
    assert report["coarse.F"] == pytest.approx(2 * 0.5 * 1.0 / 1.5)
    assert report["coarse.grid_IoU"] == 1 / 2 and report["oracle.fgIoU"] == 1.0
    assert report["repair_rate"] == 1.0 and report["seconds_per_image"] == 2.0


def test_torn_last_line_is_dropped_and_settings_are_checked(tmp_path):
    with RecordWriter(tmp_path, 0) as writer:
        writer.write({"id": "a", "index": 0})
        writer.write({"id": "b", "index": 1})
    path = tmp_path / "records" / "rank-0.jsonl"
    path.write_text(path.read_text() + '{"id": "c", "ind')  # a write cut by a kill
    assert [r["id"] for r in read_records(tmp_path)] == ["a", "b"]
    with RecordWriter(tmp_path, 0) as writer:
        writer.write({"id": "c", "index": 2})
    assert [r["id"] for r in read_records(tmp_path)] == ["a", "b", "c"]
    check_run_settings(tmp_path, {"split": "test", "grid": [8, 8]})
    check_run_settings(tmp_path, {"split": "test", "grid": [8, 8]})
    with pytest.raises(ValueError, match=r"grid: recorded \[8, 8\] vs now \[16, 16\]"):
        check_run_settings(tmp_path, {"split": "test", "grid": [16, 16]})


def test_shards_starting_together_both_record_the_settings(tmp_path, monkeypatch):
    """Two shards of a fresh run both find no run.json and both write it; the second writer's file
    lands between the first writer's write and rename (the race that once failed a 2-process eval)."""
    import text4seg.app.evaluation.records as records

    settings = {"split": "test", "grid": [8, 8]}
    real_replace, calls = os.replace, []

    def replace_after_the_other_shard(src, dst):
        calls.append(dst)
        if len(calls) == 1:  # the other shard writes run.json meanwhile
            check_run_settings(tmp_path, settings)
        real_replace(src, dst)

    monkeypatch.setattr(records.os, "replace", replace_after_the_other_shard)
    check_run_settings(tmp_path, settings)
    assert len(calls) == 2 and json.loads((tmp_path / "run.json").read_text()) == settings
    assert not list(tmp_path.glob("*.tmp"))


def test_merge_refuses_missing_samples(tmp_path):
    with RecordWriter(tmp_path, 0) as writer:
        writer.write({"id": "a", "index": 0})
    mark_done(tmp_path, 0, 1, {"n_samples": 3, "new_records": 1, "wall_seconds": 1.0})
    with pytest.raises(ValueError, match=r"1 records for 3 samples; missing sample indices \[1, 2\]"):
        merge(tmp_path)
