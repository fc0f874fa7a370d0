"""``text4seg segment``: per-image masks, overlays and JSON; bad files reported by name, the batch goes on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pipeline_support import random_image, tiny_checkpoints

from text4seg.app.cli import main
from text4seg.app.refiners import PointsRefiner
from text4seg.mllm.generate import CoarseMaskResult

torch.set_num_threads(1)


def _model_args(*extra):
    ckpt = tiny_checkpoints()
    return [
        "--model",
        str(ckpt.mllm),
        "--refiner",
        str(ckpt.refiner),
        "--grid",
        "4",
        "--threads",
        "1",
        *extra,
    ]


def test_batch_writes_outputs_and_reports_bad_files(tmp_path, capsys):
    Image.fromarray(random_image(40, 70)).save(tmp_path / "good.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 truncated jpeg")
    (tmp_path / "sub").mkdir()
    Image.fromarray(random_image(30, 30, 2)).convert("L").save(tmp_path / "sub" / "good.png")
    images = [tmp_path / "good.png", tmp_path / "broken.jpg", tmp_path / "sub" / "good.png"]
    out = tmp_path / "out"
    code = main(["segment", *map(str, images), "--query", "segment the text in this image", "--out", str(out),
                 *_model_args()])  # fmt: skip
    printed = capsys.readouterr()
    assert code == 1  # one image failed
    assert "broken.jpg" in printed.err and "segmented 2/3 images, 1 failed" in printed.out
    summary = json.loads(printed.out.strip().splitlines()[-1])
    assert summary["segmented"] == 2 and summary["failed"][0]["image"].endswith("broken.jpg")
    for stem, size in (("good", (40, 70)), ("good-2", (30, 30))):  # same stem twice: no overwrite
        record = json.loads((out / f"{stem}.json").read_text())
        assert record["task"] == "scene_text" and record["answer"] and record["image_size"] == list(size)
        assert set(record["timings"]) >= {"mllm", "parse", "refine", "total"}
        overlay = np.asarray(Image.open(out / f"{stem}.overlay.png"))
        assert overlay.shape == (*size, 3)
        mask = np.asarray(Image.open(out / f"{stem}.mask.png"))
        assert mask.shape == size and set(np.unique(mask)) <= {0, 255}
        assert record["refined_area"]["text"] == int((mask == 255).sum())
    assert json.loads((out / "summary.json").read_text()) == summary


def test_multi_class_query_writes_a_mask_per_class_and_no_refine_keeps_coarse(tmp_path, capsys):
    Image.fromarray(random_image(32, 48, 5)).save(tmp_path / "img.png")
    out = tmp_path / "out"
    code = main(["segment", str(tmp_path / "img.png"), "--query", "person|car", "--out", str(out),
                 *_model_args("--no-refine")])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    record = json.loads((out / "img.json").read_text())
    assert record["task"] == "semantic" and record["refined_labels"] == []
    assert record["refined_area"] == record["coarse_area"]
    assert (out / "img.mask.person.png").is_file() and (out / "img.mask.car.png").is_file()
    assert (out / "img.mask.png").read_bytes() == (out / "img.coarse.png").read_bytes()


def test_refine_mode_option_is_checked_against_the_registry(tmp_path, capsys):
    Image.fromarray(random_image(20, 20)).save(tmp_path / "img.png")
    base = ["segment", str(tmp_path / "img.png"), "--out", str(tmp_path / "out"), *_model_args()]
    assert main([*base, "--refine-mode", "sparkles"]) == 2
    assert (
        "refine_mode 'sparkles' not in ['grid', 'none', 'random', 'stsam', 'text4seg', 'tspp']"
        in capsys.readouterr().err
    )
    assert main([*base, "--refine-mode", "none"]) == 0
    record = json.loads((tmp_path / "out" / "img.json").read_text())
    assert record["refined_labels"] == [] and record["refined_area"] == record["coarse_area"]


def test_point_refinement_modes_are_wired_through_the_cli(tmp_path, capsys, monkeypatch):
    from stsam_refiner.points.train_sam import PointSamTrainConfig, save_point_sam
    from stsam_refiner.sam_backbone import SAM_ARCHS, sam_from_arch

    torch.manual_seed(0)
    sam_path = tmp_path / "sam.safetensors"
    save_point_sam(
        sam_from_arch(SAM_ARCHS["tiny"], 64), sam_path, step=0, cfg=PointSamTrainConfig(image_size=64)
    )
    calls = []
    real = PointsRefiner.refine
    monkeypatch.setattr(
        PointsRefiner, "refine", lambda self, r: calls.append((self.mode, sorted(r.grids))) or real(self, r)
    )
    grid = [["text", "text", "others", "others"]] + [["others"] * 4] * 3
    answer = CoarseMaskResult(text="", grid=grid, labels=["others", "text"], repairs=[], masks={},
                              num_tokens=1, seconds=0.0)  # fmt: skip
    monkeypatch.setattr("text4seg.mllm.generate.segment", lambda *a, **k: answer)
    Image.fromarray(random_image(48, 48, 4)).save(tmp_path / "img.png")
    base = ["segment", str(tmp_path / "img.png"), "--out", str(tmp_path / "out"), *_model_args()]
    assert main([*base, "--refine-mode", "grid"]) == 2
    assert "--refine-mode grid needs --points-config" in capsys.readouterr().err
    config = str(Path(__file__).resolve().parents[1] / "configs" / "points" / "tspp.yaml")
    code = main([*base, "--refine-mode", "grid", "--points-config", config, "--points-sam", str(sam_path)])
    assert code == 0, capsys.readouterr().err
    record = json.loads((tmp_path / "out" / "img.json").read_text())
    assert calls == [("grid", ["text"])] and record["refined_labels"] == ["text"]
    assert (tmp_path / "out" / "img.mask.png").is_file()


def test_no_zoom_flag_turns_the_windowed_refinement_off_and_says_so(tmp_path, capsys, monkeypatch):
    import stsam_refiner.zoom as zoom
    from text4seg.mllm.generate import CoarseMaskResult

    grid = [["text", "others", "others", "others"]] + [["others"] * 4] * 3
    answer = CoarseMaskResult(
        text="<seg>…</seg>",
        grid=grid,
        labels=["others", "text"],
        repairs=[],
        masks={},
        num_tokens=1,
        seconds=0.01,
    )
    monkeypatch.setattr("text4seg.mllm.generate.segment", lambda *a, **k: answer)
    calls, real = [], zoom.refine_zoomed
    monkeypatch.setattr(zoom, "refine_zoomed", lambda *a, **k: calls.append(1) or real(*a, **k))
    Image.fromarray(random_image(64, 64, 3)).save(tmp_path / "img.png")
    for flag, zoomed in (((), True), (("--no-zoom",), False)):
        calls.clear()
        code = main(["segment", str(tmp_path / "img.png"), "--query", "text", "--out", str(tmp_path / "out"),
                     *_model_args(*flag)])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 0, err
        assert json.loads((tmp_path / "out" / "img.json").read_text())["refined_labels"] == ["text"]
        assert calls == ([1] if zoomed else [])
        assert ("refiner_zoom True" in err and "-> False (flag)" in err) == (not zoomed)


def test_text_gate_flag_sets_or_turns_off_the_checkpoints_gate(tmp_path, capsys):
    import argparse

    from text4seg.app.commands.segment import gate_pixels
    from text4seg.app.pipeline import checkpoint_config
    from text4seg.core.inference import InferenceSettings, save_inference_settings

    save_inference_settings(tmp_path, InferenceSettings(text_gate=16))
    assert checkpoint_config(tmp_path).text_gate == 16  # no flag: the checkpoint's
    assert checkpoint_config(tmp_path, overrides={"text_gate": gate_pixels("4")}).text_gate == 4
    assert checkpoint_config(tmp_path, overrides={"text_gate": gate_pixels("off")}).text_gate is None
    assert "text_gate 16 from" in capsys.readouterr().err
    for bad in ("-1", "wide"):
        with pytest.raises(argparse.ArgumentTypeError, match="'off'"):
            gate_pixels(bad)
