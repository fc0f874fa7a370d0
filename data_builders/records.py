"""One record format that every dataset reader and the synthetic generator produce.

A `Record` is one image with its target: a binary mask (scene text, referring) or an index map
(semantic), the text that names the target, and where it came from. Readers yield records; the
conversation builder and the Arrow writers consume them, so nothing downstream knows which dataset a
record came from.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

TASKS = ("scene_text", "referring", "semantic")


@dataclass(frozen=True, kw_only=True)
class Record:
    """One image and its segmentation target.

    Attributes:
        image: HxWx3 uint8 RGB.
        mask: HxW bool foreground (scene text, referring target union); all False for "no target".
            None for semantic records, which use `label_map` instead.
        ignore: HxW bool pixels excluded from scoring (TextSeg 255, illegible HierText words), or None.
        label_map: HxW int32 class index map for semantic records (-1 = unlabeled), else None.
        class_names: names of the `label_map` indices (semantic) or empty.
        text: what the target is called: "text" for scene text, the referring sentence, or the
            `|`-joined class names for semantic records.
        task: one of TASKS.
        split: the dataset's own split name ("train", "val", "test", "testA", ...).
        source_id: "<dataset>/<split>/<file stem or ref id>", unique within a dataset.
        instance_masks: per-instance HxW bool masks when the dataset has them (may be empty).
        attributes: free-form JSON-serialisable metadata (instances, category names, ...).
    """

    image: np.ndarray
    mask: np.ndarray | None
    text: str
    task: str
    split: str
    source_id: str
    ignore: np.ndarray | None = None
    label_map: np.ndarray | None = None
    class_names: tuple[str, ...] = ()
    instance_masks: tuple[np.ndarray, ...] = ()
    attributes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ValueError(
                f"{self.source_id}: image must be HxWx3 uint8, got {self.image.shape} {self.image.dtype}"
            )
        if self.task not in TASKS:
            raise ValueError(f"{self.source_id}: task {self.task!r} not in {TASKS}")
        hw = self.image.shape[:2]
        if self.task == "semantic":
            if self.label_map is None or self.label_map.shape != hw:
                shape = None if self.label_map is None else self.label_map.shape
                raise ValueError(f"{self.source_id}: semantic label_map shape {shape} != image {hw}")
        elif self.mask is None or self.mask.shape != hw or self.mask.dtype != bool:
            got = None if self.mask is None else (self.mask.shape, self.mask.dtype)
            raise ValueError(f"{self.source_id}: mask must be bool {hw}, got {got}")
        for name, extra in (("ignore", self.ignore), *(("instance", m) for m in self.instance_masks)):
            if extra is not None and extra.shape != hw:
                raise ValueError(f"{self.source_id}: {name} mask shape {extra.shape} != image {hw}")

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the image."""
        return self.image.shape[0], self.image.shape[1]


def records_to_dataset(records: Iterable[Record]):
    """Collect records into a `datasets.Dataset` (image/mask as Image features, mask mode "L" 0/255).

    Semantic records keep their label map in `mask` as uint8 class indices with 255 = unlabeled, which
    limits them to 255 classes (COCO-Stuff has 182).
    """
    import datasets
    from PIL import Image

    def rows():
        for rec in records:
            if rec.task == "semantic":
                if len(rec.class_names) > 255:
                    raise ValueError(f"{rec.source_id}: {len(rec.class_names)} classes > 255 fit in uint8")
                target = np.where(rec.label_map < 0, 255, rec.label_map).astype(np.uint8)
            else:
                target = rec.mask.astype(np.uint8) * 255
            ignore = rec.ignore if rec.ignore is not None else np.zeros(rec.size, bool)
            yield {
                "image": Image.fromarray(rec.image, "RGB"),
                "mask": Image.fromarray(target, "L"),
                "ignore": Image.fromarray(ignore.astype(np.uint8) * 255, "L"),
                "text": rec.text,
                "task": rec.task,
                "class_names": list(rec.class_names),
                "split": rec.split,
                "source_id": rec.source_id,
            }

    features = datasets.Features(
        {
            "image": datasets.Image(),
            "mask": datasets.Image(),
            "ignore": datasets.Image(),
            "text": datasets.Value("string"),
            "task": datasets.Value("string"),
            "class_names": datasets.List(datasets.Value("string")),
            "split": datasets.Value("string"),
            "source_id": datasets.Value("string"),
        }
    )
    return datasets.Dataset.from_list(list(rows()), features=features)
