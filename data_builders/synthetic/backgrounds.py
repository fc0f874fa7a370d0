"""Backgrounds: crops of the real photos that ship with scikit-image, and procedural textures."""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

from data_builders.synthetic.colours import NAMES, PALETTE

# skimage/data files that are photographs or natural textures. page.png, text.png and logo.png are
# left out on purpose: they contain unlabeled text, which would teach the model that text is background.
PHOTO_FILES = (
    "astronaut.png",
    "brick.png",
    "camera.png",
    "chelsea.png",
    "coffee.png",
    "coins.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "moon.png",
    "motorcycle_left.png",
    "retina.jpg",
    "rocket.jpg",
)
TEXTURES = ("solid", "gradient", "noise", "stripes", "checker", "wood")
BACKGROUND_KINDS = tuple(f"photo:{Path(f).stem}" for f in PHOTO_FILES) + tuple(
    f"texture:{t}" for t in TEXTURES
)


def _skimage_data_dir() -> Path:
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        raise ValueError("scikit-image is not installed: its skimage/data folder holds the photos")
    return Path(spec.origin).parent / "data"


@lru_cache(maxsize=len(PHOTO_FILES))
def load_photo(name: str) -> np.ndarray:
    """HxWx3 uint8 RGB of one skimage photo (grey photos are repeated to three channels)."""
    from PIL import Image

    path = _skimage_data_dir() / name
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def photo_crop(rng: np.random.Generator, size: int) -> tuple[np.ndarray, str]:
    """A random square crop (25-100% of the short side) of a random photo, resized to size x size."""
    from PIL import Image

    name = PHOTO_FILES[rng.integers(len(PHOTO_FILES))]
    photo = load_photo(name)
    h, w = photo.shape[:2]
    side = int(min(h, w) * rng.uniform(0.25, 1.0))
    y0 = int(rng.integers(0, h - side + 1))
    x0 = int(rng.integers(0, w - side + 1))
    crop = Image.fromarray(photo[y0 : y0 + side, x0 : x0 + side]).resize((size, size), Image.BILINEAR)
    out = np.asarray(crop).astype(np.float32)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    # Brightness/contrast jitter so the same photo does not always look the same.
    out = (out - 128.0) * rng.uniform(0.7, 1.2) + 128.0 + rng.uniform(-30, 30)
    return np.clip(out, 0, 255).astype(np.uint8), f"photo:{Path(name).stem}"


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0, 255, size=3).astype(np.float32)


def _smooth_field(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    field = gaussian_filter(rng.standard_normal((size, size)).astype(np.float32), sigma)
    field -= field.min()
    return field / max(float(field.max()), 1e-6)


def texture(rng: np.random.Generator, size: int) -> tuple[np.ndarray, str]:
    """A procedural texture (solid, gradient, smooth noise, stripes, checker, wood) of size x size."""
    kind = TEXTURES[rng.integers(len(TEXTURES))]
    a, b = _random_colour(rng), _random_colour(rng)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if kind == "solid":
        t = np.zeros((size, size), np.float32)
    elif kind == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        t = np.cos(angle) * xx + np.sin(angle) * yy
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    elif kind == "noise":
        t = _smooth_field(rng, size, sigma=rng.uniform(2, 12))
    elif kind == "stripes":
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(0.05, 0.25)
        t = (np.sin(2 * np.pi * (np.cos(angle) * xx + np.sin(angle) * yy) / period) > 0).astype(np.float32)
    elif kind == "checker":
        cells = int(rng.integers(3, 12))
        t = ((np.floor(xx * cells) + np.floor(yy * cells)) % 2).astype(np.float32)
    else:  # wood: rings of a distorted radial field
        warp = _smooth_field(rng, size, sigma=8) * rng.uniform(2, 6)
        radius = np.hypot(xx - rng.uniform(), yy - rng.uniform()) * rng.uniform(10, 30) + warp
        t = 0.5 + 0.5 * np.sin(radius)
    out = a[None, None] * (1 - t[..., None]) + b[None, None] * t[..., None]
    out += rng.normal(0, rng.uniform(0, 6), size=out.shape)
    return np.clip(out, 0, 255).astype(np.uint8), f"texture:{kind}"


def sample_background(rng: np.random.Generator, size: int, p_photo: float) -> tuple[np.ndarray, str]:
    """size x size x 3 uint8 RGB background and its kind ("photo:<name>" or "texture:<kind>")."""
    if rng.random() < p_photo:
        return photo_crop(rng, size)
    return texture(rng, size)


DISTRACTOR_SHAPES = ("line", "rectangle", "ellipse", "arc", "zigzag")


def draw_distractors(image: np.ndarray, rng: np.random.Generator, count: int) -> np.ndarray:
    """Stroke-like shapes that are not text (lines, boxes, ellipses, arcs, zigzags) in text colours.

    They stay background in every mask, so a model cannot learn "thin uniform strokes = text".
    Returns a new HxWx3 uint8 image.
    """
    from PIL import Image, ImageDraw

    h, w = image.shape[:2]
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    for _ in range(count):
        shape = DISTRACTOR_SHAPES[rng.integers(len(DISTRACTOR_SHAPES))]
        colour = PALETTE[NAMES[rng.integers(len(NAMES))]]
        width = int(rng.integers(1, max(2, min(h, w) // 40) + 1))
        x0, x1 = sorted(rng.integers(0, w, size=2).tolist())
        y0, y1 = sorted(rng.integers(0, h, size=2).tolist())
        box = (x0, y0, max(x1, x0 + 2), max(y1, y0 + 2))
        if shape == "line":
            draw.line(box, fill=colour, width=width)
        elif shape == "rectangle":
            draw.rectangle(box, outline=colour, width=width)
        elif shape == "ellipse":
            draw.ellipse(box, outline=colour, width=width)
        elif shape == "arc":
            start = float(rng.uniform(0, 360))
            draw.arc(box, start=start, end=start + float(rng.uniform(60, 300)), fill=colour, width=width)
        else:
            xs = np.linspace(box[0], box[2], int(rng.integers(3, 8)))
            ys = np.where(np.arange(xs.size) % 2 == 0, box[1], box[3])
            draw.line(list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=colour, width=width)
    return np.asarray(canvas)
