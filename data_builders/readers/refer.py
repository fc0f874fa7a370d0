"""RefCOCO / RefCOCO+ / RefCOCOg in the REFER layout: refs(<split_by>).p + instances.json + train2014.

The refs file is a pickle from a known publisher; it is still read through an unpickler that only
rebuilds builtin containers and scalars, so a tampered file cannot run code.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterator
from pathlib import Path

from data_builders.readers.base import DatasetReader
from data_builders.readers.coco import CocoIndex, image_and_masks
from data_builders.records import Record

# Python 2 pickles name set as __builtin__.set; nothing else may be looked up (no object reconstruction).
_ALLOWED_GLOBALS = {
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("__builtin__", "set"),
    ("__builtin__", "frozenset"),
}
VARIANTS = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd"}


class _DataOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            return {"set": set, "frozenset": frozenset}[name]
        raise pickle.UnpicklingError(f"refusing global {module}.{name}: only builtin containers and scalars")


def load_data_pickle(path: Path):
    """Unpickle `path` allowing only dict/list/tuple/set/str/int/float/bool/None.

    Python 2 pickles (the published REFER files) hold byte strings; they are decoded as UTF-8, and
    as Latin-1 if that fails.
    """
    raw = Path(path).read_bytes()
    try:
        return _DataOnlyUnpickler(io.BytesIO(raw), encoding="utf-8").load()
    except UnicodeDecodeError:
        return _DataOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()


def find_image_root(root: Path, image_root: str | Path | None) -> Path:
    if image_root is not None:
        return Path(image_root)
    for candidate in (root / "images" / "mscoco" / "images" / "train2014", root / "images" / "train2014"):
        if candidate.is_dir():
            return candidate
    return root / "images" / "mscoco" / "images" / "train2014"


class RefCocoReader(DatasetReader):
    """One record per (ref, sentence); the mask is the referred annotation."""

    splits = ("train", "val", "test", "testA", "testB")
    layout = (
        "  <root>/<dataset>/refs(<split_by>).p   (refcoco, refcoco+: unc; refcocog: umd)\n"
        "  <root>/<dataset>/instances.json       (COCO: images, annotations, categories)\n"
        "  <root>/images/mscoco/images/train2014/COCO_train2014_<id>.jpg   (or pass image_root)"
    )

    def __init__(
        self, *, root, dataset: str = "refcoco", split_by: str | None = None, image_root=None
    ) -> None:
        super().__init__(root=root)
        if dataset not in VARIANTS:
            raise ValueError(f"dataset {dataset!r} not in {sorted(VARIANTS)}")
        self.name = dataset
        self.split_by = split_by or VARIANTS[dataset]
        self.refs_path = Path(dataset) / f"refs({self.split_by}).p"
        self.require(str(self.refs_path), f"{dataset}/instances.json")
        self.image_root = find_image_root(self.root, image_root)
        if not self.image_root.is_dir():
            raise self.layout_error(self.image_root)
        try:
            self.refs = load_data_pickle(self.root / self.refs_path)
        except pickle.UnpicklingError as err:
            raise self.layout_error(f"a data-only refs pickle ({err})") from err
        self.coco = CocoIndex(self.root / dataset / "instances.json")

    def _records(self, split: str) -> Iterator[Record]:
        for ref in self.refs:
            if ref.get("split") != split:
                continue
            image, masks = image_and_masks(self, self.coco, self.image_root, ref, [ref["ann_id"]])
            if image is None:
                continue
            for sentence in ref.get("sentences", []):
                yield Record(
                    image=image, mask=masks[0], text=sentence["sent"], task="referring", split=split,
                    source_id=f"{self.name}/{split}/{ref['ref_id']}/{sentence.get('sent_id', 0)}",
                    instance_masks=tuple(masks), attributes={"ref_id": ref["ref_id"], "ann_ids": [ref["ann_id"]]},
                )  # fmt: skip
