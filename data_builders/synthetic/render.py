"""Drawing one text instance as an alpha layer: straight or curved baseline, rotation, perspective.

The alpha layer is what later becomes the stroke mask (alpha >= 0.5), so every geometric change is
applied to the alpha itself and the mask can never drift from the drawn pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from data_builders.synthetic.fonts import load_font


@dataclass(frozen=True, kw_only=True)
class TextLayer:
    """A rendered word before placement.

    Attributes:
        alpha: hxw float32 coverage in [0, 1] (1 = fully inside a glyph stroke).
        angle: in-plane rotation applied, degrees counter-clockwise.
        curved: whether the baseline is an arc.
        perspective: whether a projective warp was applied.
    """

    alpha: np.ndarray
    angle: float
    curved: bool
    perspective: bool


def _draw_straight(text: str, font) -> Image.Image:
    x0, y0, x1, y1 = font.getbbox(text)
    pad = 2
    canvas = Image.new("L", (x1 - x0 + 2 * pad, y1 - y0 + 2 * pad), 0)
    ImageDraw.Draw(canvas).text((pad - x0, pad - y0), text, font=font, fill=255)
    return canvas


def _draw_curved(text: str, font, bend: float) -> Image.Image:
    """Characters placed along a circular arc; `bend` is the arc's total angle in radians (sign = up/down)."""
    advance = max(font.getlength(text), 1.0)
    radius = advance / abs(bend)
    ascent, descent = font.getmetrics()
    height = ascent + descent
    side = int(2 * (radius + height)) + 4
    canvas = Image.new("L", (side, side), 0)
    centre = side / 2
    cursor = -advance / 2
    sign = 1.0 if bend > 0 else -1.0
    for ch in text:
        width = font.getlength(ch)
        theta = (cursor + width / 2) / radius  # angle of this glyph's centre along the arc
        cursor += width
        if ch == " ":
            continue
        glyph = Image.new("L", (int(width) + height + 4, 2 * height + 4), 0)
        ImageDraw.Draw(glyph).text((height // 2 + 2, height // 2 + 2), ch, font=font, fill=255)
        glyph = glyph.rotate(-np.degrees(theta) * sign, resample=Image.BILINEAR, expand=True)
        # Glyph centre sits on the arc; the arc bulges up for bend > 0 and down for bend < 0.
        gx = centre + radius * np.sin(theta)
        gy = centre + sign * radius * (1 - np.cos(theta))
        box = (int(round(gx - glyph.width / 2)), int(round(gy - glyph.height / 2)))
        layer = Image.new("L", canvas.size, 0)
        layer.paste(glyph, box)
        canvas = Image.fromarray(np.maximum(np.asarray(canvas), np.asarray(layer)))
    bbox = canvas.getbbox()
    return canvas.crop(bbox) if bbox else canvas


def _perspective(alpha: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    from skimage.transform import ProjectiveTransform, warp

    h, w = alpha.shape
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    jitter = rng.uniform(-strength, strength, size=(4, 2)) * np.array([w, h])
    dst = src + jitter
    dst -= dst.min(axis=0)
    out_w, out_h = (int(np.ceil(v)) + 1 for v in dst.max(axis=0))
    tform = ProjectiveTransform.from_estimate(src, dst)
    if not tform:  # degenerate corners: keep the flat layer rather than fail the image
        return alpha
    # warp() wants the map from output to input coordinates: the inverse of src -> dst.
    return warp(alpha, tform.inverse, output_shape=(out_h, out_w), order=1, preserve_range=True).astype(
        np.float32
    )


def render_text(
    text: str,
    *,
    font_path: str,
    font_size: int,
    angle: float,
    bend: float,
    perspective: float,
    rng: np.random.Generator,
) -> TextLayer:
    """Render `text` as an alpha layer.

    Args:
        font_size: pixel size passed to FreeType.
        angle: in-plane rotation in degrees (counter-clockwise), 0 for horizontal.
        bend: arc angle in radians for a curved baseline, 0 for straight.
        perspective: corner jitter as a fraction of the layer size, 0 for none.
    """
    font = load_font(font_path, int(font_size))
    image = _draw_curved(text, font, bend) if bend != 0 and len(text) > 1 else _draw_straight(text, font)
    if angle != 0:
        image = image.rotate(angle, resample=Image.BILINEAR, expand=True)
    alpha = np.asarray(image, dtype=np.float32) / 255.0
    if perspective > 0:
        alpha = _perspective(alpha, rng, perspective)
    return TextLayer(alpha=alpha, angle=float(angle), curved=bend != 0, perspective=perspective > 0)
