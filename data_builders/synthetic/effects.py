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


def lighting_field(rng: np.random.Generator, size: int) -> np.ndarray:
    """HxW float32 gain in about [0.4, 1.25]: a gradient, a spotlight or a soft cast shadow.

    The darkest gain keeps 40 % of the light, so a text/background contrast is dimmed, never erased.
    """
    from scipy.ndimage import gaussian_filter

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    kind = rng.integers(3)
    if kind == 0:  # light falling off across the surface
        a = rng.uniform(0, 2 * np.pi)
        t = np.cos(a) * (xx - 0.5) + np.sin(a) * (yy - 0.5)
        return (1.0 + rng.uniform(0.3, 0.8) * t).clip(0.4, 1.25).astype(np.float32)
    if kind == 1:  # a spotlight (or vignette) around a random centre
        r = np.hypot(xx - rng.uniform(0.2, 0.8), yy - rng.uniform(0.2, 0.8))
        return (1.2 - rng.uniform(0.5, 1.0) * r).clip(0.4, 1.25).astype(np.float32)
    # a shadow with a soft edge across part of the image (a building, a tree, an awning)
    a = rng.uniform(0, 2 * np.pi)
    side = (np.cos(a) * (xx - 0.5) + np.sin(a) * (yy - 0.5)) > rng.uniform(-0.3, 0.3)
    gain = np.where(side, rng.uniform(0.45, 0.75), 1.0).astype(np.float32)
    return gaussian_filter(gain, sigma=size * rng.uniform(0.005, 0.03))


def low_resolution(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Downscale by 1.5-4x and back up (a far or small sign seen by a cheap camera); HxWx3 float32."""
    h, w = image.shape[:2]
    factor = rng.uniform(1.5, 4.0)
    small = Image.fromarray(np.clip(np.rint(image), 0, 255).astype(np.uint8)).resize(
        (max(8, int(w / factor)), max(8, int(h / factor))), Image.BOX
    )
    up = small.resize((w, h), (Image.BILINEAR, Image.BICUBIC)[int(rng.integers(2))])
    return np.asarray(up, np.float32)


def post_process(
    image: np.ndarray,
    rng: np.random.Generator,
    *,
    p_blur: float,
    p_noise: float,
    p_jpeg: float,
    p_lighting: float = 0.0,
    p_low_res: float = 0.0,
) -> tuple[np.ndarray, list[str]]:
    """Camera-like degradations on an HxWx3 uint8 image; returns the image and the names applied.

    Lighting and low resolution come first (in the scene, then the sensor) and draw from `rng` only
    when their probability is above 0, so configs without them keep their random stream.
    """
    from scipy.ndimage import gaussian_filter

    applied: list[str] = []
    out = image.astype(np.float32)
    if p_lighting > 0 and rng.random() < p_lighting:
        out = out * lighting_field(rng, out.shape[0])[..., None]
        applied.append("lighting")
    if p_low_res > 0 and rng.random() < p_low_res:
        out = low_resolution(out, rng)
        applied.append("low_res")
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
