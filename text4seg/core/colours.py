"""Colour names of referring expressions ("the red word") and the pixels that have them.

``colour_hint(image, expression)`` is the colour counterpart of the reading hint
(``text4seg.core.reading.hint_mask``): an H×W mask of the pixels whose colour the expression names,
given to a ``reading: hint`` model as the fourth image channel. It marks every pixel of that colour,
text or not; which of them are text is the model's decision.

Pixels are named by hue, saturation and value (``skimage.color.rgb2hsv``), not by distance to any
one palette, so the names hold for colours a generator or a camera did not draw exactly:

- value < 0.2: black; saturation < 0.2: white (value > 0.8), else grey;
- otherwise by hue in degrees: red < 15 or ≥ 345, orange < 40, yellow < 70, green < 165, cyan < 195,
  blue < 255, purple < 290, pink < 345; an orange or red hue with value < 0.6 is brown, a red hue
  with saturation < 0.6 pink.

Synonyms map onto these names (gray → grey, violet → purple, magenta → pink, navy → blue, …);
colour words with no such name (beige, olive, …) give no hint.
"""

from __future__ import annotations

import re

import numpy as np

NAMES = (
    "black",
    "white",
    "grey",
    "red",
    "orange",
    "yellow",
    "green",
    "cyan",
    "blue",
    "purple",
    "pink",
    "brown",
)
"""The colours a pixel can be named."""
SYNONYMS = {
    "gray": "grey", "silver": "grey", "violet": "purple", "magenta": "pink", "navy": "blue",
    "teal": "cyan", "turquoise": "cyan", "lime": "green", "gold": "yellow", "golden": "yellow",
    "maroon": "brown",
}  # fmt: skip
_HUES = ((15, "red"), (40, "orange"), (70, "yellow"), (165, "green"), (195, "cyan"), (255, "blue"),
         (290, "purple"), (345, "pink"), (360, "red"))  # fmt: skip
_WORD = re.compile(r"[a-z]+")
_QUOTED = re.compile(r"""'[^']*'|"[^"]*"|‘[^’]*’|“[^”]*”""")


def colour_names(expression: str) -> list[str]:
    """The pixel colours an expression names, in order, synonyms mapped (``NAMES``); quoted spans are
    words to read, not colours ("the word 'RED'" names none)."""
    names: list[str] = []
    for word in _WORD.findall(_QUOTED.sub(" ", expression).lower()):
        name = SYNONYMS.get(word, word)
        if name in NAMES and name not in names:
            names.append(name)
    return names


def pixel_names(image: np.ndarray) -> np.ndarray:
    """H×W array of indices into ``NAMES``: each pixel's colour name (rules in the module docstring)."""
    from skimage.color import rgb2hsv

    hsv = rgb2hsv(np.asarray(image, np.uint8)[..., :3])
    hue, sat, val = hsv[..., 0] * 360.0, hsv[..., 1], hsv[..., 2]
    bounds = np.array([b for b, _ in _HUES])
    by_hue = np.array([NAMES.index(n) for _, n in _HUES])[
        np.searchsorted(bounds, hue, side="right").clip(max=len(_HUES) - 1)
    ]
    red, orange = NAMES.index("red"), NAMES.index("orange")
    by_hue = np.where((by_hue == red) & (sat < 0.6), NAMES.index("pink"), by_hue)
    by_hue = np.where(np.isin(by_hue, (red, orange)) & (val < 0.6), NAMES.index("brown"), by_hue)
    grey = np.where(val > 0.8, NAMES.index("white"), NAMES.index("grey"))
    named = np.where(sat < 0.2, grey, by_hue)
    return np.where(val < 0.2, NAMES.index("black"), named)


def colour_hint(image: np.ndarray, expression: str) -> np.ndarray | None:
    """H×W uint8 (0 or 255): the pixels of ``image`` (H×W×3 RGB) whose colour ``expression`` names;
    None when it names no colour (or only words in quotes)."""
    names = colour_names(expression)
    if not names:
        return None
    wanted = [NAMES.index(n) for n in names]
    return np.isin(pixel_names(image), wanted).astype(np.uint8) * 255
