"""Tolerant parser for semantic descriptors written by a model.

Unlike the strict decoders in :mod:`text4seg.core.codec`, :func:`parse_answer` never raises on text. It
finds the ``<seg>…</seg>`` block (or a bare block), reads R-RLE and full-descriptor rows alike, and
repairs row by row so that one bad row never shifts the rows after it (the reference parser's
weakness, ../shared/REFERENCE.md §1). Every repair is recorded, so evaluation can report parse-failure
and repair rates instead of hiding them.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from text4seg.core.codec import BACKGROUND, SEG_CLOSE, SEG_OPEN, Grid

# "label *N" with any spacing around the star; the label is everything before it.
_RUN_RE = re.compile(r"^(?P<label>.*?)\s*\*\s*(?P<count>\S*)$", re.DOTALL)
_ROWLIKE_RE = re.compile(r"\*\s*\d|\|")
# A bare block's row count is unknown; cap runs so hostile counts cannot exhaust memory.
_MAX_INFERRED_WIDTH = 4096


@dataclass(frozen=True)
class Repair:
    """One thing the parser had to fix. ``row`` is the 0-based grid row, or None for the block."""

    kind: str
    row: int | None
    detail: str


@dataclass
class ParsedDescriptor:
    """A descriptor grid read from model output.

    grid: H rows of W labels (background ``others``); empty only when nothing could be read and the
        grid size was not given.
    labels: distinct labels in the grid, background first, then in first-seen order.
    repairs: every fix the parser made; empty for a well-formed answer.
    text: the raw model output.
    failed: True when no descriptor row could be read at all (the grid is then all background).
    """

    grid: Grid
    labels: list[str]
    repairs: list[Repair] = field(default_factory=list)
    text: str = ""
    failed: bool = False

    @property
    def height(self) -> int:
        return len(self.grid)

    @property
    def width(self) -> int:
        return len(self.grid[0]) if self.grid else 0

    @property
    def repaired(self) -> bool:
        return bool(self.repairs)

    def index_map(self, names: Sequence[str] | None = None) -> np.ndarray:
        """H×W int64 map of indices into ``names`` (default: ``self.labels``); unknown labels -> 0."""
        names = list(self.labels if names is None else names)
        lookup = {name: i for i, name in enumerate(names)}
        return np.array([[lookup.get(label, 0) for label in row] for row in self.grid], dtype=np.int64)

    def mask(self, label: str) -> np.ndarray:
        """H×W bool grid mask of the patches labelled ``label``."""
        return np.array([[cell == label for cell in row] for row in self.grid], dtype=bool).reshape(
            self.height, self.width
        )


def _extract_block(text: str, repairs: list[Repair]) -> tuple[str, bool]:
    """Return the descriptor block and whether it was tagged with ``<seg>``."""
    start = text.find(SEG_OPEN)
    if start < 0:
        repairs.append(Repair("no_seg_tag", None, "no <seg> tag; reading a bare block"))
        return text, False
    body = text[start + len(SEG_OPEN) :]
    end = body.find(SEG_CLOSE)
    if end < 0:
        repairs.append(Repair("unclosed_seg", None, "no </seg> tag; reading to the end"))
        return body, True
    if SEG_OPEN in body[end:]:
        repairs.append(Repair("extra_seg_blocks", None, "more than one <seg> block; read the first"))
    return body[:end], True


def _block_lines(block: str, tagged: bool, repairs: list[Repair]) -> list[str]:
    lines = [line.strip() for line in block.split("\n")]
    if not tagged:
        # A bare answer may start with its sentence; descriptor rows begin at the first row-like line.
        first = next((i for i, line in enumerate(lines) if _ROWLIKE_RE.search(line)), len(lines))
        lines = lines[first:]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    kept = [line for line in lines if line]
    if len(kept) != len(lines):
        repairs.append(Repair("empty_lines", None, f"dropped {len(lines) - len(kept)} empty lines"))
    return kept


def _parse_row(line: str, r: int, max_width: int, repairs: list[Repair]) -> list[tuple[str, int]]:
    pairs: list[tuple[str, int]] = []
    for piece in line.split("|"):
        piece = piece.strip()
        if not piece:
            repairs.append(Repair("empty_run", r, "empty run between separators"))
            continue
        match = _RUN_RE.match(piece)
        if match is None:  # full-descriptor style: a bare label is one patch
            pairs.append((piece, 1))
            continue
        label, count_text = match["label"].strip(), match["count"]
        if not label:
            repairs.append(Repair("bad_run", r, f"run {piece!r} has no label"))
            continue
        if not count_text.isdigit() or int(count_text) == 0:
            repairs.append(Repair("bad_count", r, f"run {piece!r} has count {count_text!r}; read as 1"))
            count = 1
        else:
            count = int(count_text)
        if count > max_width:
            repairs.append(Repair("count_capped", r, f"run {piece!r} capped to {max_width}"))
            count = max_width
        pairs.append((label, count))
    return pairs


def _label_mapper(known: Sequence[str], background: str):
    known = list(dict.fromkeys([background, *known]))
    normalized = {" ".join(k.lower().split()): k for k in known}

    def mapped(label: str, r: int, repairs: list[Repair]) -> str:
        if label in known:
            return label
        key = " ".join(label.lower().split())
        if key in normalized:
            return normalized[key]
        close = difflib.get_close_matches(key, list(normalized), n=1, cutoff=0.8)
        target = normalized[close[0]] if close else background
        repairs.append(Repair("unknown_label", r, f"label {label!r} mapped to {target!r}"))
        return target

    return mapped


def _fit_row(row: list[str], r: int, width: int, background: str, repairs: list[Repair]) -> list[str]:
    if len(row) < width:
        fill = row[-1] if row else background
        repairs.append(Repair("row_padded", r, f"row had {len(row)} labels, padded to {width} with {fill!r}"))
        return row + [fill] * (width - len(row))
    if len(row) > width:
        repairs.append(Repair("row_truncated", r, f"row had {len(row)} labels, truncated to {width}"))
        return row[:width]
    return row


def parse_answer(
    text: str,
    *,
    height: int | None = None,
    width: int | None = None,
    known_labels: Sequence[str] | None = None,
    background: str = BACKGROUND,
) -> ParsedDescriptor:
    """Read a descriptor grid from model output; never raises on text.

    height, width: the grid size the model was asked for. When None they are inferred (row count, most
        common row width); give them whenever they are known so that repairs are measured against them.
    known_labels: labels the answer may use (background is always allowed). Others are mapped to the
        closest known label (case and whitespace first, then a close spelling) or to background.

    Missing rows are filled with background, extra rows dropped; a short row is padded with its last
    label, a long row truncated. Each of these is a :class:`Repair` in the result.
    """
    for name, value in (("height", height), ("width", width)):
        if value is not None and value < 1:
            raise ValueError(f"grid {name} must be >= 1, got {value}")
    text = text if isinstance(text, str) else str(text)
    repairs: list[Repair] = []
    block, tagged = _extract_block(text, repairs)
    lines = _block_lines(block, tagged, repairs)
    max_width = width if width is not None else _MAX_INFERRED_WIDTH
    mapper = _label_mapper(known_labels, background) if known_labels is not None else None

    rows: list[list[str]] = []
    for r, line in enumerate(lines):
        row: list[str] = []
        for label, count in _parse_row(line, r, max_width, repairs):
            if mapper is not None:
                label = mapper(label, r, repairs)
            row.extend([label] * min(count, max_width - len(row) + 1))
        rows.append(row)
    rows = [row for row in rows if row]

    failed = not rows
    if failed:
        repairs.append(Repair("no_descriptor", None, "no descriptor rows found; grid is all background"))
    if height is None:
        height = len(rows)
    if width is None:
        width = Counter(len(row) for row in rows).most_common(1)[0][0] if rows else 0
    if len(rows) > height:
        repairs.append(Repair("extra_rows", None, f"{len(rows)} rows, dropped {len(rows) - height}"))
        rows = rows[:height]
    if rows and len(rows) < height:
        repairs.append(
            Repair("rows_missing", None, f"{len(rows)} rows, filled {height - len(rows)} with {background!r}")
        )
    grid = [_fit_row(row, r, width, background, repairs) for r, row in enumerate(rows)]
    grid += [[background] * width for _ in range(height - len(grid))] if width else []
    labels = list(dict.fromkeys([background, *(label for row in grid for label in row)]))
    return ParsedDescriptor(grid=grid, labels=labels, repairs=repairs, text=text, failed=failed)
