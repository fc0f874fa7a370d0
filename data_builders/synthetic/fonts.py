"""Fonts that ship inside installed packages, split into a training set and a held-out set.

Training fonts: matplotlib's DejaVu family plus the PyPI font packages (Roboto, Source Sans Pro,
Lato). Held-out ("eval") fonts: matplotlib's STIX and Computer Modern text faces, never used for
training, so a model scored on them is scored on glyph shapes it has not seen.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

# Symbol-only or subset faces that cannot draw ordinary words.
_EXCLUDED_PREFIXES = ("DejaVuSansDisplay", "DejaVuSerifDisplay", "LastResort", "STIXNonUni", "STIXSiz")
_EXCLUDED_CM = ("cmex10", "cmsy10", "cmmi10")
_FONT_PACKAGES = ("font_roboto", "font_source_sans_pro", "font_lato")
# Hairline faces: at the small sizes drawn here their strokes are under a pixel, so no pixel reaches
# half coverage and the stroke mask would fall apart.
_HAIRLINE = ("thin", "extralight")


@dataclass(frozen=True, kw_only=True)
class FontSpec:
    """One font file and the attributes a referring expression or description can name."""

    path: str
    """Absolute path to the .ttf file."""
    family: str
    """Family name from the file name (e.g. "DejaVuSerif", "Roboto", "cmr10")."""
    style: str
    """Human words for the face: "regular", "bold", "italic", "bold italic", "light", ..."""
    kind: str
    """"sans", "serif" or "mono" ("script" and "display" too for corpus families)."""
    stroke: float = 0.0
    """Mean stroke thickness as a fraction of the font size, measured for corpus faces (0 = not
    measured: the legacy sets). Corpus faces are drawn no smaller than `font_checks.min_font_size`."""

    @property
    def description(self) -> str:
        """E.g. "bold serif" or "regular sans" (what `instances[].font` stores)."""
        return f"{self.style} {self.kind}"


def matplotlib_ttf_dir() -> Path:
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or spec.origin is None:
        raise ValueError("matplotlib is not installed: its mpl-data/fonts/ttf folder holds the fonts")
    return Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf"


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def _style_from_name(stem: str) -> str:
    """Weight and slant from the file name ("Lato-BlackItalic", "SourceSansPro-BoldIt", "STIXGeneralBolIta")."""
    face = stem.split("-", 1)[1] if "-" in stem else stem.removeprefix("STIXGeneral")
    lowered = face.lower()
    weights = (("extralight", "light"), ("semibold", "bold"), ("black", "black"), ("light", "light"))
    weights += (("thin", "thin"), ("bold", "bold"), ("bol", "bold"))
    weight = next((label for key, label in weights if key in lowered), "regular")
    if stem == "cmb10":
        weight = "bold"
    italic = lowered.endswith(("it", "ita", "italic", "oblique")) or stem == "cmti10"
    if italic:
        return "italic" if weight == "regular" else f"{weight} italic"
    return weight


def _kind_from_name(stem: str) -> str:
    lowered = stem.lower()
    if "mono" in lowered or lowered == "cmtt10":
        return "mono"
    if "serif" in lowered or lowered.startswith(("stix", "cmr", "cmb", "cmti")):
        return "serif"
    return "sans"


def _spec(path: Path) -> FontSpec:
    stem = path.stem
    family = stem.split("-")[0]
    return FontSpec(path=str(path), family=family, style=_style_from_name(stem), kind=_kind_from_name(stem))


def _train_paths() -> list[Path]:
    paths = [
        p
        for p in sorted(matplotlib_ttf_dir().glob("DejaVu*.ttf"))
        if not p.stem.startswith(_EXCLUDED_PREFIXES)
    ]
    for package in _FONT_PACKAGES:
        folder = _package_dir(package)
        if folder is not None:
            paths.extend(
                p for p in sorted(folder.rglob("*.ttf")) if not any(h in p.stem.lower() for h in _HAIRLINE)
            )
    return paths


def _eval_paths() -> list[Path]:
    ttf = matplotlib_ttf_dir()
    stix = [p for p in sorted(ttf.glob("STIX*.ttf")) if not p.stem.startswith(_EXCLUDED_PREFIXES)]
    cm = [p for p in sorted(ttf.glob("cm*.ttf")) if p.stem not in _EXCLUDED_CM]
    return stix + cm


@lru_cache(maxsize=2)
def font_set(name: str) -> tuple[FontSpec, ...]:
    """The fonts of set `name` ("train" or "eval"), sorted by path so indices are stable."""
    if name == "train":
        paths = _train_paths()
    elif name == "eval":
        paths = _eval_paths()
    else:
        raise ValueError(f"font set {name!r} not in ('train', 'eval')")
    if not paths:
        raise ValueError(f"font set {name!r} is empty: no usable .ttf files found")
    return tuple(_spec(p) for p in paths)


@lru_cache(maxsize=512)
def load_font(path: str, size: int):
    """A cached PIL FreeType font (loading a face costs more than drawing a word)."""
    from PIL import ImageFont

    return ImageFont.truetype(path, size)
