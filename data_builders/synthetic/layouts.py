"""Text blocks laid on a surface: one or more words and the plate behind them, warped together.

Every word and the plate are drawn as separate coverage layers on one flat canvas, then the same
geometry (wave, rotation, perspective) is applied to each layer, so a sign's words stay on its plate
however it is tilted, and each word's stroke mask (coverage >= 0.5) is exact after every warp.

Layout families (config `text_layouts`):
- "scatter": one word (as the legacy generator places them);
- "lines": 2-3 words as lines of one sign, left-aligned or centred;
- "wave": one line whose baseline follows a sine wave (cloth, a flag, a bottle label);
- "stacked": upright letters stacked top to bottom (a vertical shop sign);
- "ring": one word around most of a circle (a badge or a stamp).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from data_builders.synthetic.config import TEXT_LAYOUTS
from data_builders.synthetic.fonts import load_font
from data_builders.synthetic.render import _draw_curved


@dataclass(frozen=True, kw_only=True)
class Block:
    """Words of one surface before placement.

    Attributes:
        words: the text of each word, in reading order.
        alphas: per word, hxw float32 coverage in [0, 1]; all share one shape.
        plate: hxw float32 coverage of the surface behind the words, or None.
        layout: the layout family that drew it.
        curved: whether the baseline is not straight (wave, ring).
    """

    words: tuple[str, ...]
    alphas: tuple[np.ndarray, ...]
    plate: np.ndarray | None
    layout: str
    curved: bool


def _word_layer(text: str, font, canvas: tuple[int, int], origin: tuple[float, float]) -> np.ndarray:
    layer = Image.new("L", canvas, 0)
    ImageDraw.Draw(layer).text(origin, text, font=font, fill=255)
    return np.asarray(layer, np.float32) / 255.0


def _flat_lines(words: tuple[str, ...], font, pad: int, centred: bool) -> list[np.ndarray]:
    """Words as lines on one canvas with `pad` pixels of margin (the plate's border)."""
    boxes = [font.getbbox(w) for w in words]
    ascent, descent = font.getmetrics()
    step = int((ascent + descent) * 1.15)
    width = max(b[2] - b[0] for b in boxes)
    height = step * (len(words) - 1) + (boxes[-1][3] - boxes[0][1])
    canvas = (width + 2 * pad, height + 2 * pad)
    layers = []
    for i, (word, box) in enumerate(zip(words, boxes, strict=True)):
        x = pad - box[0] + ((width - (box[2] - box[0])) / 2 if centred else 0)
        y = pad - boxes[0][1] + i * step
        layers.append(_word_layer(word, font, canvas, (x, y)))
    return layers


def _flat_stacked(word: str, font, pad: int) -> np.ndarray:
    """Upright letters one under another, each centred on the column."""
    chars = [c for c in word if c != " "] or [word]
    boxes = [font.getbbox(c) for c in chars]
    cell = max(b[3] - b[1] for b in boxes)
    gap = max(1, cell // 6)
    width = max(b[2] - b[0] for b in boxes)
    canvas = Image.new("L", (width + 2 * pad, len(chars) * (cell + gap) - gap + 2 * pad), 0)
    draw = ImageDraw.Draw(canvas)
    for i, (ch, box) in enumerate(zip(chars, boxes, strict=True)):
        x = pad - box[0] + (width - (box[2] - box[0])) / 2
        y = pad - box[1] + i * (cell + gap) + (cell - (box[3] - box[1])) / 2
        draw.text((x, y), ch, font=font, fill=255)
    return np.asarray(canvas, np.float32) / 255.0


def _plate_layer(shape: tuple[int, int], union: np.ndarray, pad: int) -> np.ndarray:
    """Rounded rectangle around the words' ink, `pad` pixels wider on each side."""
    ys, xs = np.nonzero(union >= 0.5)
    plate = Image.new("L", (shape[1], shape[0]), 0)
    if ys.size:
        box = (max(xs.min() - pad, 0), max(ys.min() - pad, 0), min(xs.max() + pad, shape[1] - 1),
               min(ys.max() + pad, shape[0] - 1))  # fmt: skip
        ImageDraw.Draw(plate).rounded_rectangle(box, radius=max(1, pad // 2), fill=255)
    return np.asarray(plate, np.float32) / 255.0


def _wave(layers: list[np.ndarray], rng: np.random.Generator, amplitude: float) -> list[np.ndarray]:
    """Shift each column vertically by amplitude * sin(...), the same for every layer."""
    from scipy.ndimage import map_coordinates

    h, w = layers[0].shape
    margin = int(np.ceil(amplitude)) + 1
    period = w * rng.uniform(0.6, 1.6)
    phase = rng.uniform(0, 2 * np.pi)
    shift = amplitude * np.sin(2 * np.pi * np.arange(w) / period + phase)
    yy, xx = np.mgrid[0 : h + 2 * margin, 0:w].astype(np.float32)
    src_y = yy - margin - shift[None, :]
    return [map_coordinates(a, [src_y, xx], order=1, cval=0.0).astype(np.float32) for a in layers]


def _rotate(layers: list[np.ndarray], angle: float) -> list[np.ndarray]:
    out = []
    for a in layers:
        image = Image.fromarray(np.round(a * 255).astype(np.uint8))
        out.append(np.asarray(image.rotate(angle, resample=Image.BILINEAR, expand=True), np.float32) / 255.0)
    return out


def _perspective(layers: list[np.ndarray], rng: np.random.Generator, strength: float) -> list[np.ndarray]:
    """One random projective warp (corner jitter up to `strength` of the size) applied to every layer."""
    from skimage.transform import ProjectiveTransform, warp

    h, w = layers[0].shape
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    dst = src + rng.uniform(-strength, strength, size=(4, 2)) * np.array([w, h])
    dst -= dst.min(axis=0)
    out_w, out_h = (int(np.ceil(v)) + 1 for v in dst.max(axis=0))
    tform = ProjectiveTransform.from_estimate(src, dst)
    if not tform:  # degenerate corners: keep the flat layers rather than fail the image
        return layers
    inverse = tform.inverse
    return [
        warp(a, inverse, output_shape=(out_h, out_w), order=1, preserve_range=True).astype(np.float32)
        for a in layers
    ]


def _crop(layers: list[np.ndarray]) -> list[np.ndarray]:
    union = np.maximum.reduce(layers)
    ys, xs = np.nonzero(union > 0)
    if ys.size == 0:
        return layers
    y0, y1, x0, x1 = max(ys.min() - 1, 0), ys.max() + 2, max(xs.min() - 1, 0), xs.max() + 2
    return [a[y0:y1, x0:x1] for a in layers]


def render_block(
    words: tuple[str, ...],
    *,
    layout: str,
    font_path: str,
    font_size: int,
    angle: float,
    perspective: float,
    plate_pad: int,
    rng: np.random.Generator,
    bend: float = 0.0,
) -> Block:
    """Draw `words` in `layout` (see the module docstring), then rotate by `angle` degrees and warp by
    `perspective` (corner jitter fraction, 0 for none). `plate_pad` > 0 adds a plate that pad wide;
    `bend` (radians, "scatter" only) puts a word of two or more letters on an arc."""
    if layout not in TEXT_LAYOUTS:
        raise ValueError(f"layout {layout!r} not in {TEXT_LAYOUTS}")
    font = load_font(font_path, int(font_size))
    pad = max(plate_pad, 2)
    arc = layout == "scatter" and bend != 0 and len(words[0]) > 1
    if layout == "ring":
        bend = float(rng.uniform(3.2, 5.2) * rng.choice([1, -1]))
    if layout == "ring" or arc:
        flat = np.asarray(_draw_curved(words[0], font, bend), np.float32) / 255.0
        layers = [np.pad(flat, pad)]
    elif layout == "stacked":
        layers = [_flat_stacked(words[0], font, pad)]
    else:
        layers = _flat_lines(words, font, pad, centred=bool(rng.random() < 0.6))
    if plate_pad > 0:
        layers.append(_plate_layer(layers[0].shape, np.maximum.reduce(layers), plate_pad))
    if layout == "wave":
        layers = _wave(layers, rng, amplitude=font_size * rng.uniform(0.15, 0.45))
    if angle != 0:
        layers = _rotate(layers, angle)
    if perspective > 0:
        layers = _perspective(layers, rng, perspective)
    layers = _crop(layers)
    plate = layers.pop() if plate_pad > 0 else None
    return Block(words=tuple(words), alphas=tuple(layers), plate=plate, layout=layout,
                 curved=arc or layout in ("wave", "ring"))  # fmt: skip
