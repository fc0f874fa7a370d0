"""TextSeg (Xu et al. 2021) as published: image/<id>.jpg, semantic_label/<id>_maskfg.png, split.json."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np

from data_builders.readers.base import DatasetReader
from data_builders.records import Record

WORD, EFFECT, IGNORE = 100, 200, 255


class TextSegReader(DatasetReader):
    """Foreground is value 100 only; 200 (word effect) is background; 255 is ignored in scoring."""

    name = "textseg"
    splits = ("train", "val", "test")
    layout = (
        "  <root>/image/<id>.jpg\n"
        "  <root>/semantic_label/<id>_maskfg.png   (0 bg, 100 word, 200 word-effect, 255 ignore)\n"
        "  <root>/split.json                       ({'train': [...], 'val': [...], 'test': [...]})"
    )

    def __init__(self, *, root) -> None:
        super().__init__(root=root)
        self.require("image", "semantic_label", "split.json")
        try:
            self.split_ids = json.loads((self.root / "split.json").read_text())
        except json.JSONDecodeError as err:
            raise self.layout_error(f"a valid split.json ({err})") from err
        if not isinstance(self.split_ids, dict):
            raise self.layout_error("split.json with train/val/test keys")

    def _records(self, split: str) -> Iterator[Record]:
        for sample_id in self.split_ids.get(split, []):
            image_path = self.root / "image" / f"{sample_id}.jpg"
            label_path = self.root / "semantic_label" / f"{sample_id}_maskfg.png"
            image, label = self.load_rgb(image_path), self.load_raw(label_path)
            if image is None or label is None:
                continue
            if label.ndim == 3:  # an RGB-saved label map: the value is in every channel
                label = label[..., 0]
            if not self.check_size(label_path, image, label):
                continue
            unknown = sorted(set(np.unique(label).tolist()) - {0, WORD, EFFECT, IGNORE})
            if unknown:
                self.report.add(label_path, "unknown label values", str(unknown))
                continue
            yield Record(
                image=image, mask=label == WORD, ignore=label == IGNORE, text="text", task="scene_text",
                split=split, source_id=f"textseg/{split}/{sample_id}",
                attributes={"effect_pixels": int((label == EFFECT).sum())},
            )  # fmt: skip
