"""Growing a refiner into a larger config (stsam_refiner.build.warm_start), and the training samples
that match how the default MLLM answers (word-region grids) and how inference shows the backbone the
photo (its own sharp view)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from refiner_support import randomize_zero_params, small_refiner_config, text_encoder, tiny_text_dataset

from stsam_refiner.build import build_refiner, save_refiner, warm_start
from stsam_refiner.data import AugmentConfig, CoarseConfig, RefinerTrainSet, collate
from stsam_refiner.train import TrainConfig, train

torch.set_num_threads(1)

NO_DENSE = {"dense_prompt": {"enabled": False}}


def _batch(size: int = 128) -> dict:
    dataset = RefinerTrainSet(
        rows=tiny_text_dataset(2, size=96),
        image_size=size,
        coarse=CoarseConfig(),
        augment=AugmentConfig(enabled=False),
    )
    return collate([dataset[i] for i in range(2)])


def _hr_logits(model, batch) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        out = model(model.sam.preprocess(batch["images"]), batch["mask_prompts"], descriptions=[None, None])
    return out.hr_logits


def test_grown_refiner_starts_as_the_one_it_grew_from(tmp_path):
    torch.manual_seed(0)
    old, _ = build_refiner(small_refiner_config(**NO_DENSE), text_encoder=text_encoder())
    randomize_zero_params(old)  # the HR head's last conv is zero at init: give it something to carry
    save_refiner(old, tmp_path / "old.safetensors")
    grown_cfg = small_refiner_config(**NO_DENSE, hr_head={"backbone_features": True})
    torch.manual_seed(1)
    grown, _ = build_refiner(grown_cfg, text_encoder=text_encoder())
    randomize_zero_params(grown, seed=1)
    batch = _batch()
    before = _hr_logits(grown, batch)

    report = warm_start(grown, tmp_path / "old.safetensors")

    assert report.grown == ["hr_head.upsample.3.weight", "hr_head.refine.0.weight"]
    assert report.dropped == [] and all(name.startswith("text_backbone.") for name in report.fresh)
    assert len(report.copied) + len(report.grown) == len(old.state_dict())
    expected = _hr_logits(old, batch)
    torch.testing.assert_close(_hr_logits(grown, batch), expected, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(before, expected, atol=1e-2)  # a fresh grown model does differ
    # the new input channels start at zero and old ones are the old weights
    weight = grown.hr_head.refine[0].weight
    assert not weight[:, 8:].any() and torch.equal(weight[:, :8], old.hr_head.refine[0].weight)


def test_warm_start_reports_replaced_parts_and_training_reaches_the_new_inputs(tmp_path):
    old, _ = build_refiner(small_refiner_config(), text_encoder=text_encoder())
    save_refiner(old, tmp_path / "old.safetensors")
    cfg = small_refiner_config(dense_prompt={"source": "text_backbone"}, hr_head={"backbone_features": True})
    grown, _ = build_refiner(cfg, text_encoder=text_encoder())
    report = warm_start(grown, tmp_path / "old.safetensors")
    # The SegFormer dense prompt has no place in the backbone one; the backbone's own prompt starts fresh.
    assert any(name.startswith("dense_prompt.segformer.") for name in report.dropped)
    assert "dense_prompt.norm.weight" in report.fresh and "sam.mask_decoder.iou_token.weight" in report.copied

    data = tmp_path / "data"
    tiny_text_dataset(4, size=96).save_to_disk(str(data))
    model_yaml = tmp_path / "grown.yaml"
    model_yaml.write_text(yaml.safe_dump(cfg.to_dict()))
    train_cfg = TrainConfig(
        model_config=str(model_yaml), warm_start=str(tmp_path / "old.safetensors"), data=str(data),
        output_dir=str(tmp_path / "out"), steps=2, batch_size=2, lr=1e-3, warmup_steps=1, save_every=2,
        log_every=1, threads=1, augment=AugmentConfig(enabled=False),
    )  # fmt: skip
    result = train(train_cfg)
    assert result.step == 2
    written = json.loads((tmp_path / "out" / "warm_start.json").read_text())
    assert written["grown"] == report.grown
    from stsam_refiner.build import load_refiner

    trained, _ = load_refiner(result.checkpoint, text_encoder=text_encoder())
    assert trained.hr_head.refine[0].weight[:, 8:].any()  # the backbone's probability now counts
    with pytest.raises(ValueError, match="not both"):
        train(TrainConfig(**{**train_cfg.__dict__, "init_checkpoint": str(tmp_path / "old.safetensors")}))


def _two_bar_word_rows():
    """One image with one 'word' made of two bars 40 px apart: its region (hull) spans the gap."""
    import datasets
    from PIL import Image

    from data_builders.synthetic.writers import encode_rle

    image = np.full((128, 128, 3), 30, np.uint8)
    mask = np.zeros((128, 128), np.uint8)
    mask[40:88, 20:26] = mask[40:88, 100:106] = 255
    image[mask > 0] = 230
    features = datasets.Features(
        {"image": datasets.Image(), "mask": datasets.Image(), "instance_masks": [datasets.Value("string")]}
    )
    row = {
        "image": Image.fromarray(image),
        "mask": Image.fromarray(mask, "L"),
        "instance_masks": [encode_rle(mask > 0)],
    }
    return datasets.Dataset.from_list([row], features=features)


def test_region_grids_and_the_backbones_sharp_view():
    rows = _two_bar_word_rows()
    coarse = {"grid": 8, "threshold": 0.03, "drop_prob": 0.0, "add_prob": 0.0, "shift_prob": 0.0}
    plain = RefinerTrainSet(
        rows=rows, image_size=64, coarse=CoarseConfig(**coarse), augment=AugmentConfig(enabled=False)
    )[0]
    regions = RefinerTrainSet(
        rows=rows, image_size=64, coarse=CoarseConfig(**coarse, regions=True), augment=AugmentConfig(enabled=False),
        view_size=128,
    )[0]  # fmt: skip
    # strokes mark the two bars' columns; the word's region fills the gap between them
    assert plain.coarse_grid[3, 1] and plain.coarse_grid[3, 6] and not plain.coarse_grid[3, 3]
    assert regions.coarse_grid[3, 1:7].all() and not regions.coarse_grid[0].any()
    assert plain.view is None and regions.view.shape == (3, 128, 128)
    assert regions.image.shape == plain.image.shape == (3, 64, 64)
    assert regions.view.max() <= 1.0 and regions.view[:, 60, 22] == pytest.approx(230 / 255, abs=0.02)
    assert abs(float(regions.target.sum() - plain.target.sum())) < 0.1 * float(plain.target.sum())
    batch = collate([regions, regions])
    assert batch["views"].shape == (2, 3, 128, 128) and collate([plain])["views"] is None
    with pytest.raises(ValueError, match="instance_masks"):
        RefinerTrainSet(
            rows=tiny_text_dataset(1), image_size=64, coarse=CoarseConfig(regions=True),
            augment=AugmentConfig(enabled=False),
        )  # fmt: skip
