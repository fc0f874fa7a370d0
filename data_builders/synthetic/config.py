"""Configuration of the synthetic scene-text generator."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

FONT_SETS = ("train", "eval")
LAYOUTS = ("arrow", "totaltext", "textseg")


@dataclass(frozen=True, kw_only=True)
class SyntheticConfig:
    """How synthetic scene-text images are drawn. Every probability is per image unless stated."""

    size: int = 256
    """Image side in pixels (images are square)."""
    fonts: str = "train"
    """Font set: "train" (DejaVu + PyPI font packages) or "eval" (STIX + Computer Modern, held out)."""
    max_instances: int = 5
    """Most text instances placed in one image."""
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

    def __post_init__(self) -> None:
        if self.size < 32:
            raise ValueError(f"size {self.size} < 32 pixels: too small to draw legible text")
        if self.fonts not in FONT_SETS:
            raise ValueError(f"fonts {self.fonts!r} not in {FONT_SETS}")
        if self.max_instances < 1:
            raise ValueError(f"max_instances {self.max_instances} < 1")
        for f in fields(self):
            if f.name.startswith("p_") or f.name == "test_fraction":
                value = getattr(self, f.name)
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"{f.name} {value} outside [0, 1]")
        if not 0.0 <= self.max_rotation <= 90.0:
            raise ValueError(f"max_rotation {self.max_rotation} outside [0, 90] degrees")

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
