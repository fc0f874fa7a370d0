"""Words read in an image, said to the MLLM as grid positions: how a small model answers "the word 'OPEN'".

A content query names a word; a descriptor answer needs *where* that word is. A small MLLM cannot
read strokes, so the words a recognizer reads (``text4seg.backbone.reader`` at inference, the
generator's ground truth with reader-like noise in training) are put in the user turn, each with the
grid cells its box covers::

    <image>
    Words read: 'OPEN' row 3 columns 2-4; 'EXIT' rows 6-7 column 7.
    Please segment the word 'OPEN'.

and the model copies the cells of the matching word into its R-RLE answer (an empty answer when no
word matches). Turning "columns 2-4" into runs is arithmetic a 1.9M-parameter model did not learn
(docs/default_model.md: on its own training rows it scored IoU 0.10 with the list, 0.14 without), so
the ``runs`` style says each word's cells as the rows of the answer itself, label ``word``::

    Words read: 'OPEN' row 3: others *1| word *3| others *4; 'EXIT' rows 7-8: others *7| word *1.

and the answer's rows copy the matching word's runs with the query's label in place of ``word``.
Its cells are those the word's outline (the reader's rotated rectangle; in training the word mask's
least-area rectangle) covers by the grid rule's threshold (the answers' own rule), or the cell of its
centre when none reaches it. The answer stays the model's own descriptor; the context is text in the prompt, so a
checkpoint trained without it (a 7B LLaVA that reads by itself) is asked exactly as before — the
context is only added when the model's ``inference.json`` says ``reading: content``.

The ``hint`` mode leaves the prompt alone: the read words the query names (``matching_words``: a
fuzzy match, since readers misspell, then word spotting, ``spotted_word``) are drawn as a mask (``hint_mask``) that the vision tower takes
as a fourth image channel (``text4seg.mllm.text_vision``, ``reading_hint``), so finding "OPEN" becomes
the same per-patch decision as finding text, and no arithmetic is left for the language model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from text4seg.core.codec import BACKGROUND, encode_rrle
from text4seg.core.masks import grid_from_mask
from text4seg.core.spotting import folded, word_log_likelihood
from text4seg.core.templates import IMAGE_TOKEN

READING_MODES = ("none", "content", "runs", "hint")
"""``inference.json`` ``reading``: never add the context, or add it to content queries with the cells
said as row and column spans ("content") or as the answer's own runs ("runs"), or show the tower the
outlines of the read words that match the query as a fourth image channel ("hint"; the prompt stays
as written)."""
TEXT_READINGS = ("content", "runs")
"""The modes that put a "Words read" line in the prompt."""
MATCH_RATIO = 0.7
"""Least ``difflib`` similarity between a named word and a read one (case and punctuation aside) for
the hint to show the read word: one wrong letter in four still matches."""
CLOSEST_RATIO = 0.5
"""When no read word matches at ``MATCH_RATIO``, the pipeline's hint takes the one read word closest to
a named word if it is at least this similar (``matching_words(closest=...)``): the recognizer misreads
made-up and unusual words by more than one letter in four ("MAQS" for "IWAQIS", "ist" for "dentist").
Chosen on the two referring selection splits (``corpus_select.yaml`` at 256 and 512 px, through
``refer_export``; 183 content expressions): of the present targets whose closest read word is 0.5-0.7 similar, that word is
the target for 15 of 22; one of 15 absent words has a read word that close."""
SPOT_FLOOR = -5.0
"""When no read word matches a named one by text, the hint takes the word whose recognizer steps most
likely spell it (``spotted_word``) if their mean log-probability per character is at least this.
Chosen on the referring selection split (``data/s23/refer_select``, 78 content queries with a target,
10 without; session 23): the hint lands on the target for 43 of the 78 without spotting, and for
46 / 47 / 49 / **50** / 51 / 50 at floors −2 / −3 / −4 / −5 / −6 / −7, where −7 first hints a word
that is not in the image (−6 hints 5 more words than −5 for one more hit). On that split the steps of
a word the query does not name spell it at a median −8.3 (95th percentile −4.8, 223 words); those of
the named word, where one was found, at a median −0.45. Boxes whose steps decoded to nothing keep no
steps: scored too, they hint 2 of the 10 absent words at −5 and find no further target."""
WORD_LABEL = "word"
"""Label of a word's cells in the ``runs`` style."""
MAX_WORDS = 12
"""Most words listed (in reading order), so the prompt stays short."""
MAX_CHARS = 24
"""Longest word kept as read (longer ones are cut)."""


@dataclass(frozen=True, kw_only=True)
class SeenWord:
    """One word as read: its text and its box (x0, y0, x1, y1) in the image's pixels."""

    text: str
    box: tuple[float, float, float, float]
    polygon: tuple[tuple[float, float], ...] | None = None
    """Corners (x, y) of the word's outline when known (the reader's rotated rectangle); the ``runs``
    style grids it instead of the box, so a slanted word keeps the cells its answer has."""
    score: float = 1.0
    """The reader's mean character confidence (1 for a word not read by a recognizer)."""
    spotting: np.ndarray | None = field(default=None, compare=False, repr=False)
    """The recognizer's steps folded for word spotting (``text4seg.core.spotting``), when known."""


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


def _outline_mask(word: SeenWord, image_size: tuple[int, int]) -> np.ndarray:
    """H×W bool: the word's polygon filled, else its box."""
    from skimage.draw import polygon as fill_polygon  # lazy: only the runs and hint styles draw

    height, width = image_size
    mask = np.zeros((height, width), bool)
    if word.polygon is not None and len(word.polygon) >= 3:
        xs, ys = np.asarray(word.polygon, dtype=float).T
        mask[fill_polygon(ys, xs, shape=mask.shape)] = True
    if not mask.any():  # no polygon, or one thinner than a pixel
        x0, y0, x1, y1 = (float(v) for v in word.box)
        top, bottom = int(np.clip(np.floor(y0), 0, height)), int(np.clip(np.ceil(y1), 0, height))
        left, right = int(np.clip(np.floor(x0), 0, width)), int(np.clip(np.ceil(x1), 0, width))
        mask[top:bottom, left:right] = True
    return mask


def _word_cells(
    word: SeenWord, image_size: tuple[int, int], grid: tuple[int, int], threshold: float
) -> np.ndarray:
    """gh×gw bool: the cells the word's polygon (else its box) covers by at least ``threshold`` of a
    cell, or the cell of the box's centre when none does."""
    height, width = image_size
    x0, y0, x1, y1 = (float(v) for v in word.box)
    mask = _outline_mask(word, image_size)
    cells = grid_from_mask(mask, grid_size=grid, rule="area", threshold=threshold) if mask.any() else None
    if cells is None or not cells.any():
        cells = np.zeros(grid, bool)
        centre_y = float(np.clip((y0 + y1) / 2, 0, height - 1e-6))
        centre_x = float(np.clip((x0 + x1) / 2, 0, width - 1e-6))
        cells[int(centre_y / height * grid[0]), int(centre_x / width * grid[1])] = True
    return cells


def _runs(cells: np.ndarray) -> str:
    """The word's rows as R-RLE runs, consecutive equal rows said once: "rows 2-3: others *1| word *3| ..."."""
    labels = np.where(cells, WORD_LABEL, BACKGROUND)
    lines = encode_rrle(labels.tolist()).rstrip("\n").split("\n")
    used = [r for r in range(cells.shape[0]) if cells[r].any()]
    groups: list[list[int]] = []
    for r in used:
        if groups and groups[-1][-1] == r - 1 and lines[groups[-1][0]].strip() == lines[r].strip():
            groups[-1].append(r)
        else:
            groups.append([r])
    return ", ".join(f"{_cells('row', g[0], g[-1])}: {lines[g[0]].strip()}" for g in groups)


def reading_context(
    words: Sequence[SeenWord],
    *,
    image_size: tuple[int, int],
    grid: tuple[int, int],
    style: str = "content",
    threshold: float = 0.03,
) -> str:
    """The context line for ``words`` on an image of ``image_size`` (H, W) and a ``grid`` (rows, cols).

    Rows and columns are 1-based, as a person counts them. Words are listed top to bottom, then left
    to right; empty texts are skipped; "Words read: none." when nothing is left. ``style`` "content"
    says each word's row and column spans; "runs" its rows as R-RLE runs, the cells its polygon (else
    its box) covers by ``threshold`` of a cell.
    """
    if style not in TEXT_READINGS:
        raise ValueError(f"style {style!r} must be one of {TEXT_READINGS}")
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
        if style == "runs":
            parts.append(f"'{text}' {_runs(_word_cells(word, image_size, grid, threshold))}")
            continue
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
        out.append(SeenWord(text=text, box=word.box, polygon=word.polygon))
    return out


def _normal(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def matching_words(
    words: Sequence[SeenWord],
    names: Sequence[str],
    *,
    ratio: float = MATCH_RATIO,
    closest: float | None = None,
    spot: float | None = None,
    min_score: float = 0.0,
) -> list[SeenWord]:
    """The read ``words`` whose text matches one of ``names`` (the words a query names,
    ``text4seg.core.expressions.named_words``): equal or ``difflib`` ratio >= ``ratio`` once case,
    spaces and punctuation are dropped, among the words read with confidence >= ``min_score``.

    When none matches: with ``spot``, the word whose recognizer steps most likely spell a named word
    (``spotted_word``), any confidence, if that likelihood is at least ``spot``; then, with
    ``closest``, the one most similar confident word if its ratio is at least ``closest`` (the first
    of equals)."""
    from difflib import SequenceMatcher

    wanted = [n for n in (_normal(name) for name in names) if n]
    scored = []
    for word in words:
        seen = _normal(word.text)
        if seen and wanted and word.score >= min_score:
            scored.append(
                (max(1.0 if seen == n else SequenceMatcher(None, seen, n).ratio() for n in wanted), word)
            )
    out = [word for similarity, word in scored if similarity >= ratio]
    if out:
        return out
    spotted = spotted_word(words, names, floor=spot) if spot is not None else None
    if spotted is not None:
        return [spotted]
    if closest is None or not scored:
        return []
    similarity, word = max(scored, key=lambda pair: pair[0])
    return [word] if similarity >= closest else []


def spotted_word(words: Sequence[SeenWord], names: Sequence[str], *, floor: float) -> SeenWord | None:
    """The word whose recognizer steps most likely spell one of ``names`` (mean log-probability per
    character, ``spotting.word_log_likelihood``), if that is at least ``floor``; None when no word
    has steps or no name is spelled in the spotting alphabet (``spotting.folded``)."""
    wanted = {f for f in (folded(name) for name in names) if f}
    best, best_score = None, floor
    for word in words:
        if word.spotting is None or not len(word.spotting) or not wanted:
            continue
        score = max(word_log_likelihood(word.spotting, name) for name in wanted)
        if score >= best_score:
            best, best_score = word, score
    return best


def hint_mask(words: Sequence[SeenWord], image_size: tuple[int, int]) -> np.ndarray:
    """H×W uint8 (0 or 255): the outlines of ``words`` (the read words a query names), the fourth
    image channel of a ``hint`` model; all zero when no word matches."""
    mask = np.zeros(image_size, bool)
    for word in words:
        mask |= _outline_mask(word, image_size)
    return mask.astype(np.uint8) * 255
