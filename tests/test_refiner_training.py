"""Training lowers the loss; checkpoints round-trip exactly; the trainer entry point resumes."""

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from refiner_support import (
    official_tiny_sam,
    randomize_zero_params,
    small_refiner_config,
    text_encoder,
    tiny_official_config,
    tiny_text_dataset,
)

from stsam_refiner.build import build_refiner, load_refiner, save_refiner
from stsam_refiner.config import AdapterConfig, RefinerConfig
from stsam_refiner.data import AugmentConfig, CoarseConfig, RefinerTrainSet, collate
from stsam_refiner.loss import refiner_loss
from stsam_refiner.train import TrainConfig, train

torch.set_num_threads(1)


def _batch(size=128, n=2):
    dataset = RefinerTrainSet(
        rows=tiny_text_dataset(n, size=96),
        image_size=size,
        coarse=CoarseConfig(),
        augment=AugmentConfig(enabled=False),
    )
    return collate([dataset[i] for i in range(n)])


def _run(model, batch):
    images = model.sam.preprocess(batch["images"])
    return model(images, batch["mask_prompts"], descriptions=["white bars", None])


def test_few_steps_lower_the_loss():
    torch.manual_seed(0)
    model, _ = build_refiner(small_refiner_config(), text_encoder=text_encoder())
    model.train()
    batch = _batch()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    losses = []
    for _ in range(8):
        terms = refiner_loss(_run(model, batch), batch["targets"], model.cfg.loss)
        optimizer.zero_grad()
        terms.total.backward()
        optimizer.step()
        losses.append(float(terms.total.detach()))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.8 * losses[0], losses


def test_save_load_gives_identical_outputs(tmp_path):
    torch.manual_seed(1)
    model, _ = build_refiner(
        small_refiner_config(adapter={"parallel_text": True}), text_encoder=text_encoder()
    )
    randomize_zero_params(model)
    model.eval()
    batch = _batch()
    with torch.no_grad():
        before = _run(model, batch)
    stored = save_refiner(model, tmp_path / "refiner.safetensors")
    loaded, report = load_refiner(tmp_path / "refiner.safetensors", text_encoder=text_encoder())
    assert report.missing == [] and report.unexpected == []
    assert "text_prompt.general" in stored  # the cached sentence embeddings travel with the weights
    with torch.no_grad():
        after = _run(loaded, batch)
    for name in ("low_res_logits", "iou_pred", "hr_logits"):
        assert torch.equal(getattr(before, name), getattr(after, name)), name


def test_checkpoint_stores_only_trained_weights_and_refills_sam(tmp_path):
    sam_path = tmp_path / "sam.pth"
    torch.save(official_tiny_sam(seed=5).state_dict(), sam_path)
    cfg = replace(
        RefinerConfig.plain_sam(tiny_official_config(str(sam_path), image_size=256)),
        adapter=AdapterConfig(enabled=True),
    )
    model, _ = build_refiner(cfg)
    randomize_zero_params(model)
    model.eval()
    images = torch.randn(1, 3, 256, 256)
    masks = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        before = model(images, masks).low_res_logits
    stored = save_refiner(model, tmp_path / "refiner.safetensors")
    assert not [
        k for k in stored if k.startswith("sam.image_encoder.") and ".attn." in k and "adapter" not in k
    ]
    assert any("attn_adapter" in k for k in stored) and any(k.startswith("sam.mask_decoder.") for k in stored)
    loaded, report = load_refiner(tmp_path / "refiner.safetensors")
    assert report.missing == [] and report.unexpected == []
    with torch.no_grad():
        assert torch.equal(before, loaded(images, masks).low_res_logits)
    # Without the SAM checkpoint the frozen encoder weights are missing, and the report names them.
    _, bare = load_refiner(tmp_path / "refiner.safetensors", sam_checkpoint="")
    assert "sam.image_encoder.patch_embed.proj.weight" in bare.missing


def test_trainer_runs_logs_and_resumes(tmp_path):
    data = tmp_path / "data"
    tiny_text_dataset(4, size=96).save_to_disk(str(data))
    model_yaml = tmp_path / "model.yaml"
    import yaml

    model_yaml.write_text(yaml.safe_dump(small_refiner_config().to_dict()))
    cfg = TrainConfig(
        model_config=str(model_yaml),
        data=str(data),
        output_dir=str(tmp_path / "out"),
        steps=3,
        batch_size=2,
        lr=1e-3,
        warmup_steps=1,
        save_every=2,
        log_every=1,
        threads=1,
        augment=AugmentConfig(rotation=10.0),
    )
    first = train(cfg)
    assert first.step == 3 and len(first.losses) == 3
    log = [json.loads(line) for line in (tmp_path / "out" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]
    assert {"focal", "dice", "iou_mse", "hr_focal", "hr_dice", "total"} <= set(log[0])
    resumed = train(replace(cfg, steps=5))
    assert resumed.step == 5 and len(resumed.losses) == 2  # continued from step 3, not from scratch
    assert json.loads((tmp_path / "out" / "state" / "trainer.json").read_text())["step"] == 5


@pytest.mark.parametrize("bad", [{"steps": 0}, {"batch_size": 0}, {"lr": 0.0}])
def test_train_config_rejects_bad_numbers(bad):
    with pytest.raises(ValueError):
        TrainConfig(**bad)


@pytest.mark.slow
def test_launcher_trains_with_two_processes(tmp_path):
    import subprocess
    import sys

    import yaml

    repo = Path(__file__).resolve().parents[1]
    data = tmp_path / "data"
    tiny_text_dataset(4, size=96).save_to_disk(str(data))
    model_yaml = tmp_path / "model.yaml"
    model_yaml.write_text(yaml.safe_dump(small_refiner_config().to_dict()))
    out = tmp_path / "out"
    cmd = [
        "bash", str(repo / "scripts" / "train_refiner.sh"), "--nproc", "2", "--master-port", "29533", "--",
        "--data", str(data), "--model-config", str(model_yaml), "--output-dir", str(out),
        "--steps", "2", "--batch-size", "1", "--threads", "1", "--description-column", "",
    ]  # fmt: skip
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1 and json.loads(lines[0])["step"] == 2  # only rank 0 reports
    loaded, report = load_refiner(out / "refiner.safetensors", text_encoder=text_encoder())
    assert report.missing == [] and loaded.cfg.sam.image_size == 128
