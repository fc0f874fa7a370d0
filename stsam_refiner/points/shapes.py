"""Multi-class, multi-instance toy scenes for training a point-prompted SAM and the TSPP head.

No pretrained SAM exists on this machine, and the project's scene-text data has one class. These
scenes give what sparse point refinement is about: several classes and instances per image, objects
of very different sizes, thin strokes, and two-tone objects that a point-prompted SAM splits into
parts (the over-segmentation SMAgg merges). Backgrounds come from ``data_builders.synthetic``
(scikit-image photos and procedural textures), so SAM must separate objects from clutter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_builders.synthetic.backgrounds import sample_background

SHAPE_CLASSES = ("disc", "box", "triangle", "stroke")


@dataclass
class ShapeScene:
    """One scene."""

    image: np.ndarray
    """H×W×3 uint8 RGB."""
    label_map: np.ndarray
    """H×W int64: 0 background, c + 1 for class ``SHAPE_CLASSES[c]``."""
    instances: list[np.ndarray]
    """Visible H×W bool mask of each object (occlusion applied), paint order."""
    instance_classes: list[int]
    """Class index (into SHAPE_CLASSES) of each instance."""
    parts: list[list[np.ndarray]]
    """Per instance, its one-colour parts (one part, or two for a two-tone object)."""

    @property
    def class_masks(self) -> np.ndarray:
        """len(SHAPE_CLASSES)×H×W bool semantic masks."""
        return np.stack([self.label_map == c + 1 for c in range(len(SHAPE_CLASSES))])


def _shape_mask(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    from skimage.draw import disk, line_aa, polygon

    mask = np.zeros((size, size), dtype=bool)
    r = rng.uniform(0.03, 0.2) * size
    cy, cx = rng.uniform(r, size - r, size=2)
    if kind == "disc":
        mask[disk((cy, cx), r, shape=mask.shape)] = True
    elif kind == "box":
        h, w = r * rng.uniform(0.6, 1.4, size=2)
        mask[max(int(cy - h), 0) : int(cy + h), max(int(cx - w), 0) : int(cx + w)] = True
    elif kind == "triangle":
        angles = rng.uniform(0, 2 * np.pi) + np.array([0, 2.1, 4.2]) + rng.uniform(-0.3, 0.3, 3)
        mask[polygon(cy + r * np.sin(angles), cx + r * np.cos(angles), shape=mask.shape)] = True
    else:  # a thick line: thin strokes are where sparse sampling struggles (SAM-MI's failure cases)
        angle = rng.uniform(0, np.pi)
        dy, dx = 1.6 * r * np.sin(angle), 1.6 * r * np.cos(angle)
        width = max(2, int(rng.integers(2, 6)))
        for off in range(width):
            rr, cc, _ = line_aa(
                int(np.clip(cy - dy + off, 0, size - 1)),
                int(np.clip(cx - dx, 0, size - 1)),
                int(np.clip(cy + dy + off, 0, size - 1)),
                int(np.clip(cx + dx, 0, size - 1)),
            )
            mask[rr, cc] = True
    return mask


def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, size=3).astype(np.float64)


def make_scene(
    rng: np.random.Generator,
    *,
    size: int = 256,
    min_objects: int = 2,
    max_objects: int = 6,
    two_tone_prob: float = 0.35,
    photo_prob: float = 0.4,
) -> ShapeScene:
    """A random scene: background + 2–6 objects of random classes, sizes and colours."""

    image, _ = sample_background(rng, size, photo_prob)
    image = image.astype(np.float64)
    label_map = np.zeros((size, size), dtype=np.int64)
    owner = np.full((size, size), -1, dtype=np.int64)
    classes, part_of = [], []
    for _ in range(int(rng.integers(min_objects, max_objects + 1))):
        cls = int(rng.integers(len(SHAPE_CLASSES)))
        mask = _shape_mask(SHAPE_CLASSES[cls], size, rng)
        if mask.sum() < 4:
            continue
        image[mask] = _colour(rng) + rng.normal(0, 6, size=(int(mask.sum()), 3))
        split = np.zeros_like(mask)
        if rng.random() < two_tone_prob and SHAPE_CLASSES[cls] != "stroke":
            ys, xs = np.nonzero(mask)
            normal = rng.normal(size=2)
            side = (ys - ys.mean()) * normal[0] + (xs - xs.mean()) * normal[1] > 0
            split[ys[side], xs[side]] = True
            image[split] = _colour(rng) + rng.normal(0, 6, size=(int(split.sum()), 3))
        label_map[mask] = cls + 1
        owner[mask] = len(classes)
        classes.append(cls)
        part_of.append(split)
    instances = [owner == i for i in range(len(classes))]
    parts = []
    for inst, split in zip(instances, part_of, strict=True):
        pieces = [inst & ~split, inst & split]
        parts.append([p for p in pieces if p.any()])
    keep = [i for i, inst in enumerate(instances) if inst.sum() >= 4]
    return ShapeScene(
        image=np.clip(image, 0, 255).astype(np.uint8),
        label_map=label_map,
        instances=[instances[i] for i in keep],
        instance_classes=[classes[i] for i in keep],
        parts=[parts[i] for i in keep],
    )
