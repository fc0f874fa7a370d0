"""Segmentation metrics exactly as the field computes them (../shared/REFERENCE.md §2).

Every metric is a streaming meter: ``update`` once per image/sample, ``result()`` at the end. Meters
hold only sums, so ``state_dict()`` / ``load_state_dict()`` let a batch evaluation resume after a kill
and ``merge()`` combines shards evaluated by different processes into the same numbers a single
process would give.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


def _as_bool(name: str, array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"{name} must be an H×W mask, got shape {array.shape}")
    return array.astype(bool) if array.dtype != bool else array


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = _as_bool("prediction", pred), _as_bool("ground truth", gt)
    if pred.shape != gt.shape:
        raise ValueError(
            f"prediction shape {pred.shape} != ground-truth shape {gt.shape}; resize to the GT first"
        )
    return pred, gt


@dataclasses.dataclass
class _Meter:
    """Shared state handling: every dataclass field is a running sum."""

    def state_dict(self) -> dict[str, Any]:
        return {
            k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in dataclasses.asdict(self).items()
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for f in dataclasses.fields(self):
            value = state[f.name]
            setattr(
                self,
                f.name,
                np.asarray(value, dtype=np.int64) if isinstance(getattr(self, f.name), np.ndarray) else value,
            )

    def merge(self, other: _Meter) -> None:
        """Add another shard's sums to this meter (same type)."""
        if type(other) is not type(self):
            raise ValueError(f"cannot merge {type(other).__name__} into {type(self).__name__}")
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclasses.dataclass
class SceneTextMeter(_Meter):
    """Scene-text fgIoU and F-score (TexRNet / Hi-SAM protocol).

    fgIoU = Σ_images |P∩G| / Σ_images |P∪G| — accumulated over the dataset, not averaged per image
    (1.0 when the whole dataset has an empty union: nothing to find and nothing predicted).
    F = 2·P̄·R̄ / (P̄ + R̄) with P̄, R̄ the means over images of P_i = I/|P| (0 if |P| = 0) and
    R_i = I/|G| (0 if |G| = 0) — the F of the mean precision and recall, not the mean of per-image F.
    Ignore pixels (TextSeg's 255) are set to background in both prediction and GT.
    """

    intersection: int = 0
    union: int = 0
    sum_precision: float = 0.0
    sum_recall: float = 0.0
    n: int = 0

    def update(self, pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None) -> dict[str, float]:
        """Add one image (H×W bool masks, already at the GT's size); returns its own IoU, P, R."""
        pred, gt = _check_pair(pred, gt)
        if ignore is not None:
            ignore = _as_bool("ignore", ignore)
            pred, gt = pred & ~ignore, gt & ~ignore
        inter, union = int(np.count_nonzero(pred & gt)), int(np.count_nonzero(pred | gt))
        n_pred, n_gt = int(np.count_nonzero(pred)), int(np.count_nonzero(gt))
        precision = inter / n_pred if n_pred else 0.0
        recall = inter / n_gt if n_gt else 0.0
        self.intersection += inter
        self.union += union
        self.sum_precision += precision
        self.sum_recall += recall
        self.n += 1
        return {"IoU": inter / union if union else 1.0, "P": precision, "R": recall}

    def result(self) -> dict[str, float]:
        p = self.sum_precision / self.n if self.n else 0.0
        r = self.sum_recall / self.n if self.n else 0.0
        return {
            "fgIoU": self.intersection / self.union if self.union else 1.0,
            "F": 2 * p * r / (p + r) if p + r else 0.0,
            "P": p,
            "R": r,
            "n": self.n,
        }


@dataclasses.dataclass
class ReferringMeter(_Meter):
    """Referring segmentation cIoU and gIoU (Text4Seg / LISA).

    cIoU = Σ I / Σ U over samples; gIoU = mean of per-sample IoU, where a sample whose union is empty
    (gRefCOCO's no-target case predicted as empty) scores 1.
    """

    intersection: int = 0
    union: int = 0
    sum_iou: float = 0.0
    n: int = 0

    def update(self, pred: np.ndarray, gt: np.ndarray) -> float:
        """Add one sample (H×W bool masks); returns its IoU."""
        pred, gt = _check_pair(pred, gt)
        inter, union = int(np.count_nonzero(pred & gt)), int(np.count_nonzero(pred | gt))
        iou = inter / union if union else 1.0
        self.intersection += inter
        self.union += union
        self.sum_iou += iou
        self.n += 1
        return iou

    def result(self) -> dict[str, float]:
        return {
            "cIoU": self.intersection / self.union if self.union else 1.0,
            "gIoU": self.sum_iou / self.n if self.n else 0.0,
            "n": self.n,
        }


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Pixel-extent box (x0, y0, x1, y1), x1/y1 exclusive, of a mask's foreground; None if empty."""
    mask = _as_bool("mask", mask)
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def box_iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """IoU of two (x0, y0, x1, y1) boxes with exclusive x1/y1."""
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


@dataclasses.dataclass
class RecMeter(_Meter):
    """Referring expression comprehension Acc@0.5 from masks.

    Each box is the min/max extent of a mask's pixels; a sample is a hit when box IoU > 0.5. An empty
    prediction for a non-empty GT is a miss; both empty (no-target) is a hit.
    """

    hits: int = 0
    n: int = 0

    def update(self, pred: np.ndarray, gt: np.ndarray) -> bool:
        pred, gt = _check_pair(pred, gt)
        pbox, gbox = mask_box(pred), mask_box(gt)
        hit = (pbox is None and gbox is None) or (
            pbox is not None and gbox is not None and box_iou(pbox, gbox) > 0.5
        )
        self.hits += int(hit)
        self.n += 1
        return hit

    def result(self) -> dict[str, float]:
        return {"Acc@0.5": self.hits / self.n if self.n else 0.0, "n": self.n}


@dataclasses.dataclass
class SemanticMeter(_Meter):
    """Semantic segmentation mIoU over a fixed class list.

    Per class c, I_c and U_c are summed over the dataset; mIoU is the mean of I_c / U_c over the
    classes with U_c > 0 (classes absent from both GT and predictions everywhere are not counted).
    Class 0 is background and is included unless ``include_background=False``. Pixels equal to
    ``ignore_index`` in the GT are left out.
    """

    num_classes: int = 2
    include_background: bool = True
    ignore_index: int = 255
    intersection: np.ndarray = dataclasses.field(default=None)  # type: ignore[assignment]
    union: np.ndarray = dataclasses.field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")
        if self.intersection is None:
            self.intersection = np.zeros(self.num_classes, dtype=np.int64)
        if self.union is None:
            self.union = np.zeros(self.num_classes, dtype=np.int64)

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add one image of H×W integer class maps."""
        pred, gt = np.asarray(pred), np.asarray(gt)
        if pred.shape != gt.shape or pred.ndim != 2:
            raise ValueError(f"prediction {pred.shape} and GT {gt.shape} must be equal H×W maps")
        valid = gt != self.ignore_index
        for name, arr in (("prediction", pred[valid]), ("ground truth", gt[valid])):
            if arr.size and (arr.min() < 0 or arr.max() >= self.num_classes):
                raise ValueError(f"{name} holds class {arr.max()} outside [0, {self.num_classes})")
        p, g = pred[valid], gt[valid]
        for c in range(self.num_classes):
            pc, gc = p == c, g == c
            self.intersection[c] += np.count_nonzero(pc & gc)
            self.union[c] += np.count_nonzero(pc | gc)

    def merge(self, other: _Meter) -> None:
        if not isinstance(other, SemanticMeter) or other.num_classes != self.num_classes:
            raise ValueError("can only merge a SemanticMeter with the same num_classes")
        self.intersection = self.intersection + other.intersection
        self.union = self.union + other.union

    def result(self) -> dict[str, Any]:
        first = 0 if self.include_background else 1
        per_class = [
            float(self.intersection[c] / self.union[c]) if self.union[c] else None
            for c in range(self.num_classes)
        ]
        counted = [v for v in per_class[first:] if v is not None]
        return {
            "mIoU": float(np.mean(counted)) if counted else 0.0,
            "per_class_IoU": per_class,
            "classes_counted": len(counted),
            "background_included": self.include_background,
        }
