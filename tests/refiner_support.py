"""Shared helpers for the refiner tests: tiny SAMs, a tiny dataset, a cached text encoder."""

from __future__ import annotations

import functools

import numpy as np
import torch

from stsam_refiner.config import RefinerConfig, SamConfig

# The architecture of ``official_tiny_sam`` expressed as a ``custom`` SamConfig (decoder at SAM's 256).
TINY_OFFICIAL = {
    "variant": "custom",
    "encoder_embed_dim": 32,
    "encoder_depth": 2,
    "encoder_num_heads": 2,
    "encoder_global_attn_indexes": (1,),
    "window_size": 14,
    "decoder_dim": 256,
    "decoder_mlp_dim": 2048,
}


def official_tiny_sam(seed: int = 0):
    """A small SAM made by segment-anything's own builder (the one behind ``sam_model_registry``),
    with its zero-initialised positional tables randomised so they matter."""
    from segment_anything.build_sam import _build_sam

    torch.manual_seed(seed)
    sam = _build_sam(
        encoder_embed_dim=TINY_OFFICIAL["encoder_embed_dim"],
        encoder_depth=TINY_OFFICIAL["encoder_depth"],
        encoder_num_heads=TINY_OFFICIAL["encoder_num_heads"],
        encoder_global_attn_indexes=list(TINY_OFFICIAL["encoder_global_attn_indexes"]),
    )
    with torch.no_grad():
        for name, p in sam.named_parameters():
            if "rel_pos" in name or "pos_embed" in name:
                p.normal_(0, 0.05)
    return sam.eval()


def tiny_official_config(checkpoint: str, image_size: int = 1024) -> SamConfig:
    """SamConfig that rebuilds ``official_tiny_sam``'s architecture at ``image_size``."""
    return SamConfig(image_size=image_size, checkpoint=checkpoint, **TINY_OFFICIAL)


def small_refiner_config(**sections) -> RefinerConfig:
    """The tiny default refiner at 128 px with a narrow SAM (fast tests); sections override parts."""
    data = {
        "sam": {"variant": "custom", "image_size": 128, "freeze": False, "encoder_embed_dim": 32,
                "encoder_depth": 2, "encoder_num_heads": 2, "encoder_global_attn_indexes": [1],
                "window_size": 4, "decoder_dim": 32, "decoder_mlp_dim": 64},
        "dense_prompt": {"freeze_encoder": False, "hidden_dim": 16},
        "alignment": {"mlp_dim": 64},
        "hr_head": {"channels": 8},
    }  # fmt: skip
    for key, value in sections.items():
        data.setdefault(key, {}).update(value)
    return RefinerConfig.from_dict(data)


@functools.lru_cache(maxsize=1)
def text_encoder():
    """The offline MiniLM encoder, loaded once per test session."""
    from stsam_refiner.config import TextPromptConfig
    from stsam_refiner.text_encoders import build_text_encoder

    return build_text_encoder(TextPromptConfig())


def randomize_zero_params(model: torch.nn.Module, seed: int = 0) -> None:
    """Give every all-zero trainable parameter (zero-initialised up-projections, outputs) small
    random values, so that each addition changes the output in equality tests."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad and p.numel() and not p.any():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)


def tiny_text_dataset(n: int = 4, size: int = 96, seed: int = 0):
    """A ``datasets.Dataset`` with ``image`` (RGB) and ``mask`` (L 0/255): bright bars on noise."""
    import datasets
    from PIL import Image

    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        image = rng.integers(0, 120, (size, size, 3), dtype=np.uint8)
        mask = np.zeros((size, size), dtype=np.uint8)
        for _ in range(3):
            y, x = rng.integers(5, size - 20, size=2)
            mask[y : y + 4, x : x + 16] = 255
        image[mask > 0] = rng.integers(180, 255, size=3, dtype=np.uint8)
        rows.append(
            {"image": Image.fromarray(image, "RGB"), "mask": Image.fromarray(mask, "L"), "split": "train"}
        )
    features = datasets.Features(
        {"image": datasets.Image(), "mask": datasets.Image(), "split": datasets.Value("string")}
    )
    return datasets.Dataset.from_list(rows, features=features)
