"""The refiner is SAM when its additions are off, and it loads official-layout SAM checkpoints."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from refiner_support import official_tiny_sam, tiny_official_config
from segment_anything import SamPredictor, sam_model_registry

from stsam_refiner.adapters import AdaptedBlock
from stsam_refiner.build import build_refiner
from stsam_refiner.config import AdapterConfig, RefinerConfig, SamConfig
from stsam_refiner.predict import refine_image
from stsam_refiner.sam_backbone import SAM_BUILDERS, build_sam, load_sam_checkpoint

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    sam = official_tiny_sam(seed=3)
    path = tmp_path_factory.mktemp("sam") / "sam_tiny.pth"
    torch.save(sam.state_dict(), path)
    return sam, str(path)


def _prompts(seed=0, mask_side=256):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (300, 220, 3), dtype=np.uint8)
    mask_input = rng.normal(0, 4, (1, mask_side, mask_side)).astype(np.float32)
    points = np.array([[40, 70], [150, 260], [100, 20]])
    labels = np.array([1, 0, 1])
    return image, mask_input, points, labels


def test_adapters_at_init_equal_sam_predictor(official):
    sam, path = official
    cfg = replace(RefinerConfig.plain_sam(tiny_official_config(path)), adapter=AdapterConfig(enabled=True))
    model, report = build_refiner(cfg)
    model.eval()
    assert report.sam.missing == [] and report.sam.unexpected == []
    assert all(isinstance(b, AdaptedBlock) for b in model.sam.image_encoder.blocks)
    image, mask_input, points, labels = _prompts()
    predictor = SamPredictor(sam)
    predictor.set_image(image)
    masks, ious, low_res = predictor.predict(
        point_coords=points, point_labels=labels, mask_input=mask_input, multimask_output=False
    )
    ours = refine_image(model, image, mask_logits=mask_input, point_coords=points, point_labels=labels)
    assert 0.02 < masks.mean() < 0.98  # a mask with both classes, so equality means something
    np.testing.assert_array_equal(ours.mask, masks[0])
    np.testing.assert_allclose(ours.low_res_logits, low_res, rtol=0, atol=1e-5)
    assert ours.iou == pytest.approx(float(ious[0]), abs=1e-6)


def test_trained_adapters_change_the_output(official):
    _, path = official
    cfg = replace(RefinerConfig.plain_sam(tiny_official_config(path)), adapter=AdapterConfig(enabled=True))
    model, _ = build_refiner(cfg)
    model.eval()
    image, mask_input, _, _ = _prompts(1)
    before = refine_image(model, image, mask_logits=mask_input).low_res_logits
    with torch.no_grad():
        model.sam.image_encoder.blocks[0].mlp_adapter.up.weight.fill_(0.1)
    after = refine_image(model, image, mask_logits=mask_input).low_res_logits
    assert np.abs(after - before).max() > 1e-3


def test_other_input_size_resizes_positions_and_matches_predictor(official):
    _, path = official
    sam_cfg = tiny_official_config(path, image_size=256)
    sam, report = build_sam(sam_cfg)
    assert report.missing == [] and report.unexpected == []
    # pos_embed and the global block's rel_pos depend on the input size; windowed blocks do not.
    assert set(report.resized) == {
        "image_encoder.pos_embed",
        "image_encoder.blocks.1.attn.rel_pos_h",
        "image_encoder.blocks.1.attn.rel_pos_w",
    }
    assert sam.image_encoder.pos_embed.shape == (1, 16, 16, 32)
    model, _ = build_refiner(RefinerConfig.plain_sam(sam_cfg))
    model.eval()
    image, mask_input, points, labels = _prompts(2, mask_side=64)
    predictor = SamPredictor(sam.eval())
    predictor.set_image(image)
    masks, _, low_res = predictor.predict(
        point_coords=points, point_labels=labels, mask_input=mask_input, multimask_output=False
    )
    ours = refine_image(model, image, mask_logits=mask_input, point_coords=points, point_labels=labels)
    np.testing.assert_array_equal(ours.mask, masks[0])
    np.testing.assert_allclose(ours.low_res_logits, low_res, rtol=0, atol=1e-5)


@pytest.mark.parametrize("variant", ["vit_b", "vit_l", "vit_h"])
def test_builders_have_the_official_layout(variant):
    with torch.device("meta"):
        official = sam_model_registry[variant]().state_dict()
        ours = SAM_BUILDERS[variant](SamConfig(variant=variant, image_size=1024)).state_dict()
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in official.items()}


def test_real_vit_b_checkpoint_loads_without_missing_keys(tmp_path):
    torch.manual_seed(0)
    sam = sam_model_registry["vit_b"]()
    path = tmp_path / "sam_vit_b.pth"
    torch.save(sam.state_dict(), path)
    del sam
    # Loaded at 512 px: the size-dependent tables are resized, nothing is missing or left over.
    built, report = build_sam(SamConfig(variant="vit_b", image_size=512, checkpoint=str(path)))
    assert report.missing == [] and report.unexpected == []
    assert "image_encoder.pos_embed" in report.resized
    assert built.image_encoder.pos_embed.shape == (1, 32, 32, 768)


def test_load_reports_keys_by_name(official, tmp_path):
    sam, _ = official
    state = sam.state_dict()
    state.pop("mask_decoder.iou_token.weight")
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    target, _ = build_sam(tiny_official_config(None))
    report = load_sam_checkpoint(target, path)
    assert report.missing == ["mask_decoder.iou_token.weight"]
    assert report.unexpected == ["extra.weight"]
