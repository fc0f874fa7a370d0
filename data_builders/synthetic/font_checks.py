"""Reading a font face's own names and checking that it can draw ordinary words.

A face is usable when it maps every character of A-Z a-z 0-9, is not declared a symbol font, draws a
visible and distinct glyph for each, and its strokes are thick enough that a stroke mask (coverage
>= 0.5) stays connected at the small sizes drawn here (hairline and outline-only faces fail that).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

REQUIRED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_PROBE_SIZE = 48
_PROBE_TEXT = "HOME bane 42"
# Mean stroke thickness (2 * area / perimeter of the >= 0.5 coverage mask) as a fraction of the
# probe size. Regular text faces measure 0.05-0.14 (Courier-like and light faces 0.035-0.05); hairline,
# outline-only and dotted faces fall under 0.03. Faces above it are kept, and drawn no smaller than
# `min_font_size` so that their strokes stay at least a pixel wide.
MIN_STROKE = 0.03
MIN_STROKE_PX = 1.0
# Ink over the text's bounding box: solid blocks and inverted faces cover most of it.
MAX_INK = 0.62
_MIN_DISTINCT_UPPER = 22  # of 26: symbol faces map many letters to one shape
_WEIGHTS = (
    ("extralight", "light"), ("ultralight", "light"), ("semibold", "bold"), ("demibold", "bold"),
    ("extrabold", "black"), ("ultrabold", "black"), ("heavy", "black"), ("black", "black"),
    ("light", "light"), ("thin", "thin"), ("hairline", "thin"), ("bold", "bold"), ("medium", "regular"),
)  # fmt: skip
_SCRIPT_WORDS = ("script", "hand", "brush", "writing", "scrawl", "chancery", "z003", "kristi", "lobster")


@dataclass(frozen=True, kw_only=True)
class FaceInfo:
    """What a face's tables say about it."""

    family: str
    """Typographic family (name ID 16, else 1)."""
    style: str
    """Human words: "regular", "bold", "italic", "light italic", ..."""
    kind: str
    """"sans", "serif", "mono", "script" or "display"."""
    symbol: bool
    """Declared a symbol font (PANOSE family type 5)."""


def style_words(subfamily: str) -> str:
    lowered = subfamily.lower().replace(" ", "").replace("-", "")
    weight = next((label for key, label in _WEIGHTS if key in lowered), "regular")
    italic = "italic" in lowered or "oblique" in lowered or lowered.endswith("it")
    if italic:
        return "italic" if weight == "regular" else f"{weight} italic"
    return weight


def _kind(family: str, font) -> str:
    lowered = family.lower()
    panose = getattr(font["OS/2"], "panose", None) if "OS/2" in font else None
    family_type = getattr(panose, "bFamilyType", 0) if panose is not None else 0
    serif_style = getattr(panose, "bSerifStyle", 0) if panose is not None else 0
    if family.endswith(" BRK") or family_type == 4:
        return "display"
    if family_type == 3 or any(w in lowered for w in _SCRIPT_WORDS):
        return "script"
    if "post" in font and font["post"].isFixedPitch or "mono" in lowered or "typewriter" in lowered:
        return "mono"
    if "sans" in lowered:
        return "sans"
    if "serif" in lowered or "roman" in lowered or "slab" in lowered or 2 <= serif_style <= 10:
        return "serif"
    return "sans"


def read_face(path: Path) -> FaceInfo | None:
    """Names, style and kind of the face in `path`; None when the file cannot be read or lacks A-Z a-z 0-9."""
    from fontTools.ttLib import TTFont

    try:
        font = TTFont(path, lazy=True, fontNumber=0)
        names = font["name"]
        family = (names.getDebugName(16) or names.getDebugName(1) or "").strip()
        subfamily = names.getDebugName(17) or names.getDebugName(2) or "Regular"
        cmap = font.getBestCmap() or {}
    except Exception:  # a broken or unusual file is skipped, not fatal: the catalog has hundreds
        return None
    if not family or any(ord(c) not in cmap for c in REQUIRED):
        return None
    panose = getattr(font["OS/2"], "panose", None) if "OS/2" in font else None
    symbol = getattr(panose, "bFamilyType", 0) == 5 if panose is not None else False
    return FaceInfo(family=family, style=style_words(subfamily), kind=_kind(family, font), symbol=symbol)


def stroke_thickness(mask: np.ndarray) -> float:
    """Mean stroke thickness in pixels of an HxW bool mask: 2 * area / boundary length."""
    area = float(mask.sum())
    if area == 0:
        return 0.0
    padded = np.pad(mask, 1)
    boundary = (padded[1:, :] != padded[:-1, :]).sum() + (padded[:, 1:] != padded[:, :-1]).sum()
    return 2.0 * area / max(float(boundary), 1.0)


def _glyph(font, ch: str) -> np.ndarray:
    mask = font.getmask(ch, mode="L")
    return np.asarray(mask, np.uint8).reshape(mask.size[1], mask.size[0]) >= 128


@dataclass(frozen=True, kw_only=True)
class FaceCheck:
    """The verdict on one face."""

    problem: str | None
    """Why the face cannot draw ordinary words, or None when it can."""
    stroke: float
    """Mean stroke thickness as a fraction of the font size (0 when not measured)."""


def min_font_size(stroke: float) -> int:
    """Smallest pixel size at which strokes of relative thickness `stroke` are `MIN_STROKE_PX` wide."""
    return int(np.ceil(MIN_STROKE_PX / stroke)) if stroke > 0 else 1


def check_face(path: Path | str, info: FaceInfo) -> FaceCheck:
    """Render the face's A-Z a-z 0-9 and a probe phrase; see the module docstring for the rules."""
    from PIL import Image, ImageDraw, ImageFont

    if info.symbol:
        return FaceCheck(problem="declared a symbol font", stroke=0.0)
    try:
        font = ImageFont.truetype(str(path), _PROBE_SIZE)
    except OSError as exc:
        return FaceCheck(problem=f"FreeType cannot load it ({exc})", stroke=0.0)
    glyphs = {ch: _glyph(font, ch) for ch in REQUIRED}
    empty = [ch for ch, g in glyphs.items() if g.sum() < 3]
    if empty:
        return FaceCheck(problem=f"empty glyphs {''.join(empty[:10])}", stroke=0.0)
    distinct = len({(g.shape, g.tobytes()) for ch, g in glyphs.items() if ch.isupper()})
    if distinct < _MIN_DISTINCT_UPPER:
        return FaceCheck(problem=f"only {distinct} distinct capitals", stroke=0.0)
    x0, y0, x1, y1 = font.getbbox(_PROBE_TEXT)
    canvas = Image.new("L", (x1 - x0 + 4, y1 - y0 + 4), 0)
    ImageDraw.Draw(canvas).text((2 - x0, 2 - y0), _PROBE_TEXT, font=font, fill=255)
    mask = np.asarray(canvas) >= 128
    stroke = stroke_thickness(mask) / _PROBE_SIZE
    if stroke < MIN_STROKE:
        return FaceCheck(problem=f"strokes too thin ({stroke:.3f} of the size < {MIN_STROKE})", stroke=stroke)
    ys, xs = np.nonzero(mask)
    ink = mask.sum() / max((np.ptp(ys) + 1) * (np.ptp(xs) + 1), 1)
    if ink > MAX_INK:
        return FaceCheck(problem=f"ink covers {ink:.2f} of its box (a block or inverted face)", stroke=stroke)
    return FaceCheck(problem=None, stroke=round(float(stroke), 4))
