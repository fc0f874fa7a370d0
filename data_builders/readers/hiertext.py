"""HierText as published: {train,validation,test}/<image_id>.jpg and gt/{train,validation}.jsonl[.gz].

The GT file holds one JSON object (despite the .jsonl name): annotations -> paragraphs -> lines ->
words, each with `vertices` and `legible`. There are no official stroke masks, so the polygons are
rasterised to word (or line / paragraph) masks; illegible ones become ignore regions.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator

import numpy as np

from data_builders.readers.base import DatasetReader
from data_builders.records import Record

LEVELS = ("word", "line", "paragraph")


def rasterize(polygons: list, shape: tuple[int, int]) -> np.ndarray:
    """HxW bool union of polygons given as [[x, y], ...] vertex lists."""
    from skimage.draw import polygon as fill_polygon

    out = np.zeros(shape, bool)
    for vertices in polygons:
        pts = np.asarray(vertices, np.float64).reshape(-1, 2)
        if len(pts) < 3:
            continue
        rr, cc = fill_polygon(pts[:, 1], pts[:, 0], shape=shape)
        out[rr, cc] = True
    return out


def _elements(paragraphs: list, level: str) -> Iterator[dict]:
    for paragraph in paragraphs:
        if level == "paragraph":
            yield paragraph
            continue
        for line in paragraph.get("lines", []):
            if level == "line":
                yield line
            else:
                yield from line.get("words", [])


class HierTextReader(DatasetReader):
    name = "hiertext"
    splits = ("train", "validation")
    layout = (
        "  <root>/{train,validation}/<image_id>.jpg\n"
        "  <root>/gt/{train,validation}.jsonl (or .jsonl.gz): {'annotations': [{'image_id', 'paragraphs': "
        "[{'lines': [{'words': [{'vertices', 'text', 'legible'}]}]}]}]}"
    )

    def __init__(self, *, root, level: str = "word") -> None:
        super().__init__(root=root)
        if level not in LEVELS:
            raise ValueError(f"level {level!r} not in {LEVELS}")
        self.level = level
        self.require("gt")
        if not any((self.root / s).is_dir() for s in self.splits):
            raise self.layout_error(self.root / "train")

    def _annotations(self, split: str) -> list[dict]:
        for name in (f"{split}.jsonl", f"{split}.jsonl.gz"):
            path = self.root / "gt" / name
            if path.is_file():
                opener = gzip.open if name.endswith(".gz") else open
                try:
                    with opener(path, "rt", encoding="utf-8") as handle:
                        return json.load(handle)["annotations"]
                except (OSError, json.JSONDecodeError, KeyError) as err:
                    self.report.add(path, "unreadable", str(err))
                    return []
        self.report.add(self.root / "gt" / f"{split}.jsonl", "missing")
        return []

    def _records(self, split: str) -> Iterator[Record]:
        for ann in self._annotations(split):
            image_path = self.root / split / f"{ann['image_id']}.jpg"
            image = self.load_rgb(image_path)
            if image is None:
                continue
            shape = image.shape[:2]
            expected = (ann.get("image_height", shape[0]), ann.get("image_width", shape[1]))
            if tuple(expected) != shape:
                self.report.add(image_path, "size mismatch", f"annotation {expected} vs image {shape}")
                continue
            elements = list(_elements(ann.get("paragraphs", []), self.level))
            legible = [e["vertices"] for e in elements if e.get("legible", True)]
            illegible = [e["vertices"] for e in elements if not e.get("legible", True)]
            mask = rasterize(legible, shape)
            ignore = rasterize(illegible, shape) & ~mask
            words = [e.get("text", "") for e in elements if e.get("legible", True)]
            yield Record(
                image=image, mask=mask, ignore=ignore, text="text", task="scene_text", split=split,
                source_id=f"hiertext/{split}/{ann['image_id']}",
                attributes={"mask_level": f"{self.level} polygon", "words": words},
            )  # fmt: skip
