"""Things that look like text and are not: hard-negative patterns, and occluders that cover words.

Hard negatives (drawn into the background, so they are background in every mask): stripes, grilles,
bricks, foliage, barcode-like bars, and pictograms (arrows, warning signs, stars...) drawn from
DejaVu Sans' symbol blocks like a word would be. Occluders (poles, leaves, stickers, blobs) are painted
over finished text: the pixels they cover become background.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from data_builders.synthetic import colours
from data_builders.synthetic.fonts import load_font, matplotlib_ttf_dir

NEGATIVE_KINDS = ("stripes", "grille", "bricks", "foliage", "barcode", "symbols")
OCCLUDER_KINDS = ("pole", "leaves", "sticker", "blob")
# Pictograms only: arrows, geometric shapes, weather, warning, hands, stars, check marks. No letters,
# digits or letter-like symbols (no Greek, no currency, no circled letters).
SYMBOLS = "←↑→↓↔↕⇦⇧⇨⇩➔➜➡⬅⬆⬇▲▶▼◀■□●○◆◇★☆☀☁☂☎☑☒✓✔✗✘⚠⚡♻♿✈☕⚑⚐♠♣♥♦✂✉✎✿❄❤☺☹"


def _rgb(rng: np.random.Generator) -> tuple[int, int, int]:
    return colours.PALETTE[colours.NAMES[rng.integers(len(colours.NAMES))]]


def _green(rng: np.random.Generator) -> tuple[int, int, int]:
    return int(rng.integers(20, 110)), int(rng.integers(70, 190)), int(rng.integers(10, 80))


def leaf(rng: np.random.Generator, cx: float, cy: float, length: float) -> list[tuple[float, float]]:
    """Polygon of a pointed leaf (a lens shape) of `length` pixels at a random angle around (cx, cy)."""
    t = np.linspace(0, np.pi, 9)
    half = np.stack([length / 2 * np.cos(t), length * rng.uniform(0.15, 0.3) * np.sin(t)], axis=1)
    outline = np.concatenate([half, half[::-1] * [1, -1]])
    a = rng.uniform(0, np.pi)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return [(float(x + cx), float(y + cy)) for x, y in outline @ rot.T]


def _patch_box(rng: np.random.Generator, size: int, full: bool) -> tuple[int, int, int, int]:
    if full:
        return 0, 0, size, size
    w, h = (int(size * rng.uniform(0.2, 0.6)) for _ in range(2))
    x0, y0 = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
    return x0, y0, x0 + w, y0 + h


def _bars(draw, rng, box, vertical: bool, colour, widths, gaps) -> None:
    x0, y0, x1, y1 = box
    pos = x0 if vertical else y0
    end = x1 if vertical else y1
    while pos < end:
        width = int(rng.integers(*widths))
        rect = (pos, y0, pos + width - 1, y1) if vertical else (x0, pos, x1, pos + width - 1)
        draw.rectangle(rect, fill=colour)
        pos += width + int(rng.integers(*gaps))


def _draw_negative(draw, rng, kind: str, box, size: int) -> None:
    x0, y0, x1, y1 = box
    unit = max(2, int(size * rng.uniform(0.01, 0.04)))
    colour = _rgb(rng)
    if kind == "stripes":
        _bars(draw, rng, box, bool(rng.random() < 0.5), colour, (unit, unit + 1), (unit, 3 * unit))
    elif kind == "grille":
        _bars(draw, rng, box, True, colour, (1, unit + 1), (unit, 2 * unit + 1))
        _bars(draw, rng, box, False, colour, (1, unit + 1), (unit, 2 * unit + 1))
    elif kind == "bricks":
        brick_h, brick_w = 2 * unit + 2, int(5 * unit * rng.uniform(0.8, 1.4)) + 4
        mortar = _rgb(rng)
        for row, y in enumerate(range(y0, y1, brick_h)):
            offset = (brick_w // 2) * (row % 2)
            for x in range(x0 - offset, x1, brick_w):
                draw.rectangle((x, y, x + brick_w - 1, y + brick_h - 1), fill=colour, outline=mortar, width=1)
    elif kind == "foliage":
        for _ in range(int(rng.integers(30, 120))):
            draw.polygon(
                leaf(rng, rng.uniform(x0, x1), rng.uniform(y0, y1), unit * rng.uniform(1.5, 3.5)),
                fill=_green(rng),
            )
    elif kind == "barcode":
        draw.rectangle(box, fill=(245, 245, 245))
        inner = (x0 + unit, y0 + unit, x1 - unit, y1 - unit)
        _bars(draw, rng, inner, True, (15, 15, 15), (1, max(2, unit // 2) + 2), (1, max(2, unit // 2) + 2))
    else:
        _draw_symbols(draw, rng, box, size)


def _draw_symbols(draw, rng, box, size: int) -> None:
    x0, y0, x1, y1 = box
    font = load_font(str(matplotlib_ttf_dir() / "DejaVuSans.ttf"), int(size * rng.uniform(0.06, 0.2)))
    for _ in range(int(rng.integers(1, 5))):
        glyphs = "".join(SYMBOLS[i] for i in rng.integers(len(SYMBOLS), size=int(rng.integers(1, 3))))
        xy = (rng.uniform(x0, max(x0 + 1, x1 - font.size)), rng.uniform(y0, max(y0 + 1, y1 - font.size)))
        draw.text(xy, glyphs, font=font, fill=_rgb(rng))


def draw_hard_negatives(
    image: np.ndarray, rng: np.random.Generator, count: int
) -> tuple[np.ndarray, list[str]]:
    """Draw `count` hard-negative patterns (a full-image texture or a patch each) into an HxWx3 uint8
    image; returns the new image and the kinds drawn."""
    size = image.shape[0]
    canvas = Image.fromarray(image)
    kinds = []
    for _ in range(count):
        kind = NEGATIVE_KINDS[rng.integers(len(NEGATIVE_KINDS))]
        full = kind in ("stripes", "grille", "bricks", "foliage") and rng.random() < 0.2
        layer = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
        _draw_negative(ImageDraw.Draw(layer), rng, kind, _patch_box(rng, size, full), size)
        opacity = rng.uniform(0.6, 1.0)
        alpha = np.asarray(layer)[..., 3:].astype(np.float32) / 255.0 * opacity
        blended = np.asarray(canvas, np.float32) * (1 - alpha) + np.asarray(layer)[..., :3] * alpha
        canvas = Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8))
        kinds.append(kind)
    return np.asarray(canvas), kinds


def occluder(rng: np.random.Generator, shape: tuple[int, int], box: tuple[int, int, int, int]):
    """(HxW bool region, HxWx3 float32 colours, kind) of one occluder that covers part of `box`
    (x0, y0, x1, y1): it reaches into the box from outside or crosses it, never hides it whole."""
    h, w = shape
    x0, y0, x1, y1 = box
    bw, bh = max(x1 - x0, 2), max(y1 - y0, 2)
    kind = OCCLUDER_KINDS[rng.integers(len(OCCLUDER_KINDS))]
    layer = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(layer)
    if kind == "pole":  # a post or cable crossing the words
        cx = rng.uniform(x0, x1)
        width = max(2, bw * rng.uniform(0.06, 0.2))
        tilt = rng.uniform(-0.4, 0.4) * h
        draw.polygon([(cx - width / 2 - tilt / 2, 0), (cx + width / 2 - tilt / 2, 0),
                      (cx + width / 2 + tilt / 2, h), (cx - width / 2 + tilt / 2, h)], fill=255)  # fmt: skip
    elif kind == "leaves":  # a branch reaching in from one corner
        cx, cy = rng.choice([x0, x1]), rng.choice([y0, y1])
        for _ in range(int(rng.integers(5, 14))):
            px, py = cx + rng.normal(0, bw * 0.12), cy + rng.normal(0, bh * 0.35)
            draw.polygon(leaf(rng, px, py, bh * rng.uniform(0.4, 0.9)), fill=255)
    else:  # a sticker (rectangle) or a blob (ellipse) over one end of the words
        from_left = rng.random() < 0.5
        cover = bw * rng.uniform(0.15, 0.45)
        ex0 = x0 - bw * 0.2 if from_left else x1 - cover
        ex1 = x0 + cover if from_left else x1 + bw * 0.2
        ey0, ey1 = y0 - bh * rng.uniform(0.1, 0.6), y1 + bh * rng.uniform(0.1, 0.6)
        (draw.rectangle if kind == "sticker" else draw.ellipse)((ex0, ey0, ex1, ey1), fill=255)
    region = np.asarray(layer) > 127
    base = np.array(_rgb(rng), np.float32) if kind != "leaves" else np.array([40, 120, 50], np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    shade = 0.8 + 0.2 * (np.cos(angle) * (2 * xx / w - 1) + np.sin(angle) * (2 * yy / h - 1))  # side light
    colour = np.clip(base[None, None] * shade[..., None] + rng.normal(0, 4, (h, w, 3)), 0, 255)
    return region, colour.astype(np.float32), kind
