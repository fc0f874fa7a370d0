"""``text4seg eval`` on every kind of source: referring (RefCOCO, gRefCOCO with no-target samples),
TextSeg and HierText (ignore pixels), ICDAR13 fixtures in their published layouts, and the synthetic
Arrow corpus."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch
from pipeline_support import tiny_checkpoints

from text4seg.app.cli import main
from text4seg.app.evaluation.records import read_records
from text4seg.app.evaluation.samples import iter_samples

torch.set_num_threads(1)
FIXTURES = Path(__file__).parent / "fixtures"


def run_eval(*args: str) -> dict:
    ckpt = tiny_checkpoints()
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["eval", *args, "--model", str(ckpt.mllm), "--refiner", str(ckpt.refiner), "--grid", "4",
                     "--threads", "1"])  # fmt: skip
    assert code == 0
    return json.loads(buffer.getvalue().strip().splitlines()[-1])


@pytest.mark.parametrize(("dataset", "split", "n", "task"), [
    ("refcoco", "train", 3, "referring"),
    ("grefcoco", "Train", 2, "referring"),
    ("textseg", "train", 2, "scene_text"),
    ("icdar13", "Test", 1, "scene_text"),
    ("hiertext", "validation", 1, "scene_text"),
])  # fmt: skip
def test_fixture_datasets_evaluate_with_their_tasks(tmp_path, dataset, split, n, task):
    report = run_eval("--dataset", dataset, "--root", str(FIXTURES / dataset), "--split", split,
                      "--out", str(tmp_path / "ev"))  # fmt: skip
    assert report["n_images"] == n and report["tasks"] == {task: n}
    for key in ("refined.cIoU", "refined.gIoU", "refined.Acc@0.5", "coarse.fgIoU", "oracle.fgIoU"):
        assert 0.0 <= report[key] <= 1.0
    queries = [r["query"] for r in read_records(tmp_path / "ev")]
    assert (queries == ["text"] * n) == (task == "scene_text")


def test_synthetic_arrow_scene_text_and_referring_samples(tmp_path):
    import dataclasses

    from data_builders.synthetic.build import build
    from data_builders.synthetic.config import SyntheticConfig

    cfg = dataclasses.replace(SyntheticConfig(), size=64, test_fraction=1.0, fonts="eval")
    build(cfg, n=2, out=tmp_path / "syn", seed=11, layout="arrow", workers=1)
    referring = list(iter_samples("synthetic", root=tmp_path / "syn", split="test", task="referring"))
    assert referring and all("#ref" in s.sample_id for s in referring)
    assert [s.index for s in referring] == list(range(len(referring)))
    report = run_eval("--dataset", "synthetic", "--root", str(tmp_path / "syn"), "--split", "test",
                      "--out", str(tmp_path / "ev"), "--synthetic-task", "referring")  # fmt: skip
    assert report["n_images"] == len(referring) and report["tasks"] == {"referring": len(referring)}
    scene = run_eval("--dataset", "synthetic", "--root", str(tmp_path / "syn"), "--split", "Test",
                     "--out", str(tmp_path / "ev2"))  # fmt: skip
    assert scene["n_images"] == 2 and scene["tasks"] == {"scene_text": 2}


def test_a_resume_with_other_settings_is_refused(tmp_path, capsys):
    args = (
        "--dataset",
        "refcoco",
        "--root",
        str(FIXTURES / "refcoco"),
        "--split",
        "val",
        "--out",
        str(tmp_path),
    )
    run_eval(*args)
    ckpt = tiny_checkpoints()
    code = main(["eval", *args, "--model", str(ckpt.mllm), "--refiner", str(ckpt.refiner), "--grid", "8"])
    assert code == 2
    assert "grid: recorded [4, 4] vs now [8, 8]" in capsys.readouterr().err


def test_a_retrained_checkpoint_in_the_same_place_is_not_resumed(tmp_path, capsys):
    import os
    import shutil

    ckpt = tiny_checkpoints()
    refiner = tmp_path / "refiner.safetensors"
    shutil.copy(ckpt.refiner, refiner)
    args = ["eval", "--dataset", "refcoco", "--root", str(FIXTURES / "refcoco"), "--split", "val",
            "--out", str(tmp_path / "ev"), "--model", str(ckpt.mllm), "--refiner", str(refiner), "--grid", "4"]  # fmt: skip
    assert main(args) == 0
    os.utime(refiner, ns=(0, 0))  # as if rewritten by a new training run
    assert main(args) == 2
    assert "model.refiner_files: recorded" in capsys.readouterr().err


def test_a_synthetic_split_that_is_not_there_fails_before_the_model_loads(tmp_path, capsys, monkeypatch):
    import datasets

    import text4seg.app.commands.eval as eval_command

    datasets.Dataset.from_dict({"split": ["train"], "source_id": ["syn/train/0"]}).save_to_disk(
        tmp_path / "syn"
    )
    with pytest.raises(ValueError, match=r"split 'test' not in \('train',\)"):
        iter_samples("synthetic", root=tmp_path / "syn", split="test")  # opening it, before any sample

    def never_loaded(args):
        raise AssertionError("the model was loaded before the dataset was opened")

    monkeypatch.setattr(eval_command, "pipeline_from_args", never_loaded)
    args = ["eval", "--dataset", "synthetic", "--root", str(tmp_path / "syn"), "--split", "test",
            "--out", str(tmp_path / "ev")]  # fmt: skip
    assert main(args) == 2
    assert "split 'test' not in ('train',)" in capsys.readouterr().err
    assert not (tmp_path / "ev").exists()
