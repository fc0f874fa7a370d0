"""ICDAR 2015 Incidental Scene Text (Robust Reading Challenge 4): photos with word quadrilaterals.

Each image ``<stem>.jpg`` has ``gt_<stem>.txt`` with one word per line,
``x1,y1,x2,y2,x3,y3,x4,y4,transcription`` (pixel corners, clockwise from the top left; the
transcription may itself hold commas; the files may start with a UTF-8 byte-order mark and end lines
with CRLF). The transcription ``###`` marks a don't-care word (unreadable text).

Three layouts are accepted:

- the published one: ``ch4_training_images/`` + ``ch4_training_localization_transcription_gt/``
  (split "train") and ``ch4_test_images/`` + ``Challenge4_Test_Task1_GT/`` (split "test");
- ``<root>/{train,test}/`` each holding images and ``gt_*.txt`` side by side;
- ``<root>`` itself holding images and ``gt_*.txt`` side by side (served as split "test"), e.g.
  ``tests/fixtures/real_photos/icdar2015_toy``.

:meth:`Icdar15Reader.photos` yields :class:`WordPhoto` (image path and word polygons, no pixels
read) for word-level scoring (``text4seg.core.photo_metrics``); :meth:`~DatasetReader.records`
yields the usual ``Record`` with cared-for word quads as the mask (word boxes, not strokes) and
don't-care quads as the ignore region; :meth:`Icdar15Reader.photo_records` yields both, paired.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_builders.readers.base import DatasetReader, find_case_insensitive
from data_builders.records import Record
from text4seg.core.photo_metrics import rasterize

DONT_CARE = "###"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
PUBLISHED = {
    "train": ("ch4_training_images", "ch4_training_localization_transcription_gt"),
    "test": ("ch4_test_images", "Challenge4_Test_Task1_GT"),
}


@dataclass(frozen=True)
class Word:
    """One annotated word."""

    polygon: np.ndarray
    """4×2 float64 (x, y) corners in image pixels, in file order."""
    text: str
    """The transcription ("###" for a don't-care word)."""
    dont_care: bool
    """True for ``###``: unreadable text, left out of scoring on both sides."""


@dataclass(frozen=True)
class WordPhoto:
    """A photo and its words; the image is not read."""

    image_path: Path
    words: tuple[Word, ...]
    source_id: str
    """"icdar15/<split>/<stem>"."""

    @property
    def polygons(self) -> list[np.ndarray]:
        """The words' 4×2 polygons, in file order."""
        return [w.polygon for w in self.words]

    @property
    def dont_care(self) -> list[bool]:
        """The words' don't-care flags, in file order."""
        return [w.dont_care for w in self.words]


def parse_gt_line(line: str) -> Word:
    """One ``x1,y1,…,x4,y4,transcription`` line; ValueError naming what is wrong."""
    parts = line.split(",")
    if len(parts) < 9:
        raise ValueError(f"expected 8 coordinates and a transcription, got {len(parts)} fields")
    try:
        coords = np.array([float(v) for v in parts[:8]], dtype=np.float64).reshape(4, 2)
    except ValueError as err:
        raise ValueError(f"non-numeric coordinate in {parts[:8]}") from err
    text = ",".join(parts[8:])
    return Word(polygon=coords, text=text, dont_care=text == DONT_CARE)


def parse_gt(content: str) -> list[Word]:
    """All words of a ground-truth file's text (blank lines skipped); ValueError names the bad line."""
    words = []
    for number, line in enumerate(content.lstrip("\ufeff").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            words.append(parse_gt_line(line.strip()))
        except ValueError as err:
            raise ValueError(f"line {number}: {err}") from err
    return words


class Icdar15Reader(DatasetReader):
    name = "icdar15"
    splits = ("train", "test")
    layout = (
        "  <root>/ch4_training_images/img_<n>.jpg + <root>/ch4_training_localization_transcription_gt/gt_img_<n>.txt\n"
        "  <root>/ch4_test_images/img_<n>.jpg + <root>/Challenge4_Test_Task1_GT/gt_img_<n>.txt\n"
        "  or <root>/{train,test}/ or <root>/ itself holding <stem>.jpg and gt_<stem>.txt side by side\n"
        "  (gt lines: x1,y1,x2,y2,x3,y3,x4,y4,transcription; ### = don't care)"
    )

    def __init__(self, *, root) -> None:
        super().__init__(root=root)
        if not self.root.is_dir():
            raise self.layout_error(self.root)
        self.folders = self._find_folders()
        if not self.folders:
            raise self.layout_error(self.root / PUBLISHED["train"][0])
        self.splits = tuple(s for s in Icdar15Reader.splits if s in self.folders)

    def _find_folders(self) -> dict[str, tuple[Path, Path]]:
        """split → (image folder, gt folder) for the layout found under the root."""
        published = {
            split: (self.root / images, self.root / gts)
            for split, (images, gts) in PUBLISHED.items()
            if (self.root / images).is_dir() and (self.root / gts).is_dir()
        }
        if published:
            return published
        nested = {s: (self.root / s, self.root / s) for s in type(self).splits if _has_gt(self.root / s)}
        if nested:
            return nested
        return {"test": (self.root, self.root)} if _has_gt(self.root) else {}

    def photos(self, split: str) -> Iterator[WordPhoto]:
        """The split's photos with their words, sorted by stem; bad files are reported and left out."""
        if split not in self.splits:
            raise ValueError(f"{self.name}: split {split!r} not in {self.splits}")
        image_folder, gt_folder = self.folders[split]
        images = find_case_insensitive(image_folder, IMAGE_SUFFIXES)
        gts = {p.stem[3:]: p for p in sorted(gt_folder.glob("gt_*.txt"))}
        for stem in sorted(set(gts) - set(images)):
            self.report.add(image_folder / f"{stem}.jpg", "missing")
        for stem in sorted(images, key=_natural):
            if stem not in gts:
                self.report.add(gt_folder / f"gt_{stem}.txt", "missing")
                continue
            try:
                words = parse_gt(gts[stem].read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError) as err:
                self.report.add(gts[stem], "unreadable", str(err))
                continue
            except ValueError as err:
                self.report.add(gts[stem], "bad annotation", str(err))
                continue
            yield WordPhoto(image_path=images[stem], words=tuple(words), source_id=f"icdar15/{split}/{stem}")

    def photo_records(self, split: str) -> Iterator[tuple[WordPhoto, Record]]:
        """``records(split)``, each with the photo it was drawn from, in one pass over the files: the
        pairs cost no second read, and each bad file is reported once."""
        for photo, record in self._photo_records(split):
            self.report.records += 1
            yield photo, record

    def _records(self, split: str) -> Iterator[Record]:
        for _, record in self._photo_records(split):
            yield record

    def _photo_records(self, split: str) -> Iterator[tuple[WordPhoto, Record]]:
        for photo in self.photos(split):
            image = self.load_rgb(photo.image_path)
            if image is None:
                continue
            shape = image.shape[:2]
            mask = rasterize([w.polygon for w in photo.words if not w.dont_care], shape)
            ignore = rasterize([w.polygon for w in photo.words if w.dont_care], shape) & ~mask
            yield photo, Record(
                image=image, mask=mask, ignore=ignore, text="text", task="scene_text", split=split,
                source_id=photo.source_id,
                attributes={"mask_level": "word quad", "words": [w.text for w in photo.words if not w.dont_care]},
            )  # fmt: skip


def _has_gt(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob("gt_*.txt"))


def _natural(stem: str) -> tuple:
    """img_2 before img_10."""
    head, _, tail = stem.rpartition("_")
    return (head, int(tail), "") if tail.isdigit() else (stem, -1, stem)
