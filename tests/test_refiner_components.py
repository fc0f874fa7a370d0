"""Refiner pieces on their own: adapters, prompts, alignment, HR head, coarse masks, configs."""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from refiner_support import text_encoder
from segment_anything.modeling.image_encoder import Block

from stsam_refiner.adapters import AdaptedBlock
from stsam_refiner.config import (
    AdapterConfig,
    AlignmentConfig,
    DensePromptConfig,
    HRHeadConfig,
    RefinerConfig,
    SamConfig,
    TextPromptConfig,
)
from stsam_refiner.data import AugmentConfig, CoarseConfig, cached_grid, damage_grid
from stsam_refiner.dense_prompt import DenseVisualPrompt
from stsam_refiner.hr_head import HRHead
from stsam_refiner.predict import coarse_to_mask_prompt
from stsam_refiner.text_prompt import CrossModalAlignment, SparseTextPrompt, load_sentences
from stsam_refiner.train import TrainConfig

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]


def test_adapted_block_starts_as_the_block_and_keeps_its_names():
    torch.manual_seed(0)
    block = Block(dim=16, num_heads=2, window_size=4, use_rel_pos=True, input_size=(4, 4))
    x = torch.randn(2, 6, 6, 16)
    expected = block(x)
    adapted = AdaptedBlock(block=block, cfg=AdapterConfig())
    assert torch.equal(adapted(x), expected)
    names = set(adapted.state_dict())
    assert set(block.state_dict()) <= names
    assert {n.split(".")[0] for n in names - set(block.state_dict())} == {"attn_adapter", "mlp_adapter"}


def test_dense_prompt_at_a_smaller_segformer_input():
    prompt = DenseVisualPrompt(cfg=DensePromptConfig(input_size=64), out_chans=32, mask_size=32)
    torch.nn.init.normal_(prompt.prompt_encoder[-1].weight)
    out = prompt(torch.randn(1, 3, 128, 128))
    assert out.shape == (1, 32, 8, 8) and out.abs().max() > 0
    with pytest.raises(ValueError, match="100"):
        DensePromptConfig(input_size=100)


def test_parallel_text_adapter_uses_the_text():
    torch.manual_seed(0)
    block = Block(dim=16, num_heads=2)
    adapted = AdaptedBlock(block=block, cfg=AdapterConfig(parallel_text=True), text_dim=8)
    torch.nn.init.normal_(adapted.mlp_adapter.up.weight)
    x = torch.randn(1, 4, 4, 16)
    a, b = adapted(x, torch.zeros(1, 8)), adapted(x, torch.ones(1, 8))
    assert (a - b).abs().max() > 1e-3
    with pytest.raises(ValueError, match="text vector"):
        adapted(x)


def test_dense_prompt_shape_and_zero_start():
    prompt = DenseVisualPrompt(cfg=DensePromptConfig(), out_chans=32, mask_size=32)
    out = prompt(torch.randn(2, 3, 128, 128))
    assert out.shape == (2, 32, 8, 8)
    assert out.abs().max() == 0  # SAM's own dense prompt is unchanged until training moves it
    assert not any(p.requires_grad for p in prompt.segformer.parameters())
    prompt.train()
    assert prompt.scale_mlps.training and not prompt.segformer.training


def test_text_prompt_tokens_and_descriptions():
    sentences = load_sentences(REPO / "configs" / "text_prompts.yaml")
    prompt = SparseTextPrompt(
        cfg=TextPromptConfig(num_queries=2), encoder=text_encoder(), sentences=sentences, out_dim=32
    )
    tokens = prompt(2, ["thin red letters on a white sign", None])
    assert tokens.tokens.shape == (2, 2 + len(sentences) + 1, 32)
    assert tokens.pooled.shape == (2, text_encoder().dim)
    assert (tokens.tokens >= 0).all()  # TextAffine ends in ReLU
    # Shared tokens are the same for both images; the description token differs.
    assert torch.equal(tokens.tokens[0, :-1], tokens.tokens[1, :-1])
    assert not torch.equal(tokens.tokens[0, -1], tokens.tokens[1, -1])
    with pytest.raises(ValueError, match="descriptions"):
        prompt(2, ["only one"])


def test_alignment_starts_at_zero_then_depends_on_text():
    torch.manual_seed(0)
    align = CrossModalAlignment(cfg=AlignmentConfig(mlp_dim=32), dim=16)
    image, pe = torch.randn(1, 16, 4, 4), torch.randn(1, 16, 4, 4)
    assert align(image, pe, torch.randn(1, 3, 16)).abs().max() == 0
    torch.nn.init.normal_(align.out.weight)
    a, b = align(image, pe, torch.randn(1, 3, 16)), align(image, pe, torch.randn(1, 3, 16))
    assert a.shape == (1, 16, 4, 4) and (a - b).abs().max() > 1e-4


def test_hr_head_starts_as_upsampled_low_res():
    head = HRHead(cfg=HRHeadConfig(channels=4), decoder_dim=32)
    low = torch.randn(1, 1, 8, 8)
    out = head(torch.randn(1, 4, 8, 8), torch.randn(1, 32), low, torch.randn(1, 3, 32, 32))
    up = torch.nn.functional.interpolate(low, size=32, mode="bilinear", align_corners=False)
    assert out.shape == (1, 1, 32, 32) and torch.allclose(out, up)
    with pytest.raises(ValueError, match="image side"):
        head(torch.randn(1, 4, 8, 8), torch.randn(1, 32), low, torch.randn(1, 3, 16, 16))


def test_coarse_prompt_follows_sams_resize_and_pad():
    grid = np.zeros((4, 4), bool)
    grid[0, 0] = True
    prompt = coarse_to_mask_prompt(grid, original_size=(100, 200), mask_size=64)
    assert prompt.shape == (1, 64, 64)
    assert prompt[0, 0, 0] > 6.8 and prompt[0, 0, 63] < -6.8  # the grid covers the resized image
    assert (prompt[0, 32:] == 0).all()  # rows below the 32-row resized image are padding


def test_damage_grid_drops_adds_and_shifts():
    grid = np.zeros((16, 16), bool)
    grid[4:8, 2:14] = True
    rng = np.random.default_rng(0)
    dropped = damage_grid(grid, CoarseConfig(drop_prob=1.0, add_prob=0.0, shift_prob=0.0), rng)
    assert not dropped.any()
    noisy = damage_grid(grid, CoarseConfig(drop_prob=0.0, add_prob=0.5, shift_prob=0.0), rng)
    assert (noisy & ~grid).sum() > 50 and (noisy & grid).sum() == grid.sum()
    shifted = damage_grid(grid, CoarseConfig(drop_prob=0.0, add_prob=0.0, shift_prob=1.0, max_shift=2), rng)
    assert shifted.sum() <= grid.sum()


def test_cached_answer_becomes_a_grid():
    from text4seg.core.codec import encode_rrle, format_answer

    labels = [["others"] * 4 for _ in range(4)]
    labels[1][2] = "text"
    answer = format_answer(encode_rrle(labels), sentence="Sure.")
    grid = cached_grid(answer, 4)
    assert grid.sum() == 1 and grid[1, 2]


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "refiner").glob("*.yaml")), ids=lambda p: p.name)
def test_every_refiner_yaml_parses(path):
    data = yaml.safe_load(path.read_text())
    cfg = TrainConfig.from_yaml(path) if "model_config" in data else RefinerConfig.from_yaml(path)
    if isinstance(cfg, TrainConfig):
        assert RefinerConfig.from_yaml(REPO / cfg.model_config).sam.variant
    else:
        assert RefinerConfig.from_dict(cfg.to_dict()) == cfg


def test_text_prompts_yaml_has_sentences():
    assert len(load_sentences(REPO / "configs" / "text_prompts.yaml")) >= 5


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: SamConfig(image_size=100), "100"),
        (lambda: SamConfig(encoder_depth=2, encoder_global_attn_indexes=(5,)), r"\[5\]"),
        (lambda: RefinerConfig(text_prompt=TextPromptConfig(enabled=False)), "alignment"),
        (lambda: RefinerConfig.from_dict({"sam": {"bogus": 1}}), "bogus"),
        (lambda: CoarseConfig(drop_prob=1.5), "1.5"),
        (lambda: AugmentConfig(perspective=1.5), "perspective"),
        (lambda: AugmentConfig(bend=0.5), "bend"),
        (lambda: AugmentConfig(bend_knots=1), "bend_knots"),
        (lambda: AugmentConfig(bend_prob=2.0), "bend_prob"),
    ],
)
def test_configs_reject_bad_values(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    "warp",
    [
        {"perspective": 0.5, "perspective_prob": 1.0},
        {"bend": 0.05, "bend_prob": 1.0},
    ],
    ids=["perspective", "bend"],
)
def test_geometric_augmentation_moves_the_masks_with_the_image(warp):
    """A white bar drawn on black and its mask stay on the same pixels through the warp."""
    from torchvision import tv_tensors

    from stsam_refiner.data import build_transform

    torch.manual_seed(0)
    transform = build_transform(
        AugmentConfig(rotation=0.0, scale_min=1.0, scale_max=1.0, brightness=0, contrast=0,
                      saturation=0, hue=0, **warp),
        96,
    )  # fmt: skip
    bar = torch.zeros(96, 96, dtype=torch.uint8)
    bar[40:56, 10:86] = 1
    image, mask = transform(tv_tensors.Image((bar * 255).expand(3, -1, -1)), tv_tensors.Mask(bar[None]))
    bright, inside = image[0] > 127, mask[0] > 0
    assert not torch.equal(inside, bar.bool())  # the warp moved it
    agreement = (bright & inside).sum() / (bright | inside).sum()
    assert agreement > 0.9, float(agreement)


def test_bend_shifts_no_more_than_its_bound():
    from stsam_refiner.data import smooth_bend

    torch.manual_seed(0)
    bend = smooth_bend(0.05, 4)
    shifts = torch.stack([bend.make_params([torch.zeros(3, 64, 64)])["displacement"] for _ in range(20)])
    assert shifts.shape[-3:] == (64, 64, 2)
    assert 0.02 < float(shifts.abs().max()) <= 2 * 0.05 + 1e-6  # grid_sample units: 2 per side


def test_training_sample_from_cached_mllm_answer():
    from refiner_support import tiny_text_dataset

    from stsam_refiner.data import RefinerTrainSet
    from text4seg.core.codec import encode_rrle, format_answer

    labels = [["others"] * 4 for _ in range(4)]
    labels[0][1] = labels[3][3] = "text"
    answer = format_answer(encode_rrle(labels), sentence="Sure.")
    rows = tiny_text_dataset(2, size=96).add_column("coarse", [answer, answer])
    dataset = RefinerTrainSet(
        rows=rows,
        image_size=128,
        coarse=CoarseConfig(source="cached", grid=4),
        augment=AugmentConfig(enabled=False),
    )
    sample = dataset[0]
    assert sample.coarse_grid.tolist() == [[label == "text" for label in row] for row in labels]
    assert sample.mask_prompt.shape == (1, 32, 32) and sample.target.shape == (1, 128, 128)
    assert sample.mask_prompt[0, 0, 8:16].min() > 6.8 and sample.mask_prompt[0, 0, :8].max() < -6.8
    with pytest.raises(ValueError, match="coarse"):
        RefinerTrainSet(
            rows=tiny_text_dataset(1),
            image_size=128,
            coarse=CoarseConfig(source="cached"),
            augment=AugmentConfig(),
        )


def test_refine_image_returns_masks_at_the_original_size():
    from refiner_support import small_refiner_config

    from stsam_refiner.build import build_refiner
    from stsam_refiner.predict import refine_image

    torch.manual_seed(0)
    model, _ = build_refiner(small_refiner_config(), text_encoder=text_encoder())
    model.eval()
    image = np.random.default_rng(0).integers(0, 255, (90, 140, 3), dtype=np.uint8)
    grid = np.zeros((16, 16), bool)
    grid[5:9, 3:12] = True
    out = refine_image(model, image, coarse=grid, description="white letters")
    assert out.mask.shape == out.logits.shape == (90, 140) and out.mask.dtype == bool
    assert out.logits.dtype == np.float32 and out.low_res_logits.shape == (1, 32, 32)
    with pytest.raises(ValueError, match="not both"):
        refine_image(model, image, coarse=grid, mask_logits=out.low_res_logits)

    # flips: the mean of the plain logits and each flipped view's logits flipped back
    tta = refine_image(model, image, coarse=grid, description="white letters", flips=("h", "v"))
    h = refine_image(model, image[:, ::-1].copy(), coarse=grid[:, ::-1].copy(), description="white letters")
    v = refine_image(model, image[::-1].copy(), coarse=grid[::-1].copy(), description="white letters")
    expected = (out.logits + h.logits[:, ::-1] + v.logits[::-1]) / 3
    np.testing.assert_allclose(tta.logits, expected, rtol=1e-5, atol=1e-5)
    assert np.array_equal(tta.mask, expected > 0) and tta.iou == out.iou
    assert not np.allclose(h.logits[:, ::-1], out.logits)  # the views differ: the check has teeth
    with pytest.raises(ValueError, match=r"flips \['x'\]"):
        refine_image(model, image, coarse=grid, flips=("x",))
    with pytest.raises(ValueError, match="coarse mask prompt only"):
        refine_image(model, image, mask_logits=out.low_res_logits, flips=("h",))
