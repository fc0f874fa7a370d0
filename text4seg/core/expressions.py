"""What a referring expression asks about: its kinds, for per-kind evaluation figures.

``expression_kinds(text)`` reads the expression alone, with fixed word lists (no model, no
randomness), so the same sentence always gets the same kinds:

=============  ===============================================================================
kind           trigger (whole words in any case; the ALL-CAPS rule excepted)
=============  ===============================================================================
content        a quoted span ('OPEN', "OPEN", ‘OPEN’, “OPEN”); says / saying / reads / reading /
               spells / spelling / spelled / spelt; "word" / "text" followed by an ALL-CAPS word
colour         a colour name (red, pink, grey/gray, …, see ``COLOUR_WORDS``) or colour / coloured
position       top, bottom, left, right, topmost, leftmost, upper, lower, middle, center, first,
               second, last, above, below, front, behind, … (``POSITION_WORDS``)
size           largest, smallest, biggest, big, small, tall, tiny, huge, longest, … (``SIZE_WORDS``)
multi-target   all, every, each, both, or the plural "words" / "texts"
=============  ===============================================================================

The words a content query names are not read for the other kinds: "the word 'RED'" and "the text
that says top" are content only. "upper case" / "lower case" is not a position, and a final "of all"
("the tallest word of all") is not multi-target.

``sample_kinds`` adds what only the ground truth knows: ``no-target`` when the target mask is empty
(gRefCOCO's no-target expressions, "the green word" when no word is green), ``multi-target`` when
the dataset says the expression has two or more targets, and ``other`` when the text gave no kind.
Kinds overlap: "all the blue words" is colour and multi-target, and also no-target when nothing is blue.
"""

from __future__ import annotations

import re

EXPRESSION_KINDS = ("colour", "position", "size", "content", "multi-target")
"""Kinds ``expression_kinds`` can find, in report order."""
SAMPLE_KINDS = ("colour", "position", "size", "content", "no-target", "multi-target", "other")
"""Every kind a scored sample can have, in report order."""

COLOUR_WORDS = frozenset(
    "red orange yellow green blue cyan purple violet pink magenta brown black white grey gray "
    "gold golden silver beige maroon navy teal turquoise lime olive "
    "colour color coloured colored".split()
)
POSITION_WORDS = frozenset(
    "top bottom left right topmost bottommost leftmost rightmost uppermost lowermost upper lower "
    "highest lowest middle center centre central corner first second third fourth last "
    "above below under underneath beneath front behind back near nearest close closest far farthest "
    "next beside between".split()
)
SIZE_WORDS = frozenset(
    "big bigger biggest large larger largest small smaller smallest tiny huge giant little "
    "tall taller tallest long longer longest short shorter shortest wide wider widest size sized".split()
)
MULTI_WORDS = frozenset("all every each both words texts".split())
CONTENT_VERBS = frozenset("says saying reads reading spells spelling spelled spelt".split())

# An opening quote at the start or after a non-word character, its closing partner before the end or
# a non-word character: "the word 'OPEN'" is quoted, "the man's hat" is not.
_QUOTE = r"""(?:'.+?'|"[^"]+"|‘.+?’|“[^”]+”|«[^»]+»)(?=\W|$)"""
_QUOTED = re.compile(r"(?:^|(?<=\W))" + _QUOTE)
# A content verb and what it names: a quoted span or, unquoted, the next word ("says OPEN").
_VERB_ARGUMENT = re.compile(
    r"\b(?:" + "|".join(sorted(CONTENT_VERBS)) + r")\b\W*?(?:" + _QUOTE + r"|\w+)", re.IGNORECASE
)
_CAPS_AFTER_NOUN = re.compile(r"\b(?:word|text)\s+([A-Z0-9][A-Z0-9]+)\b")
_CASE = re.compile(r"\b(?:upper|lower)[\s-]?cased?\b", re.IGNORECASE)
_FINAL_OF_ALL = re.compile(r"\bof\s+all\W*$", re.IGNORECASE)
_WORD = re.compile(r"[a-z]+")


def expression_kinds(text: str) -> tuple[str, ...]:
    """Kinds of referring expression ``text`` (a subset of ``EXPRESSION_KINDS``, in that order; empty
    when no trigger matches). See the module docstring for the triggers."""
    rest, n_verbs = _VERB_ARGUMENT.subn(" ", text)  # "says OPEN": OPEN is the content, not a kind
    rest, n_quoted = _QUOTED.subn(" ", rest)
    rest, n_caps = _CAPS_AFTER_NOUN.subn(" word ", rest)
    content = n_verbs + n_quoted + n_caps > 0
    rest = _FINAL_OF_ALL.sub(" ", _CASE.sub(" ", rest))
    words = set(_WORD.findall(rest.lower()))
    found = {
        "colour": bool(words & COLOUR_WORDS),
        "position": bool(words & POSITION_WORDS),
        "size": bool(words & SIZE_WORDS),
        "content": content,
        "multi-target": bool(words & MULTI_WORDS),
    }
    return tuple(kind for kind in EXPRESSION_KINDS if found[kind])


def sample_kinds(text: str, *, target_pixels: int, n_targets: int | None = None) -> tuple[str, ...]:
    """Kinds of one scored referring sample (a subset of ``SAMPLE_KINDS``, in that order).

    ``target_pixels``: foreground pixels of the ground-truth mask (0 makes it ``no-target``).
    ``n_targets``: number of target instances when the dataset records it (2 or more makes it
    ``multi-target`` whatever the phrasing), None when unknown.
    """
    if target_pixels < 0:
        raise ValueError(f"target_pixels {target_pixels} must be >= 0")
    if n_targets is not None and n_targets < 0:
        raise ValueError(f"n_targets {n_targets} must be >= 0")
    from_text = expression_kinds(text)
    kinds = set(from_text) | ({"other"} if not from_text else set())
    if target_pixels == 0:
        kinds.add("no-target")
    if n_targets is not None and n_targets >= 2:
        kinds.add("multi-target")
    return tuple(kind for kind in SAMPLE_KINDS if kind in kinds)


def named_words(text: str) -> list[str]:
    """The words a content expression names, in order: quoted spans, the argument of a content verb
    ("says OPEN"), an ALL-CAPS word after "word" / "text"; quotes stripped, duplicates dropped.
    Empty for an expression that names no word ("the red text")."""
    found: list[tuple[int, str]] = []
    for match in _QUOTED.finditer(text):
        found.append((match.start(), match.group(0)))
    for match in _VERB_ARGUMENT.finditer(text):
        argument = re.sub(r"^\w+\W*?(?=\W|\w)", "", match.group(0), count=1)
        found.append((match.start(), argument))
    for match in _CAPS_AFTER_NOUN.finditer(text):
        found.append((match.start(1), match.group(1)))
    names: list[str] = []
    for _, raw in sorted(found):
        name = raw.strip().strip("'\"‘’“”«»").strip()
        if name and name not in names:
            names.append(name)
    return names
