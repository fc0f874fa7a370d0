"""Composing one synthetic scene: background, text instances with effects, and their exact masks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_builders.synthetic import colours, effects
from data_builders.synthetic.backgrounds import draw_distractors, sample_background
from data_builders.synthetic.config import SyntheticConfig
from data_builders.synthetic.corpus_scene import compose_extended
from data_builders.synthetic.fonts import FontSpec, font_set
from data_builders.synthetic.instances import (
    SIZE_CLASSES,
    Instance,
    SyntheticScene,
    name_unnamed,
    place,
    position_name,
    size_class,
)
from data_builders.synthetic.render import TextLayer, render_text
from data_builders.synthetic.words import sample_text


def _sample_geometry(rng: np.random.Generator, cfg: SyntheticConfig) -> tuple[str, float, float, float]:
    """(orientation, angle degrees, bend radians, perspective strength) for one instance."""
    roll = rng.random()
    if roll < cfg.p_vertical:
        orientation, angle = "vertical", float(rng.choice([90.0, -90.0]))
    elif roll < cfg.p_vertical + cfg.p_rotated:
        orientation = "rotated"
        angle = float(rng.uniform(5.0, max(cfg.max_rotation, 5.0)) * rng.choice([1, -1]))
    else:
        orientation, angle = "horizontal", 0.0
    bend = float(rng.uniform(0.5, 2.0) * rng.choice([1, -1])) if rng.random() < cfg.p_curved else 0.0
    persp = float(rng.uniform(0.05, 0.18)) if rng.random() < cfg.p_perspective else 0.0
    return orientation, angle, bend, persp


def _render_fitting(rng, cfg: SyntheticConfig, text: str, font: FontSpec) -> tuple[TextLayer, float, tuple]:
    """Render at a sampled size, shrinking until the layer fits inside 90% of the image."""
    _, low, high = SIZE_CLASSES[rng.integers(len(SIZE_CLASSES))]
    font_size = max(7.0, rng.uniform(low, high) * cfg.size)
    geometry = _sample_geometry(rng, cfg)
    _, angle, bend, persp = geometry
    for _ in range(6):
        layer = render_text(
            text,
            font_path=font.path,
            font_size=int(font_size),
            angle=angle,
            bend=bend,
            perspective=persp,
            rng=rng,
        )
        h, w = layer.alpha.shape
        scale = 0.9 * cfg.size / max(h, w)
        if scale >= 1.0:
            return layer, font_size, geometry
        font_size = max(7.0, font_size * scale * 0.97)
    return layer, font_size, geometry


@dataclass
class _Planned:
    """An instance after placement and before painting (internal)."""

    text: str
    font: FontSpec
    font_size: float
    geometry: tuple[str, float, float, float]
    mask: np.ndarray
    box: tuple[int, int, int, int]
    pad: int
    plate: bool
    outline: bool
    shadow: bool
    low_contrast: bool


def _plan_instances(rng, cfg: SyntheticConfig, count: int) -> list[_Planned]:
    fonts = font_set(cfg.fonts)
    taken: list = []
    planned: list[_Planned] = []
    for _ in range(count):
        text = sample_text(rng)
        font = fonts[rng.integers(len(fonts))]
        layer, font_size, geometry = _render_fitting(rng, cfg, text, font)
        pad = max(2, int(0.3 * font_size))
        flags = [rng.random() < p for p in (cfg.p_plate, cfg.p_outline, cfg.p_shadow, cfg.p_low_contrast)]
        plate, outline, shadow, low_contrast = flags
        if low_contrast:  # a faint word on a plate or with an outline would not be low contrast
            plate = outline = shadow = False
        spot = place(rng, layer.alpha.shape, cfg.size, pad + 2, taken)
        if spot is None:
            continue
        x, y = spot
        mask = np.zeros((cfg.size, cfg.size), bool)
        h, w = layer.alpha.shape
        mask[y : y + h, x : x + w] = layer.alpha >= 0.5
        ys, xs = np.nonzero(mask)
        if ys.size < 4:  # too small to survive thresholding: nothing to segment
            taken.pop()
            continue
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        planned.append(
            _Planned(text, font, font_size, geometry, mask, box, pad, plate, outline, shadow, low_contrast)
        )
    return planned


def _paint_effects(rng, canvas: np.ndarray, item: _Planned, local: np.ndarray) -> tuple[str, str, np.ndarray]:
    """Paint plate/shadow/outline for one instance; return (text colour name, plate name, effect mask)."""
    effect = np.zeros(item.mask.shape, bool)
    plate_name = ""
    if item.plate:
        text_name = colours.NAMES[rng.integers(len(colours.NAMES))]
        plate_name = colours.contrasting_name(rng, np.array(colours.PALETTE[text_name]))
        region = effects.plate_region(item.mask.shape, item.box, item.pad, radius=item.pad // 2)
        effects.paint(canvas, region, np.array(colours.PALETTE[plate_name]))
    else:
        text_name = colours.contrasting_name(rng, local)
    text_rgb = np.array(colours.PALETTE[text_name], np.float32)
    if item.shadow:
        offset = max(1, int(0.08 * item.font_size))
        region = effects.shadow_region(item.mask, offset, offset)
        effects.paint(canvas, region, np.array([10.0, 10.0, 10.0]), opacity=float(rng.uniform(0.5, 0.8)))
        effect |= region
    if item.outline:
        width = max(1, int(0.06 * item.font_size))
        region = effects.outline_region(item.mask, width)
        effects.paint(canvas, region, np.array(colours.PALETTE[colours.contrasting_name(rng, text_rgb)]))
        effect |= region
    return text_name, plate_name, effect


def _fill_colour(rng, item: _Planned, text_name: str, local: np.ndarray) -> tuple[np.ndarray, str]:
    if item.low_contrast:
        # Shift the local background by a small luminance step: visible, but only just.
        step = rng.uniform(25, 45) * (1 if local.mean() < 128 else -1)
        return np.clip(local + step, 0, 255), ""  # named by how it looks (instances.name_unnamed)
    jitter = rng.uniform(-12, 12, size=3)
    return np.clip(np.array(colours.PALETTE[text_name], np.float32) + jitter, 0, 255), text_name


def _instance(item: _Planned, colour: str, plate: str, size: int) -> Instance:
    orientation, angle, bend, persp = item.geometry
    x0, y0, x1, y1 = item.box
    return Instance(
        text=item.text, box=item.box, colour=colour, size=size_class(item.font_size, size),
        position=position_name((x0 + x1) / 2, (y0 + y1) / 2, size), orientation=orientation, angle=angle,
        curved=bend != 0 and len(item.text) > 1, perspective=persp > 0, font=item.font.description,
        font_family=item.font.family, plate=plate, outline=item.outline, shadow=item.shadow,
        low_contrast=item.low_contrast, area=int(item.mask.sum()),
    )  # fmt: skip


def compose_scene(cfg: SyntheticConfig, rng: np.random.Generator) -> SyntheticScene:
    """Draw one scene. Same config and same generator state give the same scene, bit for bit."""
    if cfg.extended:  # corpus fonts/photos, surfaces, occlusion...: a separate path keeps old streams
        return compose_extended(cfg, rng)
    background, kind = sample_background(rng, cfg.size, cfg.p_photo)
    if cfg.p_distractors > 0 and rng.random() < cfg.p_distractors:
        background = draw_distractors(background, rng, int(rng.integers(1, 7)))
    count = 0 if rng.random() < cfg.p_no_text else int(rng.integers(1, cfg.max_instances + 1))
    planned = _plan_instances(rng, cfg, count)
    canvas = background.astype(np.float32)
    effect_mask = np.zeros((cfg.size, cfg.size), bool)
    fills: list[tuple[np.ndarray, np.ndarray]] = []
    instances: list[Instance] = []
    for item in planned:
        x0, y0, x1, y1 = item.box
        local = canvas[y0:y1, x0:x1].reshape(-1, 3).mean(axis=0)
        text_name, plate_name, effect = _paint_effects(rng, canvas, item, local)
        if item.plate:
            local = np.array(colours.PALETTE[plate_name], np.float32)
        rgb, colour = _fill_colour(rng, item, text_name, local)
        effect_mask |= effect
        fills.append((item.mask, rgb))
        instances.append(_instance(item, colour, plate_name, cfg.size))
    effects_bg = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    clean = effects_bg.copy()
    union = np.zeros((cfg.size, cfg.size), bool)
    for mask, rgb in fills:
        clean[mask] = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
        union |= mask
    # A stroke pixel identical to what lies behind it would make the mask claim an invisible pixel.
    same = union & (clean == effects_bg).all(axis=-1)
    clean[same] = np.where(effects_bg[same] > 127, effects_bg[same] - 12, effects_bg[same] + 12)
    image, applied = effects.post_process(
        clean, rng, p_blur=cfg.p_blur, p_noise=cfg.p_noise, p_jpeg=cfg.p_jpeg
    )
    return SyntheticScene(
        image=image, clean=clean, background=effects_bg, mask=union, effect_mask=effect_mask & ~union,
        instance_masks=tuple(m for m, _ in fills), background_kind=kind,
        instances=name_unnamed(tuple(instances), tuple(m for m, _ in fills), image),
        post_effects=tuple(applied),
    )  # fmt: skip


def scene_rng(seed: int, index: int) -> np.random.Generator:
    """The generator for sample `index` of a build with `seed`: independent of worker count and order."""
    return np.random.default_rng([seed, index])


__all__ = [
    "SIZE_CLASSES",
    "Instance",
    "SyntheticScene",
    "compose_scene",
    "position_name",
    "scene_rng",
    "size_class",
]
