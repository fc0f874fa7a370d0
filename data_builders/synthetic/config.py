"""Configuration of the synthetic scene-text generator."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

from data_builders.synthetic.instances import SIZE_RANGES
from data_builders.synthetic.phrasings import PHRASING_SPLITS

FONT_SETS = ("train", "eval")
LAYOUTS = ("arrow", "totaltext", "textseg")
CORPUS_SPLITS = ("train", "select", "test")
TEXT_LAYOUTS = ("scatter", "lines", "wave", "stacked", "ring")  # data_builders.synthetic.layouts
# Fields whose non-default values switch on the extended generator (corpus_scene.compose_extended).
_EXTENDED_DEFAULTS = {
    "font_split": "", "background_split": "", "assets_dir": "", "text_layouts": ("scatter",),
    "perspective_range": (0.05, 0.18), "p_occlusion": 0.0, "p_lighting": 0.0, "p_low_res": 0.0,
    "p_hard_negative": 0.0, "p_textured_fill": 0.0,
    "size_classes": ("tiny", "small", "medium", "large", "huge"),
}  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class SyntheticConfig:
    """How synthetic scene-text images are drawn. Every probability is per image unless stated."""

    size: int = 256
    """Image side in pixels (images are square)."""
    fonts: str = "train"
    """Font set: "train" (DejaVu + PyPI font packages) or "eval" (STIX + Computer Modern, held out)."""
    max_instances: int = 5
    """Most text instances placed in one image."""
    phrasings: str = "canonical"
    """How referring expressions are said (``phrasings.PHRASING_SPLITS``): "canonical" (one sentence per
    kind), "train" or "heldout" (disjoint template pools: validate and test on the held-out one)."""
    p_no_text: float = 0.08
    """Probability that an image has no text at all."""
    p_photo: float = 0.6
    """Probability that the background is a real photo crop (else a procedural texture)."""
    p_curved: float = 0.2
    """Per instance: probability of a curved (arc) baseline."""
    p_rotated: float = 0.3
    """Per instance: probability of an in-plane rotation (else horizontal or vertical)."""
    p_vertical: float = 0.05
    """Per instance: probability of vertical (90 degrees) text."""
    p_perspective: float = 0.2
    """Per instance: probability of a perspective warp."""
    p_plate: float = 0.25
    """Per instance: probability of a sign plate behind the text."""
    p_outline: float = 0.15
    """Per instance: probability of an outline (an effect: background in the mask)."""
    p_shadow: float = 0.15
    """Per instance: probability of a drop shadow (an effect: background in the mask)."""
    p_low_contrast: float = 0.1
    """Per instance: probability of text colour close to its background."""
    p_distractors: float = 0.0
    """Probability of 1-6 non-text stroke shapes (lines, boxes, arcs) drawn into the background.
    0 keeps the random stream of earlier builds unchanged (no draw is consumed)."""
    p_blur: float = 0.3
    """Probability of a Gaussian blur over the finished image."""
    p_noise: float = 0.3
    """Probability of additive Gaussian noise over the finished image."""
    p_jpeg: float = 0.4
    """Probability of a JPEG round trip over the finished image."""
    max_rotation: float = 40.0
    """Largest in-plane rotation in degrees."""
    test_fraction: float = 0.1
    """Fraction of indices assigned to the "test" split (the rest is "train")."""
    font_split: str = ""
    """Corpus font families: "train", "select" or "test" (font_catalog: hundreds of families from
    Debian and PyPI font packages, split by family). "" uses the legacy `fonts` set instead."""
    background_split: str = ""
    """Corpus photo backgrounds: "train", "select" or "test" (photos: wallpaper packages, scikit-image,
    scikit-learn, split by source photo). "" uses the legacy scikit-image photos instead."""
    assets_dir: str = ""
    """A folder with fonts/ and backgrounds/ (made by `python -m data_builders.synthetic.pack_assets`)
    that replaces the Debian and PyPI packages, for machines without them. "" reads the packages."""
    p_decorative_font: float = 0.15
    """With font_split: probability that an instance uses a decorative family (fonts-aenigma)."""
    text_layouts: tuple[str, ...] = ("scatter",)
    """Layout families drawn uniformly per text block (layouts.TEXT_LAYOUTS): scatter, lines, wave,
    stacked, ring."""
    size_classes: tuple[str, ...] = ("tiny", "small", "medium", "large", "huge")
    """Font-size ranges drawn from, uniformly (``instances.SIZE_RANGES``; "micro" is street-photo size;
    a name given twice is drawn twice as often)."""
    perspective_range: tuple[float, float] = (0.05, 0.18)
    """(low, high) corner jitter of a perspective warp, as a fraction of the block size."""
    p_occlusion: float = 0.0
    """Probability that 1-2 occluders (poles, leaves, stickers, blobs) cover part of the text."""
    p_lighting: float = 0.0
    """Probability of a lighting gain (gradient, spotlight, soft cast shadow) over the scene."""
    p_low_res: float = 0.0
    """Probability of a downscale-upscale (1.5-4x) of the finished image."""
    p_hard_negative: float = 0.0
    """Probability of 1-2 text-like patterns with no text (stripes, grilles, bricks, foliage, barcodes,
    pictograms) in the background."""
    p_textured_fill: float = 0.0
    """Per text block: probability that the surface's shading shows through the text's paint."""

    @property
    def extended(self) -> bool:
        """Whether any extended option is set (then `corpus_scene.compose_extended` draws the scene)."""
        return any(getattr(self, name) != default for name, default in _EXTENDED_DEFAULTS.items())

    def __post_init__(self) -> None:
        if self.size < 32:
            raise ValueError(f"size {self.size} < 32 pixels: too small to draw legible text")
        if self.fonts not in FONT_SETS:
            raise ValueError(f"fonts {self.fonts!r} not in {FONT_SETS}")
        if self.phrasings not in PHRASING_SPLITS:
            raise ValueError(f"phrasings {self.phrasings!r} not in {PHRASING_SPLITS}")
        if self.max_instances < 1:
            raise ValueError(f"max_instances {self.max_instances} < 1")
        for f in fields(self):
            if f.name.startswith("p_") or f.name == "test_fraction":
                value = getattr(self, f.name)
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"{f.name} {value} outside [0, 1]")
        if not 0.0 <= self.max_rotation <= 90.0:
            raise ValueError(f"max_rotation {self.max_rotation} outside [0, 90] degrees")
        self._check_extended()

    def _check_extended(self) -> None:
        # YAML gives lists; tuples keep the config hashable and comparable.
        object.__setattr__(self, "text_layouts", tuple(self.text_layouts))
        object.__setattr__(self, "size_classes", tuple(self.size_classes))
        unknown_sizes = [v for v in self.size_classes if v not in SIZE_RANGES]
        if not self.size_classes or unknown_sizes:
            raise ValueError(
                f"size_classes {list(self.size_classes)} must be a non-empty subset of {sorted(SIZE_RANGES)}"
            )
        object.__setattr__(self, "perspective_range", tuple(float(v) for v in self.perspective_range))
        for name in ("font_split", "background_split"):
            value = getattr(self, name)
            if value and value not in CORPUS_SPLITS:
                raise ValueError(f"{name} {value!r} not in {CORPUS_SPLITS} (or '' for the legacy sources)")
        unknown = [v for v in self.text_layouts if v not in TEXT_LAYOUTS]
        if not self.text_layouts or unknown:
            raise ValueError(
                f"text_layouts {list(self.text_layouts)} must be a non-empty subset of {TEXT_LAYOUTS}"
            )
        low, high = (self.perspective_range + (0.0, 0.0))[:2]
        if len(self.perspective_range) != 2 or not 0.0 <= low <= high <= 0.4:
            raise ValueError(
                f"perspective_range {list(self.perspective_range)} must be [low, high], 0 <= low <= high <= 0.4"
            )

    @classmethod
    def from_yaml(cls, path: str | Path) -> SyntheticConfig:
        """Load from a YAML mapping of field names (unknown keys raise ValueError)."""
        import yaml

        raw = yaml.safe_load(Path(path).read_text()) or {}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"{path}: unknown SyntheticConfig keys {unknown}")
        return cls(**raw)

    def to_dict(self) -> dict:
        return asdict(self)
