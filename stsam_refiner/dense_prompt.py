"""Dense visual prompt (ST-SAM eq. 2–4) from a SegFormer specialist or the pretrained text backbone.

``segformer``: transformers ``SegformerModel`` (MiT encoder, frozen by default) → per-scale MLP to a
common width → upsample to the finest scale → concat → Conv-ReLU-Conv → adaptive pool to SAM's mask
frame (4 × embedding, 256×256 for a 1024 input).

``text_backbone``: the shared PP-OCR detector's fused 1/4-resolution feature — already SAM's mask
frame for a square S×S input — with its text probability average- and max-pooled to the same grid
→ Conv-ReLU-Conv. The refiner runs the backbone once and hands the features over.

Both then go through the visual prompt encoder (two 2×2 stride-2 convs, each followed by LayerNorm
and GELU, then a 1×1 conv) → B×256×64×64 (for 1024), the shape of SAM's dense embedding. The last
1×1 conv starts at zero so that the refiner's dense prompt is SAM's coarse-mask embedding at
initialisation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from segment_anything.modeling.common import LayerNorm2d
from torch import nn

from stsam_refiner.config import DensePromptConfig
from text4seg.backbone import BackboneFeatures
from text4seg.core.checkpoints import check_pretrained_folder

# MiT numbers from the SegFormer paper; ``tiny`` is this project's CPU-sized variant.
SEGFORMER_CONFIGS: dict[str, dict] = {
    "tiny": {"hidden_sizes": [16, 32, 64, 128], "depths": [1, 1, 1, 1], "num_attention_heads": [1, 1, 2, 4]},
    "mit_b0": {"hidden_sizes": [32, 64, 160, 256], "depths": [2, 2, 2, 2]},
    "mit_b1": {"hidden_sizes": [64, 128, 320, 512], "depths": [2, 2, 2, 2]},
    "mit_b2": {"hidden_sizes": [64, 128, 320, 512], "depths": [3, 4, 6, 3]},
    "mit_b3": {"hidden_sizes": [64, 128, 320, 512], "depths": [3, 4, 18, 3]},
    "mit_b4": {"hidden_sizes": [64, 128, 320, 512], "depths": [3, 8, 27, 3]},
    "mit_b5": {"hidden_sizes": [64, 128, 320, 512], "depths": [3, 6, 40, 3]},
}


def build_segformer(cfg: DensePromptConfig) -> nn.Module:
    """A ``SegformerModel``: from ``cfg.pretrained`` if given, else randomly initialised."""
    from transformers import SegformerConfig, SegformerModel

    if cfg.pretrained:
        check_pretrained_folder(cfg.pretrained)
        return SegformerModel.from_pretrained(cfg.pretrained)
    if cfg.segformer not in SEGFORMER_CONFIGS:
        raise ValueError(f"dense_prompt.segformer {cfg.segformer!r} not in {sorted(SEGFORMER_CONFIGS)}")
    return SegformerModel(SegformerConfig(**SEGFORMER_CONFIGS[cfg.segformer]))


class VisualPromptEncoder(nn.Sequential):
    """Two Conv 2×2/2 (+LayerNorm2d, GELU) and a Conv 1×1: B×C×4e×4e → B×out×e×e."""

    def __init__(self, *, in_chans: int, hidden: int, out_chans: int) -> None:
        super().__init__(
            nn.Conv2d(in_chans, hidden // 4, kernel_size=2, stride=2),
            LayerNorm2d(hidden // 4),
            nn.GELU(),
            nn.Conv2d(hidden // 4, hidden, kernel_size=2, stride=2),
            LayerNorm2d(hidden),
            nn.GELU(),
            nn.Conv2d(hidden, out_chans, kernel_size=1),
        )
        nn.init.zeros_(self[-1].weight)
        nn.init.zeros_(self[-1].bias)


def _to_mask_frame(features: torch.Tensor, mask_size: int) -> torch.Tensor:
    """B×C×h×w → B×C×M×M: average-pooled when larger, bilinearly upsampled when smaller."""
    if features.shape[-1] >= mask_size:
        return F.adaptive_avg_pool2d(features, mask_size)
    return F.interpolate(features, size=mask_size, mode="bilinear", align_corners=False)


class DenseVisualPrompt(nn.Module):
    """SegFormer features → dense prompt B×D×e×e, added to SAM's coarse-mask dense embedding."""

    def __init__(self, *, cfg: DensePromptConfig, out_chans: int, mask_size: int) -> None:
        super().__init__()
        self.segformer = build_segformer(cfg)
        if cfg.freeze_encoder:
            self.segformer.requires_grad_(False)
        self.freeze_encoder = cfg.freeze_encoder
        self.mask_size = mask_size
        self.input_size = cfg.input_size
        sizes = self.segformer.config.hidden_sizes
        self.scale_mlps = nn.ModuleList(nn.Linear(c, cfg.hidden_dim) for c in sizes)
        self.fuse = nn.Sequential(
            nn.Conv2d(cfg.hidden_dim * len(sizes), cfg.hidden_dim, kernel_size=1),
            nn.ReLU(),
            nn.Conv2d(cfg.hidden_dim, cfg.hidden_dim, kernel_size=1),
        )
        self.prompt_encoder = VisualPromptEncoder(
            in_chans=cfg.hidden_dim, hidden=cfg.prompt_hidden, out_chans=out_chans
        )

    def train(self, mode: bool = True) -> DenseVisualPrompt:
        """A frozen encoder stays in eval mode (no stochastic depth on features it cannot adapt to)."""
        super().train(mode)
        if self.freeze_encoder:
            self.segformer.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: B×3×S×S, normalised as for SAM (ImageNet statistics, as SegFormer expects)."""
        if self.input_size and self.input_size != images.shape[-1]:
            images = F.interpolate(
                images, size=self.input_size, mode="bilinear", align_corners=False, antialias=True
            )
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_encoder):
            states = self.segformer(pixel_values=images, output_hidden_states=True).hidden_states
        finest = states[0].shape[-2:]
        scales = []
        for mlp, feat in zip(self.scale_mlps, states, strict=True):
            proj = mlp(feat.flatten(2).transpose(1, 2)).transpose(1, 2)
            proj = proj.reshape(feat.shape[0], -1, *feat.shape[-2:])
            scales.append(F.interpolate(proj, size=finest, mode="bilinear", align_corners=False))
        fused = self.fuse(torch.cat(scales, dim=1))
        return self.prompt_encoder(_to_mask_frame(fused, self.mask_size))


class BackboneDensePrompt(nn.Module):
    """Text-backbone features → dense prompt B×D×e×e, added to SAM's coarse-mask dense embedding."""

    def __init__(
        self, *, cfg: DensePromptConfig, quarter_channels: int, out_chans: int, mask_size: int
    ) -> None:
        super().__init__()
        self.mask_size = mask_size
        # Per-pixel LayerNorm: the detector's fused features span about ±60 with a few loud channels.
        self.norm = LayerNorm2d(quarter_channels)
        self.fuse = nn.Sequential(
            nn.Conv2d(quarter_channels + 2, cfg.hidden_dim, kernel_size=1),
            nn.ReLU(),
            nn.Conv2d(cfg.hidden_dim, cfg.hidden_dim, kernel_size=1),
        )
        self.prompt_encoder = VisualPromptEncoder(
            in_chans=cfg.hidden_dim, hidden=cfg.prompt_hidden, out_chans=out_chans
        )

    def forward(self, features: BackboneFeatures) -> torch.Tensor:
        """features: the backbone's cuts of the B×3×S×S input (quarter B×C×S/4×S/4, logit B×1×S×S)."""
        quarter = features.quarter
        prob = features.probability()
        # Mean and max: a word's probability covers a few 4×4 cells; a thin stroke only lifts the max.
        grid = quarter.shape[-2:]
        prob = torch.cat([F.adaptive_avg_pool2d(prob, grid), F.adaptive_max_pool2d(prob, grid)], dim=1)
        fused = self.fuse(torch.cat([self.norm(quarter), prob], dim=1))
        return self.prompt_encoder(_to_mask_frame(fused, self.mask_size))


def _segformer_prompt(cfg: DensePromptConfig, out_chans: int, mask_size: int, quarter_channels: int | None):
    return DenseVisualPrompt(cfg=cfg, out_chans=out_chans, mask_size=mask_size)


def _backbone_prompt(cfg: DensePromptConfig, out_chans: int, mask_size: int, quarter_channels: int | None):
    if quarter_channels is None:
        raise ValueError("dense_prompt.source 'text_backbone' needs the text backbone's quarter_channels")
    return BackboneDensePrompt(
        cfg=cfg, quarter_channels=quarter_channels, out_chans=out_chans, mask_size=mask_size
    )


DENSE_PROMPTS = {"segformer": _segformer_prompt, "text_backbone": _backbone_prompt}
"""``dense_prompt.source`` → builder (keys are ``stsam_refiner.config.DENSE_PROMPT_SOURCES``)."""


def build_dense_prompt(
    cfg: DensePromptConfig, *, out_chans: int, mask_size: int, quarter_channels: int | None = None
) -> DenseVisualPrompt | BackboneDensePrompt:
    """The dense prompt ``cfg.source`` names; ``quarter_channels`` sizes the ``text_backbone`` one."""
    return DENSE_PROMPTS[cfg.source](cfg, out_chans, mask_size, quarter_channels)
