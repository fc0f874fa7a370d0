"""TSPP head: inputs, padding invariance, learning, checkpoints; point-prompt SAM training entry."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from stsam_refiner.data import CoarseConfig
from stsam_refiner.points.config import PrompterConfig, TargetConfig
from stsam_refiner.points.prompter import SparsePointPrompter, predict_prob, soft_class_maps
from stsam_refiner.points.shapes import make_scene
from stsam_refiner.points.train_prompter import (
    collate,
    load_prompter,
    make_example,
    save_prompter,
    train_prompter,
)

torch.set_num_threads(1)


def test_soft_class_maps_by_hand():
    grid = np.array([[0, 1], [2, 1]])
    onehot = soft_class_maps(grid, 2)
    assert onehot.tolist() == [[[0, 1], [0, 1]], [[0, 0], [1, 0]]]
    conf = np.array([[0.5, 0.8], [1.0, 0.6]])
    soft = soft_class_maps(grid, 2, conf)
    # Cell (0, 0) is background at 0.5: each class gets (1 − 0.5) / 2.
    assert soft[:, 0, 0] == pytest.approx([0.25, 0.25])
    assert soft[:, 0, 1] == pytest.approx([0.8, 0.1])
    assert soft[:, 1, 0] == pytest.approx([0.0, 1.0])
    with pytest.raises(ValueError, match="confidence"):
        soft_class_maps(grid, 2, np.ones((3, 3)))


def test_padded_classes_change_nothing():
    torch.manual_seed(0)
    prompter = SparsePointPrompter(cfg=PrompterConfig(max_classes=4)).eval()
    coarse = torch.rand(1, 2, 16, 16)
    image = torch.randn(1, 3, 32, 32)
    base = prompter(coarse, torch.ones(1, 2, dtype=torch.bool), image)
    padded_coarse = torch.cat([coarse, torch.rand(1, 2, 16, 16)], 1)
    valid = torch.tensor([[True, True, False, False]])
    padded = prompter(padded_coarse, valid, image)
    torch.testing.assert_close(padded.prob, base.prob, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(padded.class_logits[:, :3], base.class_logits, rtol=1e-5, atol=1e-5)
    assert (padded.class_logits[:, 3:] == -1e4).all() and (padded.prob >= 0).all()
    with pytest.raises(ValueError, match="max_classes 4"):
        prompter(torch.rand(1, 5, 16, 16), torch.ones(1, 5, dtype=torch.bool), image)


@pytest.fixture(scope="module")
def examples():
    rng = np.random.default_rng(0)
    out = []
    for _ in range(6):
        scene = make_scene(rng, size=64)
        masks = [m for m in scene.class_masks if m.any()]
        out.append(
            make_example(scene.image, masks, coarse_cfg=CoarseConfig(), target_cfg=TargetConfig(), rng=rng)
        )
    return out


def test_example_targets_and_labels_agree(examples):
    for ex in examples:
        k = len(ex.coarse)
        assert ex.target.shape == ex.labels.shape == (32, 32)
        assert ex.labels.max() <= k
        # Target mass only where the ground truth has a class.
        assert ex.target[ex.labels == 0].sum() == 0
    batch = collate(examples[:3], max_classes=8)
    assert batch["coarse"].shape[1] == max(len(ex.coarse) for ex in examples[:3])


def test_prompter_learns_and_round_trips(examples, tmp_path):
    torch.manual_seed(0)
    prompter = SparsePointPrompter(cfg=PrompterConfig())
    history = train_prompter(prompter, examples, steps=40, batch_size=4, lr=5e-3)
    first = np.mean([h["loss"] for h in history[:5]])
    last = np.mean([h["loss"] for h in history[-5:]])
    assert last < 0.6 * first
    path = tmp_path / "tspp.safetensors"
    save_prompter(prompter, path)
    again = load_prompter(path)
    ex = examples[0]
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    np.testing.assert_allclose(
        predict_prob(again, ex.coarse, image), predict_prob(prompter, ex.coarse, image)
    )


def test_prompter_command_is_reproducible(tmp_path):
    from safetensors.torch import load_file

    from stsam_refiner.points.train_prompter import main

    args = ["--scenes", "3", "--steps", "2", "--batch-size", "2", "--size", "64"]
    for name in ("a", "b"):
        torch.manual_seed(len(name) + ord(name))  # global state must not leak into the result
        main([*args, "--out", str(tmp_path / f"{name}.safetensors")])
    a, b = (load_file(str(tmp_path / f"{n}.safetensors")) for n in ("a", "b"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    main([*args, "--seed", "1", "--out", str(tmp_path / "c.safetensors")])
    c = load_file(str(tmp_path / "c.safetensors"))
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_point_sam_training_writes_and_resumes(tmp_path):
    from safetensors import safe_open

    from stsam_refiner.points.train_sam import PointSamTrainConfig, load_point_sam, train

    cfg = PointSamTrainConfig(
        image_size=64, batch_size=2, prompts_per_image=2, steps=2, pool_size=2, loss_size=32
    )
    ckpt = train(cfg, tmp_path, log=lambda m: None)
    with safe_open(str(ckpt), framework="pt") as f:
        assert f.metadata()["step"] == "2"
    sam = load_point_sam(ckpt, image_size=64)
    assert sam.image_encoder.img_size == 64
    train(replace(cfg, steps=3), tmp_path, log=lambda m: None)
    with safe_open(str(ckpt), framework="pt") as f:
        assert f.metadata()["step"] == "3"
