"""Named colours: text is drawn in one of these so attributes and referring expressions can name it."""

from __future__ import annotations

import numpy as np

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
