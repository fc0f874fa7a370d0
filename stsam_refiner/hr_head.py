"""High-resolution mask head (ST-SAM, after Hi-SAM): full input-resolution logits.

Input: the mask decoder's upscaled embedding (B×D/8×4e×4e, captured from SAM's own
``output_upscaling``) and its first mask token (B×D). Two ConvTranspose 2×2/2 bring the features
to the input size S = 16e, four 3×3 convs refine them, and a hypernetwork MLP turns the mask token
into per-channel weights: ``logits = <MLP(token), features>`` per pixel.

Choices made here (docs/refiner.md):
- ``use_image``: the normalised full-resolution image is pixel-unshuffled (4×4 blocks → 48
  channels at 4e×4e) and concatenated to the decoder features, so the transposed convs can place
  stroke edges finer than SAM's 4e grid. ENVIRONMENT.md's experiment: this is what lifts thin strokes.
- ``backbone_features``: the text backbone's evidence joins at its own resolution — its
  1/2-resolution feature after the first transposed conv, its text probability after the second —
  so the full-resolution convs see a pretrained detector's idea of where text is, not only pixels.
- The bilinearly upsampled low-res logits are added to the head's output, whose last conv starts at
  zero: at initialisation the HR logits are SAM's mask, upsampled.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from segment_anything.modeling import MaskDecoder
from segment_anything.modeling.common import LayerNorm2d
from segment_anything.modeling.mask_decoder import MLP
from torch import nn

from stsam_refiner.config import HRHeadConfig
from text4seg.backbone import BackboneFeatures

_UNSHUFFLE = 4


@dataclass
class DecoderFeatures:
    """Intermediate tensors of one ``MaskDecoder`` call."""

    upscaled: torch.Tensor | None = None
    """B×D/8×4e×4e float, output of ``output_upscaling``."""
    mask_tokens: torch.Tensor | None = None
    """B×T×D float mask-token outputs of the two-way transformer (T = num_mask_tokens)."""


@contextmanager
def capture_decoder_features(decoder: MaskDecoder) -> Iterator[DecoderFeatures]:
    """Record the upscaled embedding and mask tokens while SAM's own decoder forward runs."""
    feats = DecoderFeatures()

    def on_upscale(_module, _inputs, output):
        feats.upscaled = output

    def on_transformer(_module, _inputs, output):
        hs = output[0]
        feats.mask_tokens = hs[:, 1 : 1 + decoder.num_mask_tokens]

    handles = [
        decoder.output_upscaling.register_forward_hook(on_upscale),
        decoder.transformer.register_forward_hook(on_transformer),
    ]
    try:
        yield feats
    finally:
        for handle in handles:
            handle.remove()


class HRHead(nn.Module):
    """Decoder features (+ image, + text-backbone features) → B×1×S×S logits, S = 4 × the decoder's
    mask side."""

    def __init__(self, *, cfg: HRHeadConfig, decoder_dim: int, half_channels: int | None = None) -> None:
        """half_channels: the text backbone's 1/2-resolution width (needed with ``backbone_features``)."""
        super().__init__()
        self.use_image = cfg.use_image
        self.backbone_features = cfg.backbone_features
        if self.backbone_features and half_channels is None:
            raise ValueError("hr_head.backbone_features needs the text backbone's half_channels")
        extra_half, extra_full = (half_channels, 1) if self.backbone_features else (0, 0)
        ch = cfg.channels
        in_chans = decoder_dim // 8 + (3 * _UNSHUFFLE**2 if cfg.use_image else 0)
        # One Sequential (the layout old checkpoints were saved with); forward runs it in two halves
        # when backbone features join between them.
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(in_chans, ch, kernel_size=2, stride=2),
            LayerNorm2d(ch),
            nn.GELU(),
            nn.ConvTranspose2d(ch + extra_half, ch, kernel_size=2, stride=2),
            nn.GELU(),
        )
        layers: list[nn.Module] = []
        for i in range(4):
            layers.append(nn.Conv2d(ch + (extra_full if i == 0 else 0), ch, kernel_size=3, padding=1))
            if i < 3:
                layers.append(nn.GELU())
        self.refine = nn.Sequential(*layers)
        # Zero features at init → the HR output starts as SAM's upsampled mask.
        nn.init.zeros_(self.refine[-1].weight)
        nn.init.zeros_(self.refine[-1].bias)
        self.hypernet = MLP(decoder_dim, decoder_dim, ch, 3)

    def forward(
        self,
        upscaled: torch.Tensor,
        mask_token: torch.Tensor,
        low_res_logits: torch.Tensor,
        images: torch.Tensor | None = None,
        backbone: BackboneFeatures | None = None,
    ) -> torch.Tensor:
        """upscaled: B×D/8×m×m, mask_token: B×D, low_res_logits: B×1×m×m, images: B×3×4m×4m,
        backbone: the text backbone's cuts of those images (half B×C×2m×2m, logit B×1×4m×4m)
        → B×1×4m×4m float logits."""
        x = upscaled
        side = upscaled.shape[-1] * _UNSHUFFLE
        if self.use_image:
            if images is None:
                raise ValueError("HR head built with use_image needs the images")
            if images.shape[-1] != side:
                raise ValueError(f"HR head: image side {images.shape[-1]} != 4 × mask side {side}")
            x = torch.cat([x, F.pixel_unshuffle(images, _UNSHUFFLE)], dim=1)
        if not self.backbone_features:
            feats = self.refine(self.upsample(x))
        else:
            if backbone is None:
                raise ValueError("HR head built with backbone_features needs the backbone features")
            if backbone.db_logit.shape[-1] != side:
                raise ValueError(
                    f"HR head: backbone side {backbone.db_logit.shape[-1]} != 4 × mask side {side}"
                )
            half = torch.cat([self.upsample[:3](x), backbone.half], dim=1)
            full = torch.cat([self.upsample[3:](half), backbone.probability()], dim=1)
            feats = self.refine(full)
        weights = self.hypernet(mask_token)
        logits = torch.einsum("bc,bchw->bhw", weights, feats).unsqueeze(1)
        base = F.interpolate(low_res_logits, size=feats.shape[-2:], mode="bilinear", align_corners=False)
        return base + logits
