"""Pixel effects. Plates, outlines and shadows are painted *before* the text fill and count as
background (as TextSeg labels word effects); blur, noise and JPEG are applied to the finished image."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw


def paint(canvas: np.ndarray, region: np.ndarray, colour: np.ndarray, opacity: float = 1.0) -> None:
    """Blend `colour` into `canvas` (HxWx3 float32, in place) where `region` (HxW bool) is set."""
    canvas[region] = canvas[region] * (1.0 - opacity) + np.asarray(colour, np.float32) * opacity


def plate_region(shape: tuple[int, int], box: tuple[int, int, int, int], pad: int, radius: int) -> np.ndarray:
    """HxW bool rounded rectangle around `box` (x0, y0, x1, y1 exclusive) grown by `pad` pixels."""
    h, w = shape
    x0, y0, x1, y1 = box
    image = Image.new("L", (w, h), 0)
    rect = (max(x0 - pad, 0), max(y0 - pad, 0), min(x1 + pad, w) - 1, min(y1 + pad, h) - 1)
    ImageDraw.Draw(image).rounded_rectangle(rect, radius=radius, fill=255)
    return np.asarray(image) > 0


def outline_region(mask: np.ndarray, width: int) -> np.ndarray:
    """HxW bool ring of `width` pixels around the strokes (excluding the strokes themselves)."""
    from scipy.ndimage import binary_dilation

    grown = binary_dilation(mask, structure=np.ones((3, 3), bool), iterations=max(width, 1))
    return grown & ~mask


def shadow_region(mask: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """HxW bool copy of `mask` shifted by (dx, dy) pixels, minus the strokes themselves."""
    shifted = np.zeros_like(mask)
    h, w = mask.shape
    src = mask[max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)]
    shifted[max(dy, 0) : max(dy, 0) + src.shape[0], max(dx, 0) : max(dx, 0) + src.shape[1]] = src
    return shifted & ~mask


def post_process(
    image: np.ndarray, rng: np.random.Generator, *, p_blur: float, p_noise: float, p_jpeg: float
) -> tuple[np.ndarray, list[str]]:
    """Camera-like degradations on an HxWx3 uint8 image; returns the image and the names applied."""
    from scipy.ndimage import gaussian_filter

    applied: list[str] = []
    out = image.astype(np.float32)
    if rng.random() < p_blur:
        out = gaussian_filter(out, sigma=(rng.uniform(0.4, 1.3),) * 2 + (0,))
        applied.append("blur")
    if rng.random() < p_noise:
        out = out + rng.normal(0.0, rng.uniform(2.0, 9.0), size=out.shape)
        applied.append("noise")
    out = np.clip(out, 0, 255).astype(np.uint8)
    if rng.random() < p_jpeg:
        buffer = io.BytesIO()
        Image.fromarray(out).save(buffer, format="JPEG", quality=int(rng.integers(35, 92)))
        buffer.seek(0)
        out = np.asarray(Image.open(buffer).convert("RGB"))
        applied.append("jpeg")
    return out, applied
