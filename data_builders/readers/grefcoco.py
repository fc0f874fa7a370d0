"""gRefCOCO (GRES): grefcoco/grefs(unc).json + grefcoco/instances.json + COCO train2014 images.

A ref's `ann_id` is a list: several ids = several targets, [-1] = no target (empty mask).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np

from data_builders.readers.base import DatasetReader
from data_builders.readers.coco import CocoIndex, image_and_masks
from data_builders.readers.refer import find_image_root
from data_builders.records import Record


class GRefCocoReader(DatasetReader):
    name = "grefcoco"
    splits = ("train", "val", "testA", "testB")
    layout = (
        "  <root>/grefcoco/grefs(unc).json   (list of refs; ann_id is a list, [-1] = no target)\n"
        "  <root>/grefcoco/instances.json\n"
        "  <root>/images/mscoco/images/train2014/COCO_train2014_<id>.jpg   (or pass image_root)"
    )

    def __init__(self, *, root, image_root=None) -> None:
        super().__init__(root=root)
        self.require("grefcoco/grefs(unc).json", "grefcoco/instances.json")
        self.image_root = find_image_root(self.root, image_root)
        if not self.image_root.is_dir():
            raise self.layout_error(self.image_root)
        self.refs = json.loads((self.root / "grefcoco" / "grefs(unc).json").read_text())
        self.coco = CocoIndex(self.root / "grefcoco" / "instances.json")

    def _records(self, split: str) -> Iterator[Record]:
        for ref in self.refs:
            if ref.get("split") != split:
                continue
            ann_ids = ref["ann_id"] if isinstance(ref["ann_id"], list) else [ref["ann_id"]]
            no_target = ann_ids == [-1] or ref.get("no_target", False)
            image, masks = image_and_masks(
                self, self.coco, self.image_root, ref, [] if no_target else ann_ids
            )
            if image is None:
                continue
            union = np.logical_or.reduce(masks) if masks else np.zeros(image.shape[:2], bool)
            for sentence in ref.get("sentences", []):
                yield Record(
                    image=image, mask=union, text=sentence["sent"], task="referring", split=split,
                    source_id=f"grefcoco/{split}/{ref['ref_id']}/{sentence.get('sent_id', 0)}",
                    instance_masks=tuple(masks),
                    attributes={"ref_id": ref["ref_id"], "ann_ids": ann_ids, "no_target": no_target},
                )  # fmt: skip
