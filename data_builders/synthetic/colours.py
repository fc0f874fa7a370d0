"""Named colours: text is drawn in one of these so attributes and referring expressions can name it.

A word drawn in a palette colour keeps that name through lighting, blur and compression (a red sign in
shadow is still "the red sign"). A low-contrast word is not drawn in a palette colour but in its
surface's colour shifted lighter or darker; ``seen_name`` names it only when its stroke pixels leave
no doubt, else it has no colour name ("") and no colour expression is said about its scene.
"""

from __future__ import annotations

import numpy as np

from text4seg.core.colours import NAMES as PIXEL_NAMES
from text4seg.core.colours import pixel_names

PALETTE: dict[str, tuple[int, int, int]] = {
    "white": (245, 245, 245),
    "black": (15, 15, 15),
    "grey": (128, 128, 128),
    "red": (215, 30, 35),
    "orange": (245, 135, 20),
    "yellow": (250, 220, 30),
    "green": (40, 165, 60),
    "blue": (30, 80, 210),
    "cyan": (40, 200, 220),
    "purple": (130, 50, 170),
    "pink": (240, 120, 180),
    "brown": (120, 75, 35),
}
NAMES = tuple(PALETTE)
_RGB = np.array([PALETTE[n] for n in NAMES], dtype=np.float32)


def nearest_name(rgb: np.ndarray) -> str:
    """The palette name closest (Euclidean RGB) to `rgb` (3 floats in 0..255)."""
    return NAMES[int(np.argmin(np.linalg.norm(_RGB - np.asarray(rgb, np.float32), axis=1)))]


def contrasting_name(rng: np.random.Generator, against: np.ndarray, min_distance: float = 120.0) -> str:
    """A random palette name at least `min_distance` from `against` (else the farthest one)."""
    distances = np.linalg.norm(_RGB - np.asarray(against, np.float32), axis=1)
    far = np.flatnonzero(distances >= min_distance)
    if far.size == 0:
        return NAMES[int(np.argmax(distances))]
    return NAMES[int(far[rng.integers(far.size)])]


SEEN_SHARE = 0.5
"""Least share of a word's stroke pixels that must have one colour name for ``seen_name`` to use it."""


def seen_name(pixels: np.ndarray) -> str:
    """The colour name of N×3 uint8 stroke pixels as they appear in the image, or "" when in doubt.

    Two namings must agree: most pixels (at least ``SEEN_SHARE``) named alike by hue, saturation and
    value (``text4seg.core.colours.pixel_names``), and the palette colour nearest their median.
    """
    pixels = np.asarray(pixels, np.uint8).reshape(-1, 3)
    if len(pixels) == 0:
        return ""
    counts = np.bincount(pixel_names(pixels[:, None]).ravel(), minlength=len(PIXEL_NAMES))
    by_pixels = PIXEL_NAMES[int(counts.argmax())]
    if counts.max() < SEEN_SHARE * len(pixels) or by_pixels != nearest_name(np.median(pixels, axis=0)):
        return ""
    return by_pixels
