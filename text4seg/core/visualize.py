"""Drawing masks over images for people to look at (overlay PNGs, the web demo)."""

from __future__ import annotations

import numpy as np

# Distinct, saturated colours (RGB) that stay visible on photos; reused cyclically.
PALETTE = np.array(
    [
        (255, 48, 48),
        (48, 160, 255),
        (64, 220, 64),
        (255, 200, 0),
        (200, 64, 255),
        (0, 220, 200),
        (255, 128, 0),
        (255, 64, 180),
    ],
    dtype=np.float32,
)


def mask_outline(mask: np.ndarray) -> np.ndarray:
    """H×W bool: foreground pixels with a background 4-neighbour (or on the image border)."""
    padded = np.pad(mask, 1, constant_values=False)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inner


def overlay_masks(image: np.ndarray, masks: dict[str, np.ndarray], *, alpha: float = 0.5) -> np.ndarray:
    """H×W×3 uint8: each H×W bool mask tinted with its palette colour (by insertion order) at
    ``alpha`` and outlined at full strength; the image itself is left untouched where no mask is."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha {alpha} outside [0, 1]")
    out = image.astype(np.float32)
    for k, mask in enumerate(masks.values()):
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != image.shape[:2]:
            raise ValueError(f"mask shape {mask.shape} != image size {image.shape[:2]}")
        colour = PALETTE[k % len(PALETTE)]
        out[mask] = (1 - alpha) * out[mask] + alpha * colour
        out[mask_outline(mask)] = colour
    return np.clip(out.round(), 0, 255).astype(np.uint8)
