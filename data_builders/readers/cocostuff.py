"""COCO-Stuff 164k: images/{train2017,val2017}/*.jpg + stuffthingmaps_trainval2017/{...}/*.png + labels.txt.

Label PNG values are class id - 1 (0 = person ... 181 = wood) and 255 = unlabeled. Class names come
from the dataset repository's labels.txt ("<id>: <name>" per line, 0 = unlabeled).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np

from data_builders.readers.base import DatasetReader, find_case_insensitive
from data_builders.records import Record

NUM_CLASSES = 182
_LINE = re.compile(r"^\s*(\d+)\s*:\s*(.+?)\s*$")


class CocoStuffReader(DatasetReader):
    name = "cocostuff"
    splits = ("train2017", "val2017")
    layout = (
        "  <root>/images/{train2017,val2017}/<id>.jpg\n"
        "  <root>/stuffthingmaps_trainval2017/{train2017,val2017}/<id>.png   (value = class id - 1, 255 unlabeled)\n"
        "  <root>/labels.txt   ('<id>: <name>' lines, 0: unlabeled)"
    )

    def __init__(self, *, root) -> None:
        super().__init__(root=root)
        self.require("images", "stuffthingmaps_trainval2017", "labels.txt")
        self.class_names = self._read_labels()

    def _read_labels(self) -> tuple[str, ...]:
        names = [
            f"class{i + 1}" for i in range(NUM_CLASSES)
        ]  # ids missing from labels.txt keep a placeholder
        path = self.root / "labels.txt"
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            match = _LINE.match(line)
            if match is None:
                raise self.layout_error(f"'<id>: <name>' on line {number} of {path}")
            class_id, name = int(match.group(1)), match.group(2)
            if 1 <= class_id <= NUM_CLASSES:
                names[class_id - 1] = name
        return tuple(names)

    def _records(self, split: str) -> Iterator[Record]:
        images = find_case_insensitive(self.root / "images" / split, (".jpg", ".jpeg", ".png"))
        label_dir = self.root / "stuffthingmaps_trainval2017" / split
        for stem, image_path in images.items():
            label_path = label_dir / f"{stem}.png"
            image, label = self.load_rgb(image_path), self.load_raw(label_path)
            if image is None or label is None:
                continue
            if label.ndim == 3:
                label = label[..., 0]
            if not self.check_size(label_path, image, label):
                continue
            bad = sorted(v for v in np.unique(label).tolist() if v >= NUM_CLASSES and v != 255)
            if bad:
                self.report.add(label_path, "unknown label values", str(bad))
                continue
            label_map = np.where(label == 255, -1, label).astype(np.int32)
            present = [self.class_names[v] for v in np.unique(label_map).tolist() if v >= 0]
            yield Record(
                image=image, mask=None, label_map=label_map, class_names=self.class_names,
                text="|".join(present), task="semantic", split=split, source_id=f"cocostuff/{split}/{stem}",
            )  # fmt: skip
