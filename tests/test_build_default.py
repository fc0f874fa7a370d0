"""The default model's build recipe, run exactly as documented on the CPU in a tiny setting."""

import dataclasses
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from stsam_refiner import calibrate
from stsam_refiner.build import load_refiner
from text4seg.app import build_default
from text4seg.app.build_default import BuildConfig
from text4seg.app.pipeline import Text4SegPipeline
from text4seg.core.inference import load_inference_settings

REPO = Path(__file__).resolve().parents[1]
TINY = ["train_images=48", "select_images=6", "test_images=6", "vision_steps=3", "mllm_steps=3",
        "mllm_continue_steps=5", "mllm_hint_steps=2", "refiner_steps=3", "refiner_base_steps=2",
        "measure_images=4"]  # fmt: skip


def test_budget_split_must_fit_the_whole_budget():
    with pytest.raises(ValueError, match="exceeds the whole budget"):
        BuildConfig.from_dict({"cpu": {"split": {"mllm": 0.8, "vision": 0.2}}})
    with pytest.raises(ValueError, match="unknown key 'cpu.gpus'"):
        BuildConfig.from_dict({"cpu": {"gpus": 2}})


def test_the_device_and_the_corpus_assets_reach_every_stage(tmp_path, monkeypatch):
    """The GPU job (scripts/gpu_job.sh) runs the recipe with --device cuda --assets-dir DIR."""
    profile = BuildConfig.from_yaml(REPO / build_default.BUILD_CONFIG).cuda
    plan = build_default.Plan(run=tmp_path / "run", data=tmp_path / "data", out=tmp_path / "pkg", minutes=8,
                              profile=profile, device="cuda", assets_dir=Path("gpu_job/assets"))  # fmt: skip
    ran = []
    monkeypatch.setattr(build_default, "_stage", lambda plan, name, command, log=None: ran.append(command))
    build_default.data_stage(plan)
    assert len(ran) == 3 and all(c[-2:] == ["--assets-dir", "gpu_job/assets"] for c in ran)
    trainers = [c for _, c in build_default.mllm_commands(plan) if "--steps" in c]
    mllm = [c for _, c in build_default.mllm_trainers(plan, 1.5) if "--steps" in c]
    refiners = [c for _, c in build_default.refiner_commands(plan)]
    for command in [*trainers, *mllm, *refiners]:
        assert command[command.index("--device") + 1] == "cuda", command
    assert sum(float(c[c.index("--minutes") + 1]) for c in mllm) == pytest.approx(1.5)  # shared by steps


def test_a_continued_mllm_run_shares_the_training_minutes_by_steps(tmp_path):
    profile = BuildConfig.from_dict({"cpu": {"mllm_steps": 3000, "mllm_continue_steps": 6000}}).cpu
    plan = build_default.Plan(run=tmp_path / "run", data=tmp_path / "data", out=tmp_path / "pkg", minutes=60,
                              profile=profile)  # fmt: skip
    (first, train), (second, resume) = build_default.mllm_trainers(plan, 40.0)
    assert (first, second) == ("mllm_train", "mllm_continue")
    assert train[train.index("--minutes") + 1] == resume[resume.index("--minutes") + 1] == "20.0"
    assert (
        resume[resume.index("--steps") + 1] == "6000"
        and "configs/default/mllm_continue_backbone.yaml" in resume
    )
    assert (
        train[train.index("--output-dir") + 1] == resume[resume.index("--output-dir") + 1]
    )  # resumed in place


def test_the_hint_stage_grows_the_continued_model_and_the_package_takes_its_adapter(tmp_path):
    profile = BuildConfig.from_dict(
        {"cpu": {"mllm_steps": 3000, "mllm_continue_steps": 6000, "mllm_hint_steps": 3000}}
    ).cpu
    plan = build_default.Plan(run=tmp_path / "run", data=tmp_path / "data", out=tmp_path / "pkg", minutes=60,
                              profile=profile)  # fmt: skip
    stages = dict(build_default.mllm_trainers(plan, 45.0))
    assert list(stages) == ["mllm_train", "mllm_continue", "mllm_grow", "conversations_hint", "mllm_hint"]
    grow, hint = stages["mllm_grow"], stages["mllm_hint"]
    assert grow[-3:] == [str(plan.run / "mllm" / "model"), str(plan.run / "mllm_grown"), "--reading-hint"]
    assert hint[hint.index("--model-path") + 1] == str(plan.run / "mllm_grown")
    assert hint[hint.index("--data") + 1] == str(plan.data / "conv_train_hint")
    assert "configs/default/conversations_hint.yaml" in stages["conversations_hint"]
    # 45 minutes over 6000 + 3000 steps: a third for the hint stage
    assert hint[hint.index("--minutes") + 1] == "15.0"
    assert build_default.final_mllm(plan) == plan.run / "mllm_hint" / "model"
    plain = build_default.Plan(run=tmp_path / "run", data=tmp_path / "data", out=tmp_path / "pkg", minutes=60,
                               profile=BuildConfig.from_dict({"cpu": {}}).cpu)  # fmt: skip
    assert build_default.final_mllm(plain) == plan.run / "mllm" / "model"


def test_the_regrid_stage_moves_the_continued_model_and_the_hint_stage_takes_its_grid(tmp_path):
    profile = BuildConfig.from_dict(
        {"cpu": {"mllm_steps": 3000, "mllm_continue_steps": 6000, "mllm_regrid_steps": 1500,
                 "mllm_hint_steps": 1500}}
    ).cpu  # fmt: skip
    plan = build_default.Plan(run=tmp_path / "run", data=tmp_path / "data", out=tmp_path / "pkg", minutes=60,
                              profile=profile)  # fmt: skip
    stages = dict(build_default.mllm_trainers(plan, 45.0))
    assert list(stages) == ["mllm_train", "mllm_continue", "mllm_regrid", "conversations_regrid",
                            "mllm_regrid_train", "mllm_grow", "conversations_hint", "mllm_hint"]  # fmt: skip
    regrid, rows, train = stages["mllm_regrid"], stages["conversations_regrid"], stages["mllm_regrid_train"]
    assert regrid[regrid.index("regrid") + 1 :] == [str(plan.run / "mllm" / "model"), str(plan.run / "mllm_regrid_base"),
                                                    "--patches", "16", "--grid-threshold", "0.03"]  # fmt: skip
    assert build_default.REGRID_ROWS in rows and rows[rows.index("--out") + 1] == str(
        plan.data / "conv_train_regrid"
    )
    assert train[train.index("--model-path") + 1] == str(plan.run / "mllm_regrid_base")
    assert train[train.index("--data") + 1] == str(plan.data / "conv_train_regrid")
    assert train[train.index("--minutes") + 1] == "7.5"  # 45 minutes over 6000 + 1500 + 1500 steps
    regridded = str(plan.run / "mllm_regrid" / "model")
    assert stages["mllm_grow"][-3] == regridded
    hint_rows = stages["conversations_hint"]
    assert hint_rows[hint_rows.index("--grid-from") + 1] == regridded
    assert build_default.final_mllm(plan) == plan.run / "mllm_hint" / "model"
    no_hint = build_default.Plan(run=tmp_path / "run", data=tmp_path / "data", out=tmp_path / "pkg", minutes=60,
                                 profile=BuildConfig.from_dict({"cpu": {"mllm_regrid_steps": 10}}).cpu)  # fmt: skip
    assert build_default.final_mllm(no_hint) == plan.run / "mllm_regrid" / "model"


def test_the_augment_stage_continues_the_refiner_and_the_package_takes_it(tmp_path):
    profile = BuildConfig.from_dict(
        {"cpu": {"refiner_base_steps": 2400, "refiner_steps": 2400, "refiner_augment_steps": 1200}}
    ).cpu
    plan = build_default.Plan(run=tmp_path / "run", data=tmp_path / "data", out=tmp_path / "pkg", minutes=100,
                              profile=profile)  # fmt: skip
    stages = dict(build_default.refiner_commands(plan))
    assert list(stages) == ["refiner_base", "refiner_train", "refiner_augment"]
    train, augment = stages["refiner_train"], stages["refiner_augment"]
    assert "configs/default/refiner_augment.yaml" in augment
    assert augment[augment.index("--warm-start") + 1] == str(plan.run / "refiner" / "refiner.safetensors")
    assert augment[augment.index("--steps") + 1] == "1200"
    # the refiner's share after the stroke refiner's, split 2:1 by steps
    share = plan.budget("refiner") - plan.budget("refiner_base")
    assert share > 0
    assert float(train[train.index("--minutes") + 1]) == pytest.approx(share * 2 / 3, abs=0.01)
    assert float(augment[augment.index("--minutes") + 1]) == pytest.approx(share / 3, abs=0.01)
    last = build_default.refiner_commands(plan, last_minutes=9.5)
    assert last[-1][1][last[-1][1].index("--minutes") + 1] == "9.5" and last[1][1] == train
    assert build_default.final_refiner(plan) == plan.run / "refiner_augment" / "refiner.safetensors"
    plain = build_default.Plan(run=tmp_path / "run", data=tmp_path / "data", out=tmp_path / "pkg", minutes=100,
                               profile=BuildConfig.from_dict({"cpu": {}}).cpu)  # fmt: skip
    assert [name for name, _ in build_default.refiner_commands(plain)] == ["refiner_train"]
    assert build_default.final_refiner(plain) == plan.run / "refiner" / "refiner.safetensors"


def test_the_calibrate_stage_sets_the_threshold_of_the_packaged_refiner(tmp_path, monkeypatch):
    profile = BuildConfig.from_dict(
        {"cpu": {"refiner_augment_steps": 10, "calibrate_refiner": True, "refiner_flips": ["h"]}}
    ).cpu
    plan = build_default.Plan(run=tmp_path / "run", data=tmp_path / "data", out=tmp_path / "pkg", minutes=100,
                              profile=profile)  # fmt: skip
    plan.run.mkdir()
    ran = {}
    monkeypatch.setattr(
        build_default, "_stage", lambda plan, name, command, log=None: ran.update({name: command})
    )
    build_default.package_stage(plan)
    assert list(ran) == ["refiner_calibrate", "package"]
    calibrate, package = ran["refiner_calibrate"], ran["package"]
    assert calibrate[calibrate.index("--checkpoint") + 1] == str(build_default.final_refiner(plan))
    assert calibrate[calibrate.index("--data") + 1] == str(plan.data / "corpus_select")
    assert calibrate[calibrate.index("--settings") + 1] == str(build_default.final_mllm(plan))
    assert calibrate[calibrate.index("--flips") + 1] == "h"
    assert package[package.index("--refiner") + 1] == calibrate[calibrate.index("--out") + 1]
    ran.clear()
    plain = build_default.Plan(run=tmp_path / "run", data=tmp_path / "data", out=tmp_path / "pkg", minutes=100,
                               profile=BuildConfig.from_dict({"cpu": {}}).cpu)  # fmt: skip
    build_default.package_stage(plain)
    assert list(ran) == ["package"] and ran["package"][ran["package"].index("--refiner") + 1] == str(
        plain.run / "refiner" / "refiner.safetensors"
    )
    assert "--hint-clip" not in ran["package"] and "--text-gate" not in ran["package"]  # off unless set
    assert ran["package"][ran["package"].index("--hint-snap") + 1] == "0"
    clipped = dataclasses.replace(
        plain, profile=dataclasses.replace(plain.profile, hint_clip=2, hint_snap=1, text_gate=16)
    )
    build_default.package_stage(clipped)
    assert ran["package"][ran["package"].index("--hint-clip") + 1] == "2"
    assert ran["package"][ran["package"].index("--text-gate") + 1] == "16"
    assert ran["package"][ran["package"].index("--hint-snap") + 1] == "1"
    with pytest.raises(ValueError, match="hint_clip"):
        BuildConfig.from_dict({"cpu": {"hint_clip": -1}})
    with pytest.raises(ValueError, match="text_gate"):
        BuildConfig.from_dict({"cpu": {"text_gate": -1}})


@pytest.mark.slow
def test_cpu_dry_run_of_the_recipe_builds_a_package_that_loads_and_segments(tmp_path):
    args = [
        "bash",
        "scripts/build_default_model.sh",
        "--device",
        "cpu",
        "--minutes",
        "2",
        "--run-dir",
        str(tmp_path / "run"),
        "--data-dir",
        str(tmp_path / "data"),
        "--out",
        str(tmp_path / "pkg"),
    ]
    args += [item for setting in TINY for item in ("--set", setting)]  # fmt: skip
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=900, env={**os.environ})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    stages = [
        json.loads(line)["stage"] for line in (tmp_path / "run" / "stages.jsonl").read_text().splitlines()
    ]
    # the refiner chain runs beside the MLLM chain: its record lands wherever it finishes
    mllm_chain = ["data_train", "data_select", "data_test", "base", "vision_pretrain", "conversations",
                  "mllm_train", "mllm_continue", "mllm_grow", "conversations_hint", "mllm_hint",
                  "package"]  # fmt: skip
    assert [s for s in stages if not s.startswith("refiner")] == mllm_chain
    assert [s for s in stages if s.startswith("refiner")] == [
        "refiner_base",
        "refiner_train",
        "refiner_calibrate",
    ]
    calibrated = load_refiner(tmp_path / "run" / "refiner_calibrated" / "refiner.safetensors")[0]
    packaged = load_refiner(tmp_path / "pkg" / "refiner" / "refiner.safetensors")[0]
    assert packaged.cfg.sam.mask_threshold == calibrated.cfg.sam.mask_threshold in calibrate.THRESHOLDS
    pkg = tmp_path / "pkg"
    manifest = json.loads((pkg / "manifest.json").read_text())
    assert manifest["metrics"]["n_images"] == 4 and manifest["training"]["profile"]["train_images"] == 48
    settings = load_inference_settings(pkg / "mllm")
    assert settings is not None and settings.grid == (8, 8)
    vision = json.loads((pkg / "mllm" / "config.json").read_text())["vision_config"]
    assert vision["model_type"] == "text4seg_text_vision"
    assert vision["reading_hint"] and settings.reading == "hint" and settings.reading_adapter
    assert settings.attribute_hint and not settings.colour_hint
    assert (pkg / "mllm" / "reading_adapter" / "adapter_config.json").is_file()
    pipe = Text4SegPipeline.from_pretrained(default_root=pkg)
    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    result = pipe(image, "segment the text in this image")
    assert result.refined_masks["text"].shape == (48, 64) and len(result.grid) == 8
    asked = pipe(image, "segment the word 'OPEN'")  # the reader runs, and its (empty) hint goes in
    assert "reading" in asked.timings and len(asked.grid) == 8
