"""COCO `instances.json` helpers shared by the RefCOCO family: index annotations, decode masks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


class CocoIndex:
    """Images, annotations and categories of one COCO instances file, indexed by id."""

    def __init__(self, path: Path) -> None:
        data = json.loads(Path(path).read_text())
        self.path = Path(path)
        self.images = {img["id"]: img for img in data["images"]}
        self.annotations = {ann["id"]: ann for ann in data["annotations"]}
        self.categories = {cat["id"]: cat["name"] for cat in data.get("categories", [])}


def annotation_mask(ann: dict, height: int, width: int) -> np.ndarray:
    """HxW bool mask of a COCO annotation: polygons, uncompressed RLE (list counts) or compressed RLE."""
    from pycocotools import mask as mask_utils

    segm = ann["segmentation"]
    if isinstance(segm, list):  # polygons: [[x0, y0, x1, y1, ...], ...]
        polygons = [p for p in segm if len(p) >= 6 and len(p) % 2 == 0]
        if not polygons:
            raise ValueError(f"annotation {ann.get('id')}: no polygon with at least 3 points")
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    elif isinstance(segm.get("counts"), list):
        rle = mask_utils.frPyObjects(segm, height, width)
    else:
        counts = segm["counts"]
        rle = {"size": segm["size"], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    mask = mask_utils.decode(rle).astype(bool)
    if mask.shape != (height, width):
        raise ValueError(f"annotation {ann.get('id')}: mask {mask.shape} != image {(height, width)}")
    return mask


def image_and_masks(reader, coco: CocoIndex, image_root: Path, ref: dict, ann_ids: list[int]):
    """(HxWx3 image, [HxW bool mask per annotation]) for a REFER-style ref, or (None, []) after
    reporting the missing image, size mismatch, unknown annotation or bad segmentation to `reader`."""
    info = coco.images.get(ref["image_id"])
    if info is None:
        reader.report.add(coco.path, "unknown image", f"ref {ref['ref_id']} image {ref['image_id']}")
        return None, []
    image_path = Path(image_root) / info["file_name"]
    image = reader.load_rgb(image_path)
    if image is None:
        return None, []
    if image.shape[:2] != (info["height"], info["width"]):
        reader.report.add(
            image_path, "size mismatch", f"instances.json says {(info['height'], info['width'])}"
        )
        return None, []
    masks = []
    for ann_id in ann_ids:
        ann = coco.annotations.get(ann_id)
        if ann is None:
            reader.report.add(coco.path, "unknown annotation", f"ref {ref['ref_id']} ann {ann_id}")
            return None, []
        try:
            masks.append(annotation_mask(ann, info["height"], info["width"]))
        except (ValueError, KeyError, TypeError) as err:
            reader.report.add(coco.path, "bad segmentation", str(err))
            return None, []
    return image, masks
