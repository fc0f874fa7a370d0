"""Zero-shot text probability from a pretrained detector, for baselines."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from text4seg.backbone.model import BackboneConfig, TextBackbone, build_backbone


def text_probability(
    image_rgb_uint8: np.ndarray,
    *,
    long_side: int = 960,
    backbone: TextBackbone | None = None,
) -> np.ndarray:
    """H×W float32 in [0, 1]: the detector's DB probability map of an HWC uint8 RGB image.

    The image is resized so its long side is ``long_side`` (PaddleOCR's default detection scale;
    at 256–512 px the detectors miss small words and some fire on texture) and the map is resized
    back to H×W. ``backbone`` defaults to a freshly built pretrained ``BackboneConfig()`` detector;
    pass one to reuse it across calls.
    """
    if image_rgb_uint8.ndim != 3 or image_rgb_uint8.shape[2] != 3 or image_rgb_uint8.dtype != np.uint8:
        raise ValueError(
            f"expected an H×W×3 uint8 RGB image, got shape {image_rgb_uint8.shape} dtype {image_rgb_uint8.dtype}"
        )
    if long_side < 1:
        raise ValueError(f"long_side must be positive, got {long_side}")
    if backbone is None:
        backbone = build_backbone(BackboneConfig())
    height, width = image_rgb_uint8.shape[:2]
    scale = long_side / max(height, width)
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    parameter = next(backbone.parameters())
    image = (
        torch.from_numpy(np.array(image_rgb_uint8, copy=True))
        .permute(2, 0, 1)[None]
        .to(parameter.device, torch.float32)
        / 255.0
    )
    with torch.inference_mode():
        resized = F.interpolate(image, size=size, mode="bilinear", antialias=True, align_corners=False)
        probability = backbone(resized.clamp(0.0, 1.0)).probability()
        probability = F.interpolate(probability, size=(height, width), mode="bilinear", align_corners=False)
    return probability[0, 0].clamp(0.0, 1.0).cpu().numpy().astype(np.float32)
