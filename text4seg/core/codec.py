"""Semantic descriptors as text: R-RLE (Text4Seg's format), full descriptors and image-wise RLE.

A semantic descriptor is an H×W grid of labels, one per image patch, with ``others`` as background
(Text4Seg, ../shared/REFERENCE.md §1). Grids are plain ``list[list[str]]`` so that they print,
serialize and compare without ceremony.

Formats (``block`` is what sits between ``<seg>`` and ``</seg>``):

- ``rrle``: per row, consecutive equal labels become ``label *N``; runs are joined by ``"| "``, rows
  by ``"\\n "``, and the block ends with ``"\\n"``. Runs never cross rows.
- ``full``: one label per patch, no counts; labels joined by ``"| "``, rows by ``"\\n "``. The baseline
  R-RLE is measured against.
- ``irle``: image-wise RLE, the paper's ablation: runs over the row-major flattened grid (they cross
  row boundaries), joined by ``"| "`` on one line. The grid width must be known to decode it.

The decoders here are strict: they raise :class:`DescriptorFormatError` on any deviation. Model
output goes through :func:`text4seg.core.parser.parse_answer`, which repairs and reports instead.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

BACKGROUND = "others"
RUN_SEP = "| "
ROW_SEP = "\n "
SEG_OPEN = "<seg>"
SEG_CLOSE = "</seg>"

Grid = list[list[str]]

RESERVED_IN_LABEL = ("|", "*", "\n", "\r", SEG_OPEN, SEG_CLOSE)
"""What carries structure in the formats; a label holding one of these could not be read back."""
EMPTY_LABEL = "object"
"""What :func:`clean_label` makes of a text with nothing left once the reserved tokens are gone."""


class DescriptorFormatError(ValueError):
    """Text that is not a well-formed descriptor block in the requested format."""


@functools.lru_cache(maxsize=4096)
def validate_label(label: str) -> str:
    """Return ``label`` if it can be written in every format, else raise ``ValueError``.

    Labels are free text (referring sentences, class names, ``text 1``), but they may not be empty,
    start or end with whitespace, or contain ``|``, ``*``, a newline or the ``<seg>`` tags.
    """
    if not isinstance(label, str) or not label:
        raise ValueError(f"descriptor label must be a non-empty string, got {label!r}")
    if label != label.strip():
        raise ValueError(f"descriptor label {label!r} has leading or trailing whitespace")
    bad = [tok for tok in RESERVED_IN_LABEL if tok in label]
    if bad:
        raise ValueError(f"descriptor label {label!r} contains reserved {bad}")
    return label


def clean_label(text: str) -> str:
    """Free text (a class name, a referring sentence) made a label :func:`validate_label` accepts.

    Reserved tokens become spaces, whitespace runs become one space, and an empty result becomes
    ``EMPTY_LABEL``. The conversation builder labels training answers with it and query reading
    names the labels an answer may use with it, so both spell a label the same way.
    """
    for token in RESERVED_IN_LABEL:
        text = text.replace(token, " ")
    return " ".join(text.split()) or EMPTY_LABEL


def validate_grid(grid: Sequence[Sequence[str]]) -> tuple[int, int]:
    """Check that ``grid`` is a non-empty rectangle of valid labels; return ``(height, width)``."""
    if len(grid) == 0 or len(grid[0]) == 0:
        raise ValueError("descriptor grid must have at least one row and one column")
    width = len(grid[0])
    if len(set(map(len, grid))) != 1:
        r = next(r for r, row in enumerate(grid) if len(row) != width)
        raise ValueError(f"descriptor grid row {r} has {len(grid[r])} labels, row 0 has {width}")
    for label in set().union(*grid):
        validate_label(label)
    return len(grid), width


def _encode_row(row: Sequence[str]) -> str:
    # Hot path of every encoder: a plain loop beats itertools.groupby here by ~3x.
    first = row[0]
    if row.count(first) == len(row):
        return f"{first} *{len(row)}"
    parts, prev, n = [], first, 0
    for label in row:
        if label == prev:
            n += 1
        else:
            parts.append(f"{prev} *{n}")
            prev, n = label, 1
    parts.append(f"{prev} *{n}")
    return RUN_SEP.join(parts)


def _parse_run(text: str) -> tuple[str, int]:
    label, sep, count = text.rpartition(" *")
    if not (sep and count.isdigit() and count.isascii() and count[0] != "0"):
        raise DescriptorFormatError(f"run {text!r} is not of the form 'label *N'")
    try:
        return validate_label(label), int(count)
    except ValueError as err:
        raise DescriptorFormatError(f"run {text!r}: {err}") from None


@functools.lru_cache(maxsize=8192)
def _decode_runs_cached(line: str) -> tuple[str, ...]:
    out: list[str] = []
    for run_text in line.split(RUN_SEP):
        label, count = _parse_run(run_text)
        out += [label] * count
    return tuple(out)


def _decode_runs(line: str) -> list[str]:
    # Answers repeat rows (all-background rows above all), so rows are memoized: the cache makes
    # decoding ~3x faster on real grids (benchmarks/codec.py reports cold and warm rates).
    return list(_decode_runs_cached(line))


def _split_rows(block: str) -> list[str]:
    if not block.endswith("\n"):
        raise DescriptorFormatError("descriptor block must end with a newline")
    return block[:-1].split(ROW_SEP)


# --- R-RLE -----------------------------------------------------------------------------------


def encode_rrle(grid: Sequence[Sequence[str]]) -> str:
    """Encode a grid as a Text4Seg R-RLE block, e.g. ``"others *16\\n text *4| others *12\\n"``."""
    validate_grid(grid)
    return ROW_SEP.join(map(_encode_row, grid)) + "\n"


def decode_rrle(block: str) -> Grid:
    """Decode a strict R-RLE block; every row must have the same width."""
    grid = [_decode_runs(row_text) for row_text in _split_rows(block)]
    if len(set(map(len, grid))) != 1:
        r = next(r for r, row in enumerate(grid) if len(row) != len(grid[0]))
        raise DescriptorFormatError(f"row {r} has width {len(grid[r])}, row 0 has {len(grid[0])}")
    return grid


# --- full descriptors -----------------------------------------------------------------------


def encode_full(grid: Sequence[Sequence[str]]) -> str:
    """Encode a grid with one label per patch: ``"others| others| text\\n others| ...\\n"``."""
    validate_grid(grid)
    return ROW_SEP.join(RUN_SEP.join(row) for row in grid) + "\n"


def decode_full(block: str) -> Grid:
    """Decode a strict full-descriptor block."""
    grid = [row_text.split(RUN_SEP) for row_text in _split_rows(block)]
    for r, row in enumerate(grid):
        if len(row) != len(grid[0]):
            raise DescriptorFormatError(f"row {r} has width {len(row)}, row 0 has {len(grid[0])}")
        for label in row:
            if not label or label != label.strip() or "*" in label:
                raise DescriptorFormatError(f"row {r} holds a malformed label {label!r}")
    return grid


# --- image-wise RLE --------------------------------------------------------------------------


def encode_irle(grid: Sequence[Sequence[str]]) -> str:
    """Encode runs over the row-major flattened grid (runs cross row boundaries) on one line."""
    validate_grid(grid)
    return _encode_row([label for row in grid for label in row]) + "\n"


def decode_irle(block: str, *, width: int) -> Grid:
    """Decode an image-wise RLE block into rows of ``width`` labels."""
    if width < 1:
        raise ValueError(f"grid width must be >= 1, got {width}")
    lines = _split_rows(block)
    if len(lines) != 1:
        raise DescriptorFormatError(f"image-wise RLE block must be one line, got {len(lines)}")
    flat = _decode_runs(lines[0])
    if len(flat) % width:
        raise DescriptorFormatError(f"{len(flat)} labels do not fill rows of width {width}")
    return [flat[i : i + width] for i in range(0, len(flat), width)]


# --- answers ---------------------------------------------------------------------------------


def format_answer(block: str, *, sentence: str) -> str:
    """Wrap a block as the assistant's answer: ``sentence + "\\n<seg>" + block + "</seg>"``.

    A sentence holding ``<seg>`` or ``</seg>`` (an expression that quotes the markers) is refused: the
    answer would hold two blocks, and the parser would read the wrong one."""
    for marker in (SEG_OPEN, SEG_CLOSE):
        if marker in sentence:
            raise ValueError(f"answer sentence {sentence[:60]!r} contains {marker!r}")
    return f"{sentence}\n{SEG_OPEN}{block}{SEG_CLOSE}"


@dataclass(frozen=True)
class DescriptorFormat:
    """One text format for semantic descriptors, chosen by name from :data:`FORMATS`."""

    name: str
    encode: Callable[[Sequence[Sequence[str]]], str]
    decode: Callable[..., Grid]
    needs_width: bool = False

    def decode_grid(self, block: str, *, width: int) -> Grid:
        """Decode ``block``; ``width`` is only used by formats that do not mark rows."""
        return self.decode(block, width=width) if self.needs_width else self.decode(block)


FORMATS: dict[str, DescriptorFormat] = {
    "rrle": DescriptorFormat("rrle", encode_rrle, decode_rrle),
    "full": DescriptorFormat("full", encode_full, decode_full),
    "irle": DescriptorFormat("irle", encode_irle, decode_irle, needs_width=True),
}
