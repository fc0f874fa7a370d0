"""SAM built from segment-anything's own classes at any size, and official checkpoint loading.

``SAM_BUILDERS`` maps ``SamConfig.variant`` to a builder. ``vit_b``/``vit_l``/``vit_h`` use the
published architecture numbers (REFERENCE.md §4) so official state_dicts load key for key;
``tiny`` is the small default model (ENVIRONMENT.md's experiment); ``custom`` reads every number
from the config. The model input may differ from the checkpoint's 1024: absolute positional
embeddings and global-attention relative positions are resized when a checkpoint is loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

from stsam_refiner.config import SamConfig
from text4seg.core.checkpoints import check_safetensors, load_torch_checkpoint

_PIXEL_MEAN = (123.675, 116.28, 103.53)
_PIXEL_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class SamArch:
    """Architecture numbers of one SAM size."""

    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: tuple[int, ...]
    window_size: int = 14
    decoder_dim: int = 256
    decoder_mlp_dim: int = 2048


@dataclass
class LoadReport:
    """What a checkpoint load did, by parameter name."""

    missing: list[str] = field(default_factory=list)
    """Model keys the checkpoint did not provide (left at their initial values)."""
    unexpected: list[str] = field(default_factory=list)
    """Checkpoint keys the model has no place for (ignored)."""
    resized: list[str] = field(default_factory=list)
    """Keys whose tensors were interpolated to this model's input size."""


SAM_ARCHS: dict[str, SamArch] = {
    "tiny": SamArch(128, 4, 4, (1, 3), window_size=8, decoder_dim=128, decoder_mlp_dim=512),
    "vit_b": SamArch(768, 12, 12, (2, 5, 8, 11)),
    "vit_l": SamArch(1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": SamArch(1280, 32, 16, (7, 15, 23, 31)),
}


def _custom_arch(cfg: SamConfig) -> SamArch:
    return SamArch(
        cfg.encoder_embed_dim,
        cfg.encoder_depth,
        cfg.encoder_num_heads,
        cfg.encoder_global_attn_indexes,
        window_size=cfg.window_size,
        decoder_dim=cfg.decoder_dim,
        decoder_mlp_dim=cfg.decoder_mlp_dim,
    )


def sam_from_arch(arch: SamArch, image_size: int) -> Sam:
    """A randomly initialised ``Sam`` with ``arch`` at a square ``image_size`` input."""
    grid = image_size // 16
    encoder = ImageEncoderViT(
        img_size=image_size,
        patch_size=16,
        embed_dim=arch.embed_dim,
        depth=arch.depth,
        num_heads=arch.num_heads,
        mlp_ratio=4,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        qkv_bias=True,
        use_rel_pos=True,
        global_attn_indexes=arch.global_attn_indexes,
        window_size=arch.window_size,
        out_chans=arch.decoder_dim,
    )
    prompt_encoder = PromptEncoder(
        embed_dim=arch.decoder_dim,
        image_embedding_size=(grid, grid),
        input_image_size=(image_size, image_size),
        mask_in_chans=16,
    )
    decoder = MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(
            depth=2, embedding_dim=arch.decoder_dim, mlp_dim=arch.decoder_mlp_dim, num_heads=8
        ),
        transformer_dim=arch.decoder_dim,
        iou_head_depth=3,
        iou_head_hidden_dim=256,
    )
    return Sam(
        image_encoder=encoder,
        prompt_encoder=prompt_encoder,
        mask_decoder=decoder,
        pixel_mean=list(_PIXEL_MEAN),
        pixel_std=list(_PIXEL_STD),
    )


SAM_BUILDERS: dict[str, Callable[[SamConfig], Sam]] = {
    name: (lambda cfg, _arch=arch: sam_from_arch(_arch, cfg.image_size)) for name, arch in SAM_ARCHS.items()
}
SAM_BUILDERS["custom"] = lambda cfg: sam_from_arch(_custom_arch(cfg), cfg.image_size)


def build_sam(cfg: SamConfig) -> tuple[Sam, LoadReport | None]:
    """Build the configured SAM; fill it from ``cfg.checkpoint`` if set and return the load report."""
    if cfg.variant not in SAM_BUILDERS:
        raise ValueError(f"sam.variant {cfg.variant!r} not in {sorted(SAM_BUILDERS)}")
    sam = SAM_BUILDERS[cfg.variant](cfg)
    report = load_sam_checkpoint(sam, cfg.checkpoint) if cfg.checkpoint else None
    return sam, report


def read_sam_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """An official SAM checkpoint (a plain state_dict saved with ``torch.save``) or its safetensors
    copy, read without running code (``text4seg.core.checkpoints``: a pickle that needs more is
    refused with a one-line ``CheckpointRefusedError``)."""
    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(str(check_safetensors(path)))
    state = load_torch_checkpoint(path)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state_dict, got {type(state).__name__}")
    return state


def resize_to_model(
    state: dict[str, torch.Tensor], model_state: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Interpolate pos_embed (bicubic over the patch grid) and rel_pos (linear) to the model's shapes."""
    out, resized = dict(state), []
    for key, value in state.items():
        target = model_state.get(key)
        if target is None or target.shape == value.shape:
            continue
        if key.endswith("pos_embed") and value.dim() == 4:
            grid = F.interpolate(
                value.permute(0, 3, 1, 2).float(), size=target.shape[1:3], mode="bicubic", align_corners=False
            )
            out[key] = grid.permute(0, 2, 3, 1).to(value.dtype)
        elif ".rel_pos_" in key and value.dim() == 2:
            line = F.interpolate(
                value.T[None].float(), size=target.shape[0], mode="linear", align_corners=False
            )
            out[key] = line[0].T.to(value.dtype)
        else:
            raise ValueError(
                f"checkpoint {key} has shape {tuple(value.shape)}, model wants {tuple(target.shape)}"
            )
        resized.append(key)
    return out, resized


def load_sam_checkpoint(sam: Sam, path: str | Path) -> LoadReport:
    """Load an official-layout SAM state_dict into ``sam`` (any input size); report keys by name."""
    state, resized = resize_to_model(read_sam_state_dict(path), sam.state_dict())
    result = sam.load_state_dict(state, strict=False)
    return LoadReport(
        missing=list(result.missing_keys), unexpected=list(result.unexpected_keys), resized=resized
    )
