"""Zoomed refinement: each group of coarse cells is refined in its own window, seen larger.

The refiner sees a photo shrunk so its longest side fits its input (SAM's S, the text backbone's
own view V). Trained on images the size of that view, it draws strokes for words several pixels
tall; a 1280×720 photo shrunk to 512 leaves ICDAR words 6–8 px tall and it draws nothing there
(benchmarks/real_photos.py: 7 of 21 words found). Here each connected group of coarse cells (8
neighbours) is cut out of the original photo with a margin, grown to at least :func:`window_side`
pixels (the view's side on a large photo, so it is never enlarged past the photo's own pixels; half
the photo's side on a small one), and refined on its own with its part of the coarse mask as the
prompt. Windows are pasted back by the maximum of their logits; outside the coarse cells and their
margin the mask is background, as the coarse answer says.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from stsam_refiner import predict
from stsam_refiner.model import STSAMRefiner
from text4seg.core.masks import cell_edges, upsample_grid

ZOOM = 2.0
"""Least magnification of a window over the whole-photo view: on 256 px synthetic images of the
selection split (corpus_select, 100 images) the refined fgIoU of the MLLM's grids goes 0.52 (whole)
→ 0.56 with windows of half the side; smaller windows add nothing (``docs/default_model.md``)."""
MIN_WINDOW = 16
"""Smallest window side in pixels (tiny images)."""
ZOOM_MARGIN = 0.25
"""Margin around a group of cells, in cells: the grid rule marks a cell from 3 % text, so word ends
can lie in an unmarked neighbour."""


@dataclass(frozen=True)
class Window:
    """A crop of the original photo: rows [y0, y1), columns [x0, x1)."""

    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)


def view_side(model: STSAMRefiner) -> int:
    """Side in pixels of the refiner's sharpest view: the text backbone's own view, else SAM's input."""
    backbone = model.cfg.text_backbone if model.text_backbone is not None else None
    if backbone is not None and backbone.image_size is not None:
        return int(backbone.image_size)
    return int(model.image_size)


def _grow(start: int, stop: int, size: int, side: int) -> tuple[int, int]:
    """[start, stop) widened about its centre to ``side`` pixels (at most ``size``), kept inside [0, size)."""
    if stop - start >= side:
        return start, stop
    side = min(side, size)
    first = int(round((start + stop - side) / 2))
    first = min(max(0, first), size - side)
    return first, first + side


def zoom_windows(
    grid: np.ndarray, image_size: tuple[int, int], *, side: int, margin: float = ZOOM_MARGIN
) -> list[Window]:
    """One window per 8-connected group of True cells of the gh×gw bool ``grid`` over an H×W photo.

    A window spans its group's cells plus ``margin`` cells on each side, widened to at least ``side``
    pixels per axis where the photo allows; groups are taken in reading order.
    """
    grid = np.asarray(grid, dtype=bool)
    if grid.ndim != 2:
        raise ValueError(f"grid must be gh×gw, got shape {grid.shape}")
    if side < 1 or margin < 0:
        raise ValueError(f"side {side} must be >= 1 and margin {margin} >= 0")
    height, width = image_size
    gh, gw = grid.shape
    rows, cols = cell_edges(height, gh), cell_edges(width, gw)
    pad_y, pad_x = int(margin * height / gh), int(margin * width / gw)
    labels, _ = ndimage.label(grid, structure=np.ones((3, 3), dtype=bool))
    windows = []
    for found in ndimage.find_objects(labels):
        y0, y1 = max(0, rows[found[0].start] - pad_y), min(height, rows[found[0].stop] + pad_y)
        x0, x1 = max(0, cols[found[1].start] - pad_x), min(width, cols[found[1].stop] + pad_x)
        windows.append(Window(*_grow(y0, y1, height, side), *_grow(x0, x1, width, side)))
    return windows


def window_side(model: STSAMRefiner, image_size: tuple[int, int]) -> int:
    """Least side of a window on an H×W photo: each group of cells is seen at least ``ZOOM`` times
    larger than in the whole-photo view, and up to the photo's own resolution where that is more
    (a window of the view's side is refined at its own pixels)."""
    return max(MIN_WINDOW, min(view_side(model), int(max(image_size) / ZOOM)))


def refine_zoomed(
    model: STSAMRefiner,
    image: np.ndarray,
    *,
    coarse: np.ndarray,
    description: str | None = None,
    flips: tuple[str, ...] = (),
    margin: float = ZOOM_MARGIN,
    side: int | None = None,
) -> predict.RefinedMask:
    """Refine HWC uint8 RGB ``image`` given its gh×gw bool ``coarse`` grid, one window per group of
    cells (:func:`zoom_windows`, windows of at least ``side`` pixels, default :func:`window_side`).

    ``logits`` are H×W float32, −1e4 outside the coarse cells grown by ``margin`` cells; ``iou`` is the mean of the windows';
    ``low_res_logits`` are those of the first window (in its own frame). An empty grid is refined
    whole, as :func:`stsam_refiner.predict.refine_image` does.
    """
    coarse = np.asarray(coarse, dtype=bool)
    if not coarse.any():
        return predict.refine_image(model, image, coarse=coarse, description=description, flips=flips)
    side = side or window_side(model, image.shape[:2])
    full = upsample_grid(coarse, size=image.shape[:2])
    logits = np.full(image.shape[:2], -1e4, dtype=np.float32)
    outs = []
    for window in zoom_windows(coarse, image.shape[:2], side=side, margin=margin):
        rows, cols = window.slices
        out = predict.refine_image(
            model,
            np.ascontiguousarray(image[rows, cols]),
            coarse=full[rows, cols],
            description=description,
            flips=flips,
        )
        np.maximum(logits[rows, cols], out.logits, out=logits[rows, cols])
        outs.append(out)
    # A window shows more than its cells; the answer says where the class is, so the mask stays on
    # the cells and their margin (on the ICDAR dev photos precision 0.53 -> 0.67, recall unchanged).
    gh, gw = coarse.shape
    pad_y, pad_x = int(margin * image.shape[0] / gh), int(margin * image.shape[1] / gw)
    logits[~ndimage.maximum_filter(full, size=(2 * pad_y + 1, 2 * pad_x + 1))] = -1e4
    return predict.RefinedMask(
        mask=logits > model.sam.mask_threshold,
        logits=logits,
        iou=float(np.mean([o.iou for o in outs])),
        low_res_logits=outs[0].low_res_logits,
    )
