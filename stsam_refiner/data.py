"""Training samples for the refiner: augmented image, stroke mask and an imperfect coarse mask.

Rows come from a ``datasets.Dataset`` with ``image`` (RGB) and ``mask`` (L, 0/255) columns — the
project's synthetic and real scene-text datasets. Augmentation follows ST-SAM (rotation, colour
jitter, large-scale jitter) with torchvision's v2 transforms, which move image and masks together.

The coarse mask plays the MLLM's part. ``source="gt"`` makes it from the ground truth the way a
descriptor is made (``text4seg.core.masks.grid_from_mask`` to a g×g grid) and then damages it — drops
foreground patches, shifts the grid, adds false-positive patches — so the refiner learns to
correct an imperfect MLLM. ``source="cached"`` reads cached MLLM answers (R-RLE text) from a column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from data_builders.conversations import describe_instances
from data_builders.synthetic.writers import decode_rle
from stsam_refiner.predict import coarse_to_mask_prompt
from text4seg.core.codec import BACKGROUND
from text4seg.core.masks import grid_from_mask, upsample_grid, word_regions
from text4seg.core.parser import parse_answer

COARSE_SOURCES = ("gt", "cached")


@dataclass(frozen=True, kw_only=True)
class CoarseConfig:
    """How training coarse masks are made."""

    source: str = "gt"
    """``gt`` (damaged ground-truth grid) or ``cached`` (MLLM answers in ``cached_column``)."""
    grid: int = 16
    """Descriptor grid side (Text4Seg's main setting is 16)."""
    rule: str = "area"
    """``text4seg.core.masks.grid_from_mask`` rule for GT grids: ``nearest`` or ``area``."""
    threshold: float = 0.1
    """Area fraction for the ``area`` rule (strokes are thin: a low bar keeps text patches)."""
    drop_prob: float = 0.15
    """Chance that each foreground patch is dropped."""
    add_prob: float = 0.03
    """Chance that each background patch becomes a false positive."""
    shift_prob: float = 0.3
    """Chance that the whole grid is shifted by up to ``max_shift`` patches."""
    max_shift: int = 1
    """Largest shift in patches."""
    cached_column: str = "coarse"
    """Column with the MLLM's raw answer text (R-RLE inside <seg>…</seg>) for ``cached``."""
    regions: bool = False
    """``gt`` grids from the words' regions (``text4seg.core.masks.word_regions`` of the
    ``instance_masks`` column: each word's convex hull), as the default MLLM is taught to answer,
    instead of from the strokes."""

    def __post_init__(self) -> None:
        if self.source not in COARSE_SOURCES:
            raise ValueError(f"coarse.source {self.source!r} not in {COARSE_SOURCES}")
        for name in ("drop_prob", "add_prob", "shift_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"coarse.{name} {getattr(self, name)} outside [0, 1]")
        if self.grid < 1 or self.max_shift < 0:
            raise ValueError(f"coarse.grid {self.grid} must be >= 1 and max_shift {self.max_shift} >= 0")


@dataclass(frozen=True, kw_only=True)
class AugmentConfig:
    """ST-SAM's augmentation."""

    enabled: bool = True
    """Augment at all (off: resize the longest side to S and pad, as at inference)."""
    rotation: float = 15.0
    """Largest rotation in degrees."""
    scale_min: float = 0.5
    """Large-scale jitter: smallest scale relative to fitting the image in S×S."""
    scale_max: float = 1.5
    """Large-scale jitter: largest scale."""
    brightness: float = 0.3
    """Colour jitter brightness."""
    contrast: float = 0.3
    """Colour jitter contrast."""
    saturation: float = 0.3
    """Colour jitter saturation."""
    hue: float = 0.03
    """Colour jitter hue."""
    perspective: float = 0.0
    """Perspective distortion scale (torchvision ``RandomPerspective``; 0: off): text on a surface
    seen at an angle."""
    perspective_prob: float = 0.5
    """Chance of the perspective warp when ``perspective`` > 0."""
    bend: float = 0.0
    """Largest shift, as a fraction of the output side, of a smooth elastic warp (:func:`smooth_bend`;
    0: off): lines of text that wave or arc."""
    bend_knots: int = 4
    """The warp's random field is drawn on a knots×knots grid and upsampled: fewer knots, gentler bends."""
    bend_prob: float = 0.5
    """Chance of the elastic warp when ``bend`` > 0."""

    def __post_init__(self) -> None:
        if not 0 < self.scale_min <= self.scale_max:
            raise ValueError(
                f"augment scale range ({self.scale_min}, {self.scale_max}) must be 0 < min <= max"
            )
        if not 0.0 <= self.perspective <= 1.0:
            raise ValueError(f"augment perspective {self.perspective} outside [0, 1]")
        if not 0.0 <= self.bend <= 0.25 or self.bend_knots < 2:
            raise ValueError(
                f"augment bend {self.bend} must be in [0, 0.25] and bend_knots {self.bend_knots} >= 2"
            )
        for name in ("perspective_prob", "bend_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"augment {name} {getattr(self, name)} outside [0, 1]")


@dataclass
class RefinerSample:
    """One training sample at the model's input size S."""

    image: torch.Tensor
    """3×S×S float32 RGB in [0, 255] (normalised by the model)."""
    target: torch.Tensor
    """1×S×S float32 stroke mask in {0, 1}."""
    mask_prompt: torch.Tensor
    """1×M×M float32 coarse-mask logits (±6.9), M = S/4."""
    coarse_grid: np.ndarray
    """g×g bool coarse grid the prompt was made from."""
    description: str | None
    """Optional per-image description of the text's look."""
    view: torch.Tensor | None = None
    """3×V×V float32 RGB in [0, 1]: the text backbone's own sharper view of the same frame (None
    unless the set was made with ``view_size``)."""


def damage_grid(grid: np.ndarray, cfg: CoarseConfig, rng: np.random.Generator) -> np.ndarray:
    """Drop foreground patches, shift, add false positives (g×g bool → g×g bool)."""
    out = grid & (rng.random(grid.shape) >= cfg.drop_prob)
    if cfg.max_shift and rng.random() < cfg.shift_prob:
        dy, dx = rng.integers(-cfg.max_shift, cfg.max_shift + 1, size=2)
        shifted = np.zeros_like(out)
        h, w = out.shape
        shifted[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = out[
            max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
        ]
        out = shifted
    return out | (rng.random(grid.shape) < cfg.add_prob)


def cached_grid(answer: str, grid: int) -> np.ndarray:
    """Foreground (non-``others``) cells of a cached MLLM answer, g×g bool."""
    parsed = parse_answer(answer, height=grid, width=grid)
    return np.array([[label != BACKGROUND for label in row] for row in parsed.grid], dtype=bool)


def describe(value) -> str | None:
    """A description cell as text: strings pass through; the synthetic data's ``instances`` list
    becomes the prose the MLLM is taught to say (``data_builders.conversations.describe_instances``)."""
    if value is None or isinstance(value, str):
        return value or None
    return describe_instances(value)


def smooth_bend(max_shift: float, knots: int):
    """torchvision's ``ElasticTransform`` with a cheap smooth field: random shifts on a knots×knots
    grid, bicubically upsampled, at most ``max_shift`` of the side (its own field blurs full-size
    noise with a kernel as wide as the image: seconds per 512 px sample)."""
    from torchvision.transforms import v2
    from torchvision.transforms.v2._utils import query_size

    class SmoothBend(v2.ElasticTransform):
        def make_params(self, flat_inputs: list) -> dict:
            height, width = query_size(flat_inputs)
            field = torch.rand(1, 2, knots, knots) * 2 - 1
            field = F.interpolate(field, size=(height, width), mode="bicubic", align_corners=True)
            # grid_sample coordinates span 2 per side: a shift of s·side is 2·s
            field = field.clamp(-1, 1) * (2 * max_shift)
            return {"displacement": field.permute(0, 2, 3, 1)}

    return SmoothBend()


def build_transform(cfg: AugmentConfig, size: int):
    """torchvision v2 pipeline over (image, mask…) at output side ``size``."""
    from torchvision.transforms import v2

    if not cfg.enabled:
        return v2.Compose([v2.Resize(size - 1, max_size=size), v2.RandomCrop(size, pad_if_needed=True)])
    steps = [
        v2.RandomRotation(cfg.rotation),
        v2.ScaleJitter((size, size), scale_range=(cfg.scale_min, cfg.scale_max), antialias=True),
        v2.RandomCrop(size, pad_if_needed=True),
    ]
    if cfg.perspective > 0:
        steps.append(v2.RandomPerspective(cfg.perspective, p=cfg.perspective_prob))
    if cfg.bend > 0:
        steps.append(v2.RandomApply([smooth_bend(cfg.bend, cfg.bend_knots)], p=cfg.bend_prob))
    steps.append(v2.ColorJitter(cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue))
    return v2.Compose(steps)


class RefinerTrainSet(torch.utils.data.Dataset):
    """Map-style dataset of :class:`RefinerSample` over a ``datasets.Dataset``."""

    def __init__(
        self,
        *,
        rows,
        image_size: int,
        coarse: CoarseConfig,
        augment: AugmentConfig,
        description_column: str | None = None,
        seed: int = 0,
        view_size: int | None = None,
    ) -> None:
        """view_size: the text backbone's view side V > S (``text_backbone.image_size``): samples
        are cut at V, the backbone gets that sharp view and SAM its downscaled copy, as at inference
        (``stsam_refiner.predict.prepare_backbone_view``); None: everything at S."""
        missing = {"image", "mask"} - set(rows.column_names)
        if coarse.source == "gt" and coarse.regions:
            missing |= {"instance_masks"} - set(rows.column_names)
        if coarse.source == "cached":
            missing |= {coarse.cached_column} - set(rows.column_names)
        if description_column:
            missing |= {description_column} - set(rows.column_names)
        if missing:
            raise ValueError(f"dataset lacks columns {sorted(missing)} (has {rows.column_names})")
        self.rows = rows
        self.size = image_size
        self.coarse = coarse
        self.description_column = description_column
        self.view_size = view_size if view_size and view_size > image_size else None
        self.transform = build_transform(augment, self.view_size or image_size)
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> RefinerSample:
        from torchvision import tv_tensors

        row = self.rows[int(index)]
        image = np.array(row["image"].convert("RGB"))
        masks = [np.asarray(row["mask"].convert("L")) > 127]
        if self.coarse.source == "cached":
            grid = cached_grid(row[self.coarse.cached_column], self.coarse.grid)
            masks.append(upsample_grid(grid, size=image.shape[:2]))
        elif self.coarse.regions:
            instances = [decode_rle(m) for m in row["instance_masks"]]
            masks.append(word_regions(instances, image.shape[:2]))
        img_t = tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1).contiguous())
        mask_t = [tv_tensors.Mask(torch.from_numpy(m.astype(np.uint8))[None]) for m in masks]
        img_t, *mask_t = self.transform(img_t, *mask_t)
        view = None
        if self.view_size:  # cut at V: the backbone keeps it, SAM and the targets get S
            view = img_t.float() / 255.0
            img_t = F.interpolate(img_t[None].float(), size=self.size, mode="bilinear", antialias=True)[0]
            mask_t = [F.interpolate(m[None].float(), size=self.size, mode="nearest")[0] for m in mask_t]
        target = mask_t[0][0].numpy() > 0
        rng = np.random.default_rng((self.seed, self.epoch, int(index)))
        if self.coarse.source == "cached":
            coarse = grid_from_mask(
                mask_t[1][0].numpy() > 0, grid_size=(self.coarse.grid,) * 2, rule="nearest"
            )
        else:
            clean = grid_from_mask(
                mask_t[1][0].numpy() > 0 if self.coarse.regions else target,
                grid_size=(self.coarse.grid,) * 2,
                rule=self.coarse.rule,
                threshold=self.coarse.threshold,
            )
            coarse = damage_grid(clean, self.coarse, rng)
        prompt = coarse_to_mask_prompt(coarse, original_size=(self.size, self.size), mask_size=self.size // 4)
        description = describe(row[self.description_column]) if self.description_column else None
        return RefinerSample(
            image=img_t.float(),
            target=torch.from_numpy(target.astype(np.float32))[None],
            mask_prompt=torch.from_numpy(prompt),
            coarse_grid=coarse,
            description=description or None,
            view=view,
        )


def collate(samples: list[RefinerSample]) -> dict:
    """Stack samples into a batch dict of tensors (+ lists for descriptions and grids)."""
    return {
        "images": torch.stack([s.image for s in samples]),
        "targets": torch.stack([s.target for s in samples]),
        "mask_prompts": torch.stack([s.mask_prompt for s in samples]),
        "descriptions": [s.description for s in samples],
        "coarse_grids": [s.coarse_grid for s in samples],
        "views": torch.stack([s.view for s in samples]) if samples[0].view is not None else None,
    }
