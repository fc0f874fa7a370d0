"""The extended generator: corpus fonts and photos, text blocks on surfaces, occlusion, hard negatives.

`scene.compose_scene` hands a config here when any extended option is set (`SyntheticConfig.extended`),
so configs without them keep drawing exactly what they drew before. The invariants are the same:
outside the stroke mask the clean image equals the background (which includes plates, outlines,
shadows, hard negatives and occluders), and every stroke pixel differs from what lies behind it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from data_builders.synthetic import colours, effects, font_catalog, photos
from data_builders.synthetic.backgrounds import draw_distractors, sample_background, texture
from data_builders.synthetic.config import SyntheticConfig
from data_builders.synthetic.font_catalog import corpus_families, split_group
from data_builders.synthetic.font_checks import min_font_size
from data_builders.synthetic.fonts import FontSpec, font_set
from data_builders.synthetic.instances import (
    SIZE_RANGES,
    Instance,
    SyntheticScene,
    name_unnamed,
    place,
    position_name,
    size_class,
)
from data_builders.synthetic.layouts import Block, render_block
from data_builders.synthetic.negatives import draw_hard_negatives, occluder
from data_builders.synthetic.words import sample_text


@lru_cache(maxsize=8)
def _font_pools(split: str, assets_dir: str) -> tuple[tuple[tuple[tuple[FontSpec, ...], ...], ...], ...]:
    """(ordinary, decorative) pools; each a tuple of split groups, each a tuple of families' faces."""
    pools = []
    for decorative in (False, True):
        groups: dict[str, list[tuple[FontSpec, ...]]] = {}
        for family in corpus_families(split, assets_dir):
            if family.decorative == decorative:
                groups.setdefault(split_group(family.name), []).append(family.faces)
        pools.append(tuple(tuple(groups[g]) for g in sorted(groups)))
    return tuple(pools)


def pick_font(rng: np.random.Generator, cfg: SyntheticConfig) -> FontSpec:
    """A face: corpus split group, then family, then face, each uniform (so a group with 17 families
    is not drawn 17 times as often); decorative families with probability p_decorative_font."""
    if not cfg.font_split:
        fonts = font_set(cfg.fonts)
        return fonts[rng.integers(len(fonts))]
    ordinary, decorative = _font_pools(cfg.font_split, cfg.assets_dir)
    use_decorative = bool(decorative) and (not ordinary or rng.random() < cfg.p_decorative_font)
    groups = decorative if use_decorative else ordinary
    families = groups[rng.integers(len(groups))]
    faces = families[rng.integers(len(families))]
    return faces[rng.integers(len(faces))]


def prepare_sources(cfg: SyntheticConfig) -> list[str]:
    """Scan the font and photo catalogs and scale the split's photos once, in the calling process, so
    parallel workers find them cached on disk; returns warnings about missing Debian packages."""
    warnings = []
    if cfg.font_split:
        _font_pools(cfg.font_split, cfg.assets_dir)
        if not cfg.assets_dir:
            warnings.append(font_catalog.missing_packages_warning())
    if cfg.background_split:
        for photo in photos.corpus_photos(cfg.background_split, cfg.assets_dir):
            photos.load_scaled(photo.path)
        if not cfg.assets_dir:
            warnings.append(photos.missing_packages_warning())
    return [w for w in warnings if w]


def _background(rng: np.random.Generator, cfg: SyntheticConfig) -> tuple[np.ndarray, str]:
    if not cfg.background_split:
        return sample_background(rng, cfg.size, cfg.p_photo)
    if rng.random() < cfg.p_photo:
        return photos.corpus_photo_crop(
            rng, cfg.size, photos.corpus_photos(cfg.background_split, cfg.assets_dir)
        )
    return texture(rng, cfg.size)


@dataclass
class _Placed:
    """A block after placement: full-image word masks and plate region (internal)."""

    block: Block
    font: FontSpec
    font_size: float
    angle: float
    perspective: float
    masks: list[np.ndarray]
    plate: np.ndarray | None
    flags: tuple[bool, bool, bool]
    """outline, shadow, low contrast"""


def _geometry(rng: np.random.Generator, cfg: SyntheticConfig, layout: str) -> tuple[float, float, float]:
    """(angle degrees, arc bend radians, perspective strength) of one block."""
    roll = rng.random()
    if roll < cfg.p_vertical and layout not in ("stacked", "lines"):
        angle = float(rng.choice([90.0, -90.0]))
    elif roll < cfg.p_vertical + cfg.p_rotated:
        angle = float(rng.uniform(5.0, max(cfg.max_rotation, 5.0)) * rng.choice([1, -1]))
    else:
        angle = 0.0
    bend = float(rng.uniform(0.5, 2.0) * rng.choice([1, -1])) if rng.random() < cfg.p_curved else 0.0
    low, high = cfg.perspective_range
    persp = float(rng.uniform(low, high)) if rng.random() < cfg.p_perspective else 0.0
    return angle, bend if layout == "scatter" else 0.0, persp


def _plan_block(rng, cfg: SyntheticConfig, remaining: int, taken: list) -> _Placed | None:
    layout = cfg.text_layouts[rng.integers(len(cfg.text_layouts))]
    count = min(int(rng.integers(2, 4)), remaining) if layout == "lines" else 1
    words = tuple(sample_text(rng) for _ in range(count))
    font = pick_font(rng, cfg)
    low, high = SIZE_RANGES[cfg.size_classes[rng.integers(len(cfg.size_classes))]]
    font_size = max(7.0, rng.uniform(low, high) * cfg.size, float(min_font_size(font.stroke)))
    angle, bend, persp = _geometry(rng, cfg, layout)
    plate, outline, shadow, low_contrast = (rng.random() < p for p in (cfg.p_plate, cfg.p_outline, cfg.p_shadow, cfg.p_low_contrast))  # fmt: skip
    if low_contrast:  # a faint word on a plate or with an outline would not be low contrast
        plate = outline = shadow = False
    for _ in range(6):
        pad = max(2, int(0.3 * font_size)) if plate else 0
        block = render_block(words, layout=layout, font_path=font.path, font_size=int(font_size), angle=angle,
                             bend=bend, perspective=persp, plate_pad=pad, rng=rng)  # fmt: skip
        h, w = block.alphas[0].shape
        scale = 0.9 * cfg.size / max(h, w)
        if scale >= 1.0:
            break
        font_size = max(7.0, font_size * scale * 0.97)
    spot = place(rng, block.alphas[0].shape, cfg.size, 2, taken)
    if spot is None:
        return None
    x, y = spot
    h, w = block.alphas[0].shape

    def full(alpha: np.ndarray) -> np.ndarray:
        out = np.zeros((cfg.size, cfg.size), bool)
        out[y : y + h, x : x + w] = alpha >= 0.5
        return out

    masks, union = [], np.zeros((cfg.size, cfg.size), bool)
    for alpha in block.alphas:
        mask = full(alpha) & ~union  # warped neighbours may touch: instances stay disjoint
        masks.append(mask)
        union |= mask
    if union.sum() < 4:
        taken.pop()
        return None
    plate_region = full(block.plate) if block.plate is not None else None
    return _Placed(block, font, font_size, angle, persp, masks, plate_region, (outline, shadow, low_contrast))


def _shade(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """HxW float32 multiplicative shading in about [0.85, 1.1]: a surface lit from one side."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, 2 * np.pi)
    t = (np.cos(a) * xx / w + np.sin(a) * yy / h) * 2 - 1
    return (0.97 + rng.uniform(0.02, 0.13) * t).astype(np.float32)


def _paint_block(
    rng, cfg: SyntheticConfig, canvas: np.ndarray, item: _Placed
) -> tuple[str, str, np.ndarray, np.ndarray]:
    """Paint plate / shadow / outline into `canvas`; return (colour name, plate name, HxWx3 fill, effect mask)."""
    union = np.logical_or.reduce(item.masks)
    ys, xs = np.nonzero(union)
    local = canvas[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].reshape(-1, 3).mean(axis=0)
    outline, shadow, low_contrast = item.flags
    effect = np.zeros(union.shape, bool)
    plate_name = ""
    if item.plate is not None:
        text_name = colours.NAMES[rng.integers(len(colours.NAMES))]
        plate_name = colours.contrasting_name(rng, np.array(colours.PALETTE[text_name]))
        plate_rgb = np.array(colours.PALETTE[plate_name], np.float32)
        shaded = plate_rgb[None, None] * _shade(rng, union.shape)[..., None]
        canvas[item.plate] = np.clip(
            shaded[item.plate] + rng.normal(0, 3, (int(item.plate.sum()), 3)), 0, 255
        )
        local = plate_rgb
    else:
        text_name = colours.contrasting_name(rng, local)
    if shadow:
        offset = max(1, int(0.08 * item.font_size))
        region = effects.shadow_region(union, offset, offset)
        effects.paint(canvas, region, np.array([10.0, 10.0, 10.0]), opacity=float(rng.uniform(0.5, 0.8)))
        effect |= region
    if outline:
        region = effects.outline_region(union, max(1, int(0.06 * item.font_size)))
        rgb = np.array(colours.PALETTE[colours.contrasting_name(rng, np.array(colours.PALETTE[text_name]))])
        effects.paint(canvas, region, rgb)
        effect |= region
    if low_contrast:  # named later by how it looks, if it has a name at all (instances.name_unnamed)
        rgb = np.clip(local + rng.uniform(25, 45) * (1 if local.mean() < 128 else -1), 0, 255)
        text_name = ""
    else:
        rgb = np.clip(np.array(colours.PALETTE[text_name], np.float32) + rng.uniform(-12, 12, 3), 0, 255)
    fill = np.broadcast_to(rgb.astype(np.float32), canvas.shape).copy()
    if cfg.p_textured_fill > 0 and rng.random() < cfg.p_textured_fill:
        # Paint on a textured surface: the surface's light and dark show through the paint.
        lum = canvas.mean(axis=-1, keepdims=True)
        fill *= 0.8 + 0.4 * lum / 255.0
    return text_name, plate_name, np.clip(fill, 0, 255), effect


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _occlude(rng, cfg, canvas, clean, masks, boxes) -> np.ndarray | None:
    """Paint 1-2 occluders over random blocks into both images and clear the mask pixels they cover;
    returns the covered HxW bool region, or None when nothing was drawn."""
    if not boxes or cfg.p_occlusion == 0 or rng.random() >= cfg.p_occlusion:
        return None
    covered = np.zeros(canvas.shape[:2], bool)
    for _ in range(int(rng.integers(1, 3))):
        region, colour, _ = occluder(rng, canvas.shape[:2], boxes[rng.integers(len(boxes))])
        canvas[region] = colour[region]
        clean[region] = colour[region]
        for mask in masks:
            mask &= ~region
        covered |= region
    return covered


def _instance(word: str, mask: np.ndarray, item: _Placed, colour: str, plate: str, size: int) -> Instance:
    box = _bbox(mask)
    vertical = item.block.layout == "stacked" or abs(abs(item.angle) - 90) < 1e-6
    orientation = "vertical" if vertical else "rotated" if item.angle != 0 else "horizontal"
    return Instance(
        text=word, box=box, colour=colour, size=size_class(item.font_size, size),
        position=position_name((box[0] + box[2]) / 2, (box[1] + box[3]) / 2, size), orientation=orientation,
        angle=item.angle, curved=item.block.curved, perspective=item.perspective > 0, font=item.font.description,
        font_family=item.font.family, plate=plate, outline=item.flags[0], shadow=item.flags[1],
        low_contrast=item.flags[2], area=int(mask.sum()),
    )  # fmt: skip


def compose_extended(cfg: SyntheticConfig, rng: np.random.Generator) -> SyntheticScene:
    """Draw one scene with the extended options (see the module docstring)."""
    background, kind = _background(rng, cfg)
    applied: list[str] = []
    if cfg.p_hard_negative > 0 and rng.random() < cfg.p_hard_negative:
        background, kinds = draw_hard_negatives(background, rng, int(rng.integers(1, 3)))
        applied += [f"negative:{k}" for k in kinds]
    if cfg.p_distractors > 0 and rng.random() < cfg.p_distractors:
        background = draw_distractors(background, rng, int(rng.integers(1, 7)))
    target = 0 if rng.random() < cfg.p_no_text else int(rng.integers(1, cfg.max_instances + 1))
    placed: list[_Placed] = []
    taken: list = []
    remaining, tries = target, 0
    while remaining > 0 and tries < 2 * cfg.max_instances:
        tries += 1
        item = _plan_block(rng, cfg, remaining, taken)
        if item is not None:
            placed.append(item)
            remaining -= len(item.masks)
    canvas = background.astype(np.float32)
    fills, names = [], []
    effect_mask = np.zeros((cfg.size, cfg.size), bool)
    for item in placed:
        text_name, plate_name, fill, effect = _paint_block(rng, cfg, canvas, item)
        fills.append(fill)
        names.append((text_name, plate_name))
        effect_mask |= effect
    clean = canvas.copy()
    for item, fill in zip(placed, fills, strict=True):
        for mask in item.masks:
            clean[mask] = fill[mask]
    masks = [m for item in placed for m in item.masks]
    boxes = [_bbox(np.logical_or.reduce(item.masks)) for item in placed]
    covered = _occlude(rng, cfg, canvas, clean, masks, boxes)
    if covered is not None:
        applied.append("occlusion")
        effect_mask &= ~covered
    effects_bg = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    clean_u8 = np.clip(np.rint(clean), 0, 255).astype(np.uint8)
    union = np.logical_or.reduce(masks) if masks else np.zeros((cfg.size, cfg.size), bool)
    clean_u8[~union] = effects_bg[~union]
    same = union & (clean_u8 == effects_bg).all(axis=-1)
    clean_u8[same] = np.where(effects_bg[same] > 127, effects_bg[same] - 12, effects_bg[same] + 12)
    instances, instance_masks = [], []
    for item, (text_name, plate_name) in zip(placed, names, strict=True):
        for word, mask in zip(item.block.words, item.masks, strict=True):
            if mask.sum() >= 4:
                instances.append(_instance(word, mask, item, text_name, plate_name, cfg.size))
                instance_masks.append(mask)
    union = np.logical_or.reduce(instance_masks) if instance_masks else np.zeros_like(union)
    clean_u8[~union] = effects_bg[~union]  # specks of < 4 visible pixels left by an occluder
    image, post = effects.post_process(clean_u8, rng, p_blur=cfg.p_blur, p_noise=cfg.p_noise, p_jpeg=cfg.p_jpeg,
                                       p_lighting=cfg.p_lighting, p_low_res=cfg.p_low_res)  # fmt: skip
    instance_masks = tuple(instance_masks)
    return SyntheticScene(
        image=image, clean=clean_u8, background=effects_bg, mask=union, effect_mask=effect_mask & ~union,
        instance_masks=instance_masks, instances=name_unnamed(tuple(instances), instance_masks, image),
        background_kind=kind,
        post_effects=tuple(applied + post),
    )  # fmt: skip
