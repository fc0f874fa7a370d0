"""Tolerant parser for semantic descriptors written by a model.

Unlike the strict decoders in :mod:`text4seg.core.codec`, :func:`parse_answer` never raises on text. It
finds the ``<seg>…</seg>`` block (or a bare block), reads R-RLE and full-descriptor rows alike, and
repairs row by row so that one bad row never shifts the rows after it (the reference parser's
weakness, ../shared/REFERENCE.md §1). Every repair is recorded, so evaluation can report parse-failure
and repair rates instead of hiding them.

Hostile text cannot make a call slow or large: the grid is capped when its size is not given
(:data:`MAX_INFERRED_HEIGHT` × :data:`MAX_INFERRED_WIDTH`), at most ``H×W`` +
:data:`MAX_JUNK_RUNS` runs and ``H`` + :data:`MAX_JUNK_LINES` lines are read, the repair list keeps
the first :data:`MAX_REPAIRS` row repairs, and no step backtracks or parses a number of unbounded length.
A 1 MB answer parses in well under 0.1 s (``benchmarks/fuzz_parser.py``).
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from text4seg.core.codec import BACKGROUND, SEG_CLOSE, SEG_OPEN, Grid

MAX_INFERRED_HEIGHT = 128
"""Most rows read when ``height`` is not given; further rows are dropped with an ``extra_rows`` repair."""
MAX_INFERRED_WIDTH = 128
"""Most labels per row when ``width`` is not given; longer rows are cut with a ``row_truncated`` repair."""
MAX_REPAIRS = 100
"""Row repairs kept in :attr:`ParsedDescriptor.repairs`; the rest are only counted. Block repairs
(``row`` None) are few, one per kind at most, and always kept."""
BLOCK_REPAIRS = (
    "no_seg_tag",
    "unclosed_seg",
    "extra_seg_blocks",
    "empty_lines",
    "extra_rows",
    "input_ignored",
    "no_descriptor",
    "rows_missing",
    "repairs_dropped",
)
"""Kinds of repair to the whole block (``row`` None); each is listed at most once."""
MAX_LISTED_REPAIRS = MAX_REPAIRS + len(BLOCK_REPAIRS)
"""Bound on ``len(ParsedDescriptor.repairs)``."""
MAX_JUNK_RUNS = 1024
"""Runs read beyond the ``H×W`` a grid can hold before the rest of the answer is ignored."""
MAX_JUNK_LINES = 1024
"""Lines that add no row read before the rest of the answer is ignored."""
_MAX_COUNT_DIGITS = 9  # a longer count is over any width; int() of it would be slow or refused
_MAX_FUZZY_LABELS = 256  # distinct unknown labels matched by spelling; the rest go to background
_DETAIL_CHARS = 40  # quoted text in a repair detail is cut to this many characters

# A line with content, from its first non-space character; lines are split at "\n" only.
_LINE_RE = re.compile(r"\S[^\n]*")
# A run with content, from its first character that is neither a separator nor a space.
_PIECE_RE = re.compile(r"[^|\s][^|]*")
_STAR_DIGIT_RE = re.compile(r"\*[^\S\n]*\d")  # a count after a star, within one line
# The common well-formed run, read in one step; anything else goes through _split_run.
_SIMPLE_RUN_RE = re.compile(r"([^*]*[^*\s])\s*\*\s*([0-9]{1,9})")
_COUNT_RE = re.compile(r"[0-9]+")  # ASCII only: "²", "③" and "₂" pass str.isdigit() but not int()


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
        grid size was not given. H and W are the requested size, or when not given at most
        :data:`MAX_INFERRED_HEIGHT` × :data:`MAX_INFERRED_WIDTH`.
    labels: distinct labels in the grid, background first, then in first-seen order.
    repairs: the fixes the parser made, in order; empty for a well-formed answer. Every block repair
        (``row`` None) is listed but only the first :data:`MAX_REPAIRS` row repairs; when there were
        more, one last ``repairs_dropped`` entry says how many were left out. At most
        :data:`MAX_LISTED_REPAIRS` entries.
    text: the raw model output.
    failed: True when no descriptor row could be read at all (the grid is then all background).
    repairs_dropped: row repairs made but not listed (0 unless there were over MAX_REPAIRS).
    """

    grid: Grid
    labels: list[str]
    repairs: list[Repair] = field(default_factory=list)
    text: str = ""
    failed: bool = False
    repairs_dropped: int = 0

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


class _Repairs:
    """Every block repair (``row`` None: each kind at most once), the first ``limit`` row repairs,
    and how many more row repairs there were."""

    def __init__(self, limit: int = MAX_REPAIRS) -> None:
        self.kept: list[Repair] = []
        self.rows_kept = 0
        self.dropped = 0
        self.limit = limit

    def add(self, kind: str, row: int | None, detail: str) -> None:
        if row is None:
            self.kept.append(Repair(kind, row, detail))
        elif self.rows_kept < self.limit:
            self.kept.append(Repair(kind, row, detail))
            self.rows_kept += 1
        else:
            self.dropped += 1

    def listed(self) -> list[Repair]:
        if not self.dropped:
            return self.kept
        return [*self.kept, Repair("repairs_dropped", None, f"{self.dropped} more row repairs not listed")]


def _clip(text: str) -> str:
    """``repr`` of text for a repair detail, cut so that a huge run cannot make a huge detail."""
    return repr(text if len(text) <= _DETAIL_CHARS else text[:_DETAIL_CHARS] + "…")


def _extract_block(text: str, repairs: _Repairs) -> tuple[str, bool]:
    """Return the descriptor block and whether it was tagged with ``<seg>``."""
    start = text.find(SEG_OPEN)
    if start < 0:
        repairs.add("no_seg_tag", None, "no <seg> tag; reading a bare block")
        return text, False
    body = text[start + len(SEG_OPEN) :]
    end = body.find(SEG_CLOSE)
    if end < 0:
        repairs.add("unclosed_seg", None, "no </seg> tag; reading to the end")
        return body, True
    if body.find(SEG_OPEN, end) >= 0:
        repairs.add("extra_seg_blocks", None, "more than one <seg> block; read the first")
    return body[:end], True


def _rows_start(block: str, tagged: bool) -> int:
    """Where the rows begin: a bare answer may start with its sentence, so its rows begin at the
    first row-like line; -1 when a bare answer has none."""
    if tagged:
        return 0
    pipe = block.find("|")  # apart from the star search: one regex with both is 3× slower
    star = _STAR_DIGIT_RE.search(block, 0, len(block) if pipe < 0 else pipe)
    first = star.start() if star is not None else pipe
    return -1 if first < 0 else block.rfind("\n", 0, first) + 1


def _split_run(piece: str) -> tuple[str, str] | None:
    """``"label *N"`` → ``(label, "N")`` with any spacing around the star; None for a bare label.

    The star is the first one after which only spaces and one word follow, so ``"a*b*3"`` has count
    ``"b*3"``. Plain string operations: a regex for this backtracks quadratically on long spaces.
    """
    parts = piece.rsplit(None, 1)
    if len(parts) == 1:
        star = piece.find("*")
    elif parts[0].endswith("*"):
        star = len(parts[0]) - 1
    else:
        star = piece.find("*", len(piece) - len(parts[1]))
    if star < 0:
        return None
    return piece[:star].strip(), piece[star + 1 :].strip()


def _count(count_text: str) -> int:
    """The run length written as ASCII digits; 0 when malformed or zero, and capped at 10**9."""
    if _COUNT_RE.fullmatch(count_text) is None:
        return 0
    digits = count_text.lstrip("0")
    return 10**_MAX_COUNT_DIGITS if len(digits) > _MAX_COUNT_DIGITS else int(digits or "0")


@dataclass
class _Reader:
    """Reads rows of at most ``width`` labels while the run budget lasts."""

    width: int
    runs_left: int
    repairs: _Repairs
    mapper: Callable[[str, int, _Repairs], str] | None = None
    exhausted: bool = False

    def row(self, line: str, r: int) -> tuple[list[str], bool]:
        """The row's labels (at most ``width``) and whether the line held more than that."""
        pieces = line.count("|") + 1
        if "*" not in line and pieces <= min(self.width, self.runs_left):
            row = self._bare_labels(line, r)
            empty = pieces - len(row)
        else:
            row, cut, empty = self._runs(line, r, pieces)
            if cut:
                return row, True
        if empty > 0:
            self.repairs.add("empty_run", r, f"{empty} empty runs between separators")
        return row, False

    def _bare_labels(self, line: str, r: int) -> list[str]:
        """A full-descriptor row (no counts, fits the width): one label per run, read in one go."""
        row = [piece for piece in map(str.strip, line.split("|")) if piece]
        self.runs_left -= len(row)
        if self.mapper is not None:
            row = [self.mapper(label, r, self.repairs) for label in row]
        return row

    def _runs(self, line: str, r: int, pieces: int) -> tuple[list[str], bool, int]:
        """Run by run until the row is full or the budget ends: (labels, cut, empty runs seen)."""
        row: list[str] = []
        width = self.width
        for match in _PIECE_RE.finditer(line):
            room = width - len(row)
            if room <= 0:
                return row, True, 0
            if self.runs_left <= 0:
                self.exhausted = True
                return row, False, 0
            self.runs_left -= 1
            pieces -= 1
            label, count = self._run(match.group().rstrip(), r)
            if label is not None:
                row.extend([label] * (count if count <= room else room))
                if count > room:
                    return row, True, 0
        return row, False, pieces

    def _run(self, piece: str, r: int) -> tuple[str | None, int]:
        """One run's label (known-label mapped) and count, at most ``width``; None for no label."""
        simple = _SIMPLE_RUN_RE.fullmatch(piece)
        if simple is not None and 0 < (count := int(simple[2])) <= self.width:
            label = simple[1]
        else:
            label, count = self._odd_run(piece, r)
            if label is None:
                return None, 0
        if self.mapper is not None:
            label = self.mapper(label, r, self.repairs)
        return label, count

    def _odd_run(self, piece: str, r: int) -> tuple[str | None, int]:
        """A bare label, or a run whose label or count needs a repair."""
        split = _split_run(piece)
        if split is None:  # full-descriptor style: a bare label is one patch
            return piece, 1
        label, count_text = split
        if not label:
            self.repairs.add("bad_run", r, f"run {_clip(piece)} has no label")
            return None, 0
        count = _count(count_text)
        if count == 0:
            self.repairs.add("bad_count", r, f"run {_clip(piece)} has count {_clip(count_text)}; read as 1")
            return label, 1
        if count > self.width:
            self.repairs.add("count_capped", r, f"run {_clip(piece)} capped to {self.width}")
            return label, self.width
        return label, count


def _label_mapper(known: Sequence[str], background: str):
    known = dict.fromkeys([background, *known])
    normalized = {" ".join(k.lower().split()): k for k in known}
    # difflib's ratio is at most 2·min(len)/(sum of lens): longer keys can never reach the cutoff.
    longest = max(len(key) for key in normalized)
    seen: dict[str, str] = {}

    def mapped(label: str, r: int, repairs: _Repairs) -> str:
        if label in known:
            return label
        key = " ".join(label.lower().split())
        if key in normalized:
            return normalized[key]
        target = seen.get(key)
        if target is None:
            close = []
            if len(key) <= 1.5 * longest and len(seen) < _MAX_FUZZY_LABELS:
                close = difflib.get_close_matches(key, list(normalized), n=1, cutoff=0.8)
            target = normalized[close[0]] if close else background
            seen[key] = target
        repairs.add("unknown_label", r, f"label {_clip(label)} mapped to {target!r}")
        return target

    return mapped


def _read_rows(block: str, start: int, reader: _Reader, height: int) -> list[tuple[list[str], bool]]:
    """Rows (each with at least one label, and whether it was cut) until ``height`` are read or a
    budget runs out."""
    repairs, rows = reader.repairs, []
    empty_lines = junk_lines = ignored = 0
    previous_end = None
    for r, match in enumerate(_LINE_RE.finditer(block, start) if start >= 0 else ()):
        if len(rows) >= height or junk_lines >= MAX_JUNK_LINES or reader.exhausted:
            ignored = len(block) - match.start()
            break
        if previous_end is not None:
            empty_lines += block.count("\n", previous_end, match.start()) - 1
        previous_end = match.end()
        row, overflow = reader.row(match.group().rstrip(), r)
        if not row:
            junk_lines += 1
            continue
        rows.append((row, overflow))
    if empty_lines:
        repairs.add("empty_lines", None, f"dropped {empty_lines} empty lines")
    if ignored and len(rows) >= height:
        repairs.add("extra_rows", None, f"{height} rows read; dropped the {ignored} characters after them")
    elif ignored or reader.exhausted:
        rest = f"{ignored} characters" if ignored else "part of the last line"
        repairs.add("input_ignored", None, f"too much text that is not rows; ignored the last {rest}")
    return rows


def _fit_row(row: list[str], cut: bool, r: int, width: int, background: str, repairs: _Repairs) -> list[str]:
    """``row`` padded or truncated to ``width``; ``cut``: the reader already cut it at its width cap."""
    if len(row) < width:
        fill = row[-1] if row else background
        repairs.add("row_padded", r, f"row had {len(row)} labels, padded to {width} with {_clip(fill)}")
        return row + [fill] * (width - len(row))
    if len(row) > width or cut:
        more = "more than " if cut else ""
        repairs.add("row_truncated", r, f"row had {more}{len(row)} labels, truncated to {width}")
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

    height, width: the grid size the model was asked for; the grid is always exactly this size. When
        None they are inferred (row count, most common row width), capped at
        :data:`MAX_INFERRED_HEIGHT` rows and :data:`MAX_INFERRED_WIDTH` labels per row; give them
        whenever they are known so that repairs are measured against them.
    known_labels: labels the answer may use (background is always allowed). Others are mapped to the
        closest known label (case and whitespace first, then a close spelling) or to background.

    Missing rows are filled with background, extra rows dropped; a short row is padded with its last
    label, a long row truncated. A count that is not ASCII digits (``*²``, ``*-3``) or is zero is
    read as 1. Each of these is a :class:`Repair` in the result. Raises ``ValueError`` only for a
    height or width below 1.
    """
    for name, value in (("height", height), ("width", width)):
        if value is not None and value < 1:
            raise ValueError(f"grid {name} must be >= 1, got {value}")
    text = text if isinstance(text, str) else str(text)
    repairs = _Repairs()
    block, tagged = _extract_block(text, repairs)
    max_height = height if height is not None else MAX_INFERRED_HEIGHT
    max_width = width if width is not None else MAX_INFERRED_WIDTH
    mapper = _label_mapper(known_labels, background) if known_labels is not None else None
    reader = _Reader(max_width, max_height * max_width + MAX_JUNK_RUNS, repairs, mapper)
    rows = _read_rows(block, _rows_start(block, tagged), reader, max_height)

    failed = not rows
    if failed:
        repairs.add("no_descriptor", None, "no descriptor rows found; grid is all background")
    if height is None:
        height = len(rows)
    if width is None:
        width = Counter(len(row) for row, _ in rows).most_common(1)[0][0] if rows else 0
    if rows and len(rows) < height:
        repairs.add(
            "rows_missing", None, f"{len(rows)} rows, filled {height - len(rows)} with {background!r}"
        )
    grid = [_fit_row(row, cut, r, width, background, repairs) for r, (row, cut) in enumerate(rows)]
    grid += [[background] * width for _ in range(height - len(grid))] if width else []
    labels = dict.fromkeys([background])
    for row in grid:
        labels.update(dict.fromkeys(row))
    return ParsedDescriptor(
        grid=grid,
        labels=list(labels),
        repairs=repairs.listed(),
        text=text,
        failed=failed,
        repairs_dropped=repairs.dropped,
    )
