"""Words read in an image, said to the MLLM as grid positions: how a small model answers "the word 'OPEN'".

A content query names a word; a descriptor answer needs *where* that word is. A small MLLM cannot
read strokes, so the words a recognizer reads (``text4seg.backbone.reader`` at inference, the
generator's ground truth with reader-like noise in training) are put in the user turn, each with the
grid cells its box covers::

    <image>
    Words read: 'OPEN' row 3 columns 2-4; 'EXIT' rows 6-7 column 7.
    Please segment the word 'OPEN'.

and the model copies the cells of the matching word into its R-RLE answer (an empty answer when no
word matches). The answer stays the model's own descriptor; the context is text in the prompt, so a
checkpoint trained without it (a 7B LLaVA that reads by itself) is asked exactly as before — the
context is only added when the model's ``inference.json`` says ``reading: content``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from text4seg.core.templates import IMAGE_TOKEN

READING_MODES = ("none", "content")
"""``inference.json`` ``reading``: never add the context, or add it to content queries."""
MAX_WORDS = 12
"""Most words listed (in reading order), so the prompt stays short."""
MAX_CHARS = 24
"""Longest word kept as read (longer ones are cut)."""


@dataclass(frozen=True, kw_only=True)
class SeenWord:
    """One word as read: its text and its box (x0, y0, x1, y1) in the image's pixels."""

    text: str
    box: tuple[float, float, float, float]


def _span(low: float, high: float, size: int, cells: int) -> tuple[int, int]:
    """First and last cell (0-based) a [low, high) pixel interval touches on an axis of ``cells`` cells."""
    first = int(np.clip(np.floor(low / size * cells), 0, cells - 1))
    last = int(np.clip(np.ceil(high / size * cells) - 1, first, cells - 1))
    return first, last


def _cells(name: str, first: int, last: int) -> str:
    return f"{name} {first + 1}" if first == last else f"{name}s {first + 1}-{last + 1}"


def _clean(text: str) -> str:
    """One line, no quote that would end the word early, at most MAX_CHARS characters."""
    return " ".join(text.replace("'", "").split())[:MAX_CHARS]


def reading_context(words: Sequence[SeenWord], *, image_size: tuple[int, int], grid: tuple[int, int]) -> str:
    """The context line for ``words`` on an image of ``image_size`` (H, W) and a ``grid`` (rows, cols).

    Rows and columns are 1-based, as a person counts them. Words are listed top to bottom, then left
    to right; empty texts are skipped; "Words read: none." when nothing is left.
    """
    height, width = image_size
    rows, cols = grid
    kept = sorted(
        ((w, _clean(w.text)) for w in words if _clean(w.text)),
        key=lambda item: (item[0].box[1], item[0].box[0]),
    )[:MAX_WORDS]
    if not kept:
        return "Words read: none."
    parts = []
    for word, text in kept:
        x0, y0, x1, y1 = word.box
        r0, r1 = _span(y0, y1, height, rows)
        c0, c1 = _span(x0, x1, width, cols)
        parts.append(f"'{text}' {_cells('row', r0, r1)} {_cells('column', c0, c1)}")
    return "Words read: " + "; ".join(parts) + "."


def with_reading(question: str, context: str) -> str:
    """``question`` ("<image>\\n...") with the context line right after the image token's line."""
    prefix = f"{IMAGE_TOKEN}\n"
    if not question.startswith(prefix):
        raise ValueError(f"question {question[:40]!r}... does not start with {prefix!r}")
    return f"{prefix}{context}\n{question[len(prefix) :]}"


def noisy_reading(
    words: Sequence[SeenWord], rng: np.random.Generator, *, p_drop: float = 0.1, p_typo: float = 0.1
) -> list[SeenWord]:
    """Ground-truth words made to look read: some missed (``p_drop``), some with one wrong, missing or
    extra character (``p_typo``), so a model trained on them does not trust the list blindly."""
    out = []
    for word in words:
        if rng.random() < p_drop:
            continue
        text = word.text
        if text and rng.random() < p_typo:
            i = int(rng.integers(len(text)))
            letter = "abcdefghijklmnopqrstuvwxyz0123456789"[int(rng.integers(36))]
            edit = int(rng.integers(3))
            text = text[:i] + (letter if edit < 2 else "") + text[i + (edit != 1) :]
        out.append(SeenWord(text=text, box=word.box))
    return out
