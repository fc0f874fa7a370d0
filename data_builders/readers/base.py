"""What every reader shares: the problem report, the layout error, and careful file loading.

A reader never skips a bad file silently: each missing, unreadable or mismatched file is logged
with its path and counted in `reader.report`, and the record is left out. A root that does not
look like the dataset raises one `LayoutError` saying which layout was expected.
"""

from __future__ import annotations

import abc
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data_builders.records import Record, records_to_dataset

logger = logging.getLogger("data_builders.readers")


class LayoutError(ValueError):
    """The root folder does not have the dataset's published layout."""


@dataclass(frozen=True)
class Problem:
    """One file that could not be used."""

    path: str
    reason: str
    """Short kind, e.g. "missing", "unreadable", "size mismatch", "unknown annotation"."""
    detail: str = ""


@dataclass
class ReadReport:
    """Problems met while reading, in the order they were found."""

    problems: list[Problem] = field(default_factory=list)
    records: int = 0
    """Records yielded so far."""

    def add(self, path: str | Path, reason: str, detail: str = "") -> None:
        self.problems.append(Problem(str(path), reason, detail))
        logger.warning("%s: %s %s", path, reason, detail)

    @property
    def counts(self) -> dict[str, int]:
        """Number of problems per reason."""
        return dict(Counter(p.reason for p in self.problems))

    def summary(self) -> str:
        parts = ", ".join(f"{n} {reason}" for reason, n in sorted(self.counts.items())) or "no problems"
        return f"{self.records} records, {parts}"


class DatasetReader(abc.ABC):
    """Base class: subclasses set `name`, `splits`, `layout` and implement `_records(split)`."""

    name = "dataset"
    splits: tuple[str, ...] = ()
    layout = ""
    """Human description of the expected folder layout (used in LayoutError)."""

    def __init__(self, *, root: str | Path) -> None:
        self.root = Path(root)
        self.report = ReadReport()

    def layout_error(self, missing: str | Path) -> LayoutError:
        return LayoutError(
            f"{self.root} is not a {self.name} root: {missing} not found. Expected layout:\n{self.layout}"
        )

    def require(self, *relative: str) -> None:
        """Raise LayoutError unless every relative path exists under the root."""
        if not self.root.is_dir():
            raise self.layout_error(self.root)
        for rel in relative:
            if not (self.root / rel).exists():
                raise self.layout_error(self.root / rel)

    def records(self, split: str) -> Iterator[Record]:
        """Records of `split`; bad files are reported in `self.report` and left out."""
        if split not in self.splits:
            raise ValueError(f"{self.name}: split {split!r} not in {self.splits}")
        for record in self._records(split):
            self.report.records += 1
            yield record

    @abc.abstractmethod
    def _records(self, split: str) -> Iterator[Record]:
        """Yield the records of a validated split name."""

    def to_dataset(self, split: str):
        """The records of `split` as a `datasets.Dataset` (data_builders.records.records_to_dataset)."""

        return records_to_dataset(self.records(split))

    # --- careful loading -------------------------------------------------------------------

    def load_rgb(self, path: Path) -> np.ndarray | None:
        """HxWx3 uint8, or None after reporting a missing/unreadable file."""
        return self._load(path, "RGB")

    def load_gray(self, path: Path) -> np.ndarray | None:
        """HxW uint8 (palette/RGB files converted to luminance), or None after reporting."""
        return self._load(path, "L")

    def load_raw(self, path: Path) -> np.ndarray | None:
        """The file's own pixel values (palette indices stay indices), or None after reporting."""
        return self._load(path, None)

    def _load(self, path: Path, mode: str | None) -> np.ndarray | None:
        from PIL import Image, UnidentifiedImageError

        if not path.is_file():
            self.report.add(path, "missing")
            return None
        try:
            with Image.open(path) as im:
                im.load()
                return np.asarray(im if mode is None else im.convert(mode))
        except (UnidentifiedImageError, OSError, SyntaxError) as err:
            self.report.add(path, "unreadable", str(err))
            return None

    def check_size(self, path: Path, image: np.ndarray, target: np.ndarray) -> bool:
        """True when the target has the image's height and width; else report a mismatch."""
        if target.shape[:2] == image.shape[:2]:
            return True
        self.report.add(path, "size mismatch", f"target {target.shape[:2]} vs image {image.shape[:2]}")
        return False


def find_case_insensitive(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """stem -> path for files in `folder` whose suffix matches any of `suffixes` in any case."""
    wanted = {s.lower() for s in suffixes}
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in wanted}
