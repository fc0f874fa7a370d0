"""Phrasing pools for referring expressions: many ways to say each kind, split into train and held out.

``referring.candidate_expressions`` decides *what* an expression picks (its kind, its targets and the
slot it names: a colour, a position, a word, a sign colour); this module decides *how it is said*.
A model that only ever hears "the red word" learns that string; one that hears "the word in red",
"red lettering" and "the red text" has to learn the colour. The held-out pool is never drawn for
training, so a validation or test corpus built with ``phrasings: heldout`` measures phrasings the model
has not seen (issue 16).

``canonical`` keeps the one fixed sentence per kind (the first train template), which is what every
corpus made before the pools existed holds.
"""

from __future__ import annotations

import numpy as np

PHRASING_SPLITS = ("canonical", "train", "heldout")

# {slot}: the expression's slot as named in the scene (colour, word, sign colour);
# {at}: a position as a phrase ("at the top left", "in the center"); {where}: the bare position;
# {most}, {alt}: a side as an extreme ("topmost", "highest"; ``_EXTREME_WORDS``).
_POOLS: dict[str, dict[str, tuple[str, ...]]] = {
    "content": {
        "train": ("the word '{slot}'", "the text reading '{slot}'", "the word {slot}", "'{slot}'",
                  "where it says '{slot}'", "the writing '{slot}'"),
        "heldout": ("the text that says '{slot}'", "the label '{slot}'", "the word that reads '{slot}'"),
    },
    "colour": {
        "train": ("the {slot} word", "the word in {slot}", "the {slot} text", "{slot} lettering",
                  "the word written in {slot}", "the {slot} letters"),
        "heldout": ("the {slot} writing", "the text coloured {slot}", "the word whose colour is {slot}"),
    },
    "colour_multi": {
        "train": ("the {slot} words", "all the {slot} text", "every {slot} word", "the words in {slot}"),
        "heldout": ("all words written in {slot}", "each {slot} word"),
    },
    "position": {
        "train": ("the text {at}", "the word {at}", "the writing {at}", "what is written {at}"),
        "heldout": ("the {where} text", "the text located {at}", "the word placed {at}"),
    },
    "extreme": {
        "train": ("the {most} word", "the {most} writing", "the {alt} text", "the word nearest the {slot} edge",
                  "the text closest to the {slot}", "the word furthest to the {slot}"),
        "heldout": ("the {most} text", "the {alt} word", "the writing closest to the {slot} edge"),
    },
    "largest": {
        "train": ("the largest word", "the biggest text", "the word in the largest letters"),
        "heldout": ("the largest text", "the text with the biggest letters"),
    },
    "smallest": {
        "train": ("the smallest word", "the tiniest text", "the word in the smallest letters"),
        "heldout": ("the smallest text", "the text with the smallest letters"),
    },
    "plate": {
        "train": ("the text on the {slot} sign", "the word on the {slot} sign", "the {slot} sign's text"),
        "heldout": ("the writing on the {slot} sign", "what the {slot} sign says"),
    },
    "curved": {
        "train": ("the curved text", "the curved word", "the word along a curve"),
        "heldout": ("the text that curves", "the bent word"),
    },
    "all": {
        "train": ("all the text", "every word", "all words", "all of the text"),
        "heldout": ("all of the writing", "each word in the image"),
    },
}  # fmt: skip
_EXTREME_WORDS = {
    "top": ("topmost", "highest"), "bottom": ("bottommost", "lowest"),
    "left": ("leftmost", "left-most"), "right": ("rightmost", "right-most"),
}  # fmt: skip
_SAME_AS = {"none_colour": "colour", "none_content": "content"}
"""No-target kinds are said like the kinds they fail to match."""


def pool(kind: str, split: str) -> tuple[str, ...]:
    """The templates of ``kind`` drawn from under ``split`` (canonical: the first train template)."""
    if split not in PHRASING_SPLITS:
        raise ValueError(f"phrasing split {split!r} not in {PHRASING_SPLITS}")
    templates = _POOLS[_SAME_AS.get(kind, kind)]
    return templates["train"][:1] if split == "canonical" else templates[split]


def at_phrase(position: str) -> str:
    """ "in the center" or "at the <position>"."""
    return "in the center" if position == "center" else f"at the {position}"


def phrase(kind: str, slot: str, *, split: str = "canonical", rng: np.random.Generator | None = None) -> str:
    """One sentence for an expression of ``kind`` naming ``slot``; ``rng`` picks the template (needed
    unless the split is canonical)."""
    templates = pool(kind, split)
    if len(templates) > 1 and rng is None:
        raise ValueError(f"phrasing split {split!r} draws among templates: pass an rng")
    template = templates[0] if len(templates) == 1 else templates[int(rng.integers(len(templates)))]
    most, alt = _EXTREME_WORDS.get(slot, (slot, slot))
    return template.format(slot=slot, at=at_phrase(slot), where=slot, most=most, alt=alt)
