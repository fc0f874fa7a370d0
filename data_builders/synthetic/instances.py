"""What a synthetic scene is made of: its instances' attributes and the scene record, and placement.

Shared by the legacy composer (scene.py) and the extended one (corpus_scene.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from data_builders.synthetic.colours import seen_name

# Font size as a fraction of the image side: (class name, low, high).
SIZE_CLASSES = (("tiny", 0.035, 0.05), ("small", 0.05, 0.09), ("medium", 0.09, 0.16))
SIZE_CLASSES += (("large", 0.16, 0.28), ("huge", 0.28, 0.45))
SIZE_RANGES = {name: (low, high) for name, low, high in SIZE_CLASSES} | {"micro": (0.015, 0.035)}
"""Font-size ranges (font size / image side) a corpus config may draw from. "micro" is the size of
words in real street photos (ICDAR2015: 13-20 px in 720); it is drawn only when a config names it,
and a micro word is described as "tiny" (``size_class``)."""
_PLACEMENT_TRIES = 30


@dataclass(frozen=True, kw_only=True)
class Instance:
    """Attributes of one placed text instance (what `instances` rows in the Arrow data hold)."""

    text: str
    box: tuple[int, int, int, int]
    """[x0, y0, x1, y1] of the stroke pixels, x1/y1 exclusive."""
    colour: str
    """Palette name of the fill colour (data_builders.synthetic.colours); a low-contrast word's is the
    name its strokes have in the finished image, or "" when they have none (``colours.seen_name``)."""
    size: str
    """Size class: tiny, small, medium, large, huge (font size relative to the image side)."""
    position: str
    """Where the box centre falls on a 3x3 grid: "top left", "top", ..., "center", ..., "bottom right"."""
    orientation: str
    """horizontal, rotated or vertical."""
    angle: float
    curved: bool
    perspective: bool
    font: str
    """Font style words, e.g. "bold serif"."""
    font_family: str
    plate: str
    """Palette name of the sign plate behind the text, or "" when there is none."""
    outline: bool
    shadow: bool
    low_contrast: bool
    area: int
    """Stroke pixel count."""

    def to_dict(self) -> dict:
        out = asdict(self)
        out["box"] = list(self.box)
        return out


@dataclass(frozen=True, kw_only=True)
class SyntheticScene:
    """One generated sample.

    Attributes:
        image: HxWx3 uint8 RGB, final (after blur/noise/JPEG).
        clean: HxWx3 uint8 RGB before post-processing.
        background: HxWx3 uint8 RGB of everything but the text fill (photo/texture, plates, outlines,
            shadows); equals `clean` wherever `mask` is False.
        mask: HxW bool stroke pixels of all instances.
        effect_mask: HxW bool outline/shadow pixels (TextSeg's "word effect", background for scoring).
        instance_masks: per-instance HxW bool stroke masks, disjoint, in `instances` order.
        instances: attributes per instance.
        background_kind: "photo:<name>" or "texture:<kind>".
        post_effects: names of what was applied beyond the text: degradations of `image` ("blur",
            "noise", "jpeg", "lighting", "low_res"), "occlusion", and "negative:<kind>" patterns.
    """

    image: np.ndarray
    clean: np.ndarray
    background: np.ndarray
    mask: np.ndarray
    effect_mask: np.ndarray
    instance_masks: tuple[np.ndarray, ...]
    instances: tuple[Instance, ...]
    background_kind: str
    post_effects: tuple[str, ...]


def name_unnamed(
    instances: tuple[Instance, ...], masks: tuple[np.ndarray, ...], image: np.ndarray
) -> tuple[Instance, ...]:
    """``instances`` with each one drawn without a colour name (colour "": low contrast) named by how
    its strokes look in the finished ``image`` (``colours.seen_name``; still "" when in doubt)."""
    return tuple(
        inst if inst.colour else replace(inst, colour=seen_name(image[mask]))
        for inst, mask in zip(instances, masks, strict=True)
    )


def position_name(cx: float, cy: float, size: int) -> str:
    row = ("top", "", "bottom")[min(int(3 * cy / size), 2)]
    col = ("left", "", "right")[min(int(3 * cx / size), 2)]
    return " ".join(p for p in (row, col) if p) or "center"


def size_class(font_size: float, image_size: int) -> str:
    rel = font_size / image_size
    for name, _, high in SIZE_CLASSES:
        if rel < high:
            return name
    return SIZE_CLASSES[-1][0]


def place(rng, shape: tuple[int, int], size: int, margin: int, taken: list) -> tuple[int, int] | None:
    """Top-left (x, y) for an h x w layer whose box, grown by `margin`, overlaps none in `taken` (which
    gets the new box), or None after a number of random tries."""
    h, w = shape
    if h + 2 >= size or w + 2 >= size:
        return None
    for _ in range(_PLACEMENT_TRIES):
        y = int(rng.integers(1, size - h))
        x = int(rng.integers(1, size - w))
        box = (x - margin, y - margin, x + w + margin, y + h + margin)
        if all(box[2] <= t[0] or t[2] <= box[0] or box[3] <= t[1] or t[3] <= box[1] for t in taken):
            taken.append(box)
            return x, y
    return None
