"""Grids ↔ masks: ground-truth descriptors from pixel masks, coarse masks back to images, SAM logits.

Conventions (../shared/REFERENCE.md §1): the grid covers the whole image (images are stretched to a
square for the MLLM, never padded), so grid cell (i, j) of a gh×gw grid covers rows
[i·H/gh, (i+1)·H/gh) and columns [j·W/gw, (j+1)·W/gw) of an H×W image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from text4seg.core.codec import BACKGROUND, Grid, validate_grid

GRID_RULES = ("nearest", "area")


def cell_edges(size: int, cells: int) -> np.ndarray:
    """Pixel boundaries of ``cells`` equal cells over ``size`` pixels (length cells + 1).

    Edge k is ceil(k·size/cells), so pixel y lies in cell floor(y·cells/size), the same cell that
    :func:`upsample_grid` paints it from.
    """
    k = np.arange(cells + 1, dtype=np.int64)
    return (k * size + cells - 1) // cells


def grid_from_mask(
    mask: np.ndarray,
    *,
    grid_size: tuple[int, int] = (16, 16),
    rule: str = "nearest",
    threshold: float = 0.5,
) -> np.ndarray:
    """Downsample an H×W mask to a gh×gw grid.

    mask: H×W bool (binary mask) or integer label map (0 = background).
    rule: ``"nearest"`` — each cell takes the pixel at its centre (Text4Seg's nearest resize);
        ``"area"`` — a cell is foreground if at least ``threshold`` of its pixels are. For label maps
        the area rule gives each cell the most frequent non-background label when that label covers
        ≥ threshold of the cell, else background.
    Returns gh×gw of the mask's dtype (bool stays bool).
    """
    mask = np.asarray(mask)
    if mask.ndim != 2 or 0 in mask.shape:
        raise ValueError(f"mask must be a non-empty H×W array, got shape {mask.shape}")
    gh, gw = grid_size
    if gh < 1 or gw < 1:
        raise ValueError(f"grid size must be positive, got {grid_size}")
    if rule not in GRID_RULES:
        raise ValueError(f"grid rule {rule!r} not in {GRID_RULES}")
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"area threshold must be in (0, 1], got {threshold}")
    h, w = mask.shape
    if rule == "nearest":
        rows = np.minimum((2 * np.arange(gh) + 1) * h // (2 * gh), h - 1)
        cols = np.minimum((2 * np.arange(gw) + 1) * w // (2 * gw), w - 1)
        return mask[np.ix_(rows, cols)]
    return _area_grid(mask, gh, gw, threshold)


def _area_grid(mask: np.ndarray, gh: int, gw: int, threshold: float) -> np.ndarray:
    h, w = mask.shape
    ys, xs = cell_edges(h, gh), cell_edges(w, gw)
    out = np.zeros((gh, gw), dtype=mask.dtype)
    for i in range(gh):
        for j in range(gw):
            # A grid finer than the image has empty cells: fall back to the nearest pixel.
            cell = mask[ys[i] : max(ys[i + 1], ys[i] + 1), xs[j] : max(xs[j + 1], xs[j] + 1)]
            if mask.dtype == bool:
                out[i, j] = cell.mean() >= threshold
                continue
            values, counts = np.unique(cell[cell != 0], return_counts=True)
            if len(values) and counts.max() >= threshold * cell.size:
                out[i, j] = values[counts.argmax()]
    return out


def word_regions(instance_masks: Sequence[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """H×W bool union of each word's region: the convex hull of its stroke mask.

    Real-photo benchmarks annotate words as polygons around the letters, not strokes; a grid built
    from these regions marks the cells a word's polygon covers, as the real-photo scorer's truth does
    (``text4seg.core.photo_metrics``), where a grid from strokes drops small words.
    """
    from skimage.morphology import convex_hull_image

    out = np.zeros(shape, bool)
    for mask in instance_masks:
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if rows.size:  # the hull lies inside the word's bounding box: compute it there
            box = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
            out[box] |= convex_hull_image(mask[box])
    return out


def descriptor_from_index(index_map: np.ndarray, names: Sequence[str]) -> Grid:
    """gh×gw integer map → descriptor grid, ``names[k]`` for value k (names[0] is background)."""
    index_map = np.asarray(index_map)
    if index_map.ndim != 2:
        raise ValueError(f"index map must be 2-D, got shape {index_map.shape}")
    if index_map.size and (index_map.min() < 0 or index_map.max() >= len(names)):
        raise ValueError(
            f"index map values span [{index_map.min()}, {index_map.max()}] but only {len(names)} names"
        )
    lookup = list(names)
    return [[lookup[v] for v in row] for row in index_map.tolist()]


def descriptor_from_mask(mask: np.ndarray, *, label: str, **grid_kwargs) -> Grid:
    """Binary H×W mask → descriptor grid with ``label`` as foreground and ``others`` as background."""
    grid = grid_from_mask(np.asarray(mask).astype(bool), **grid_kwargs)
    return descriptor_from_index(grid.astype(np.int64), [BACKGROUND, label])


def index_from_descriptor(grid: Grid, names: Sequence[str]) -> np.ndarray:
    """Descriptor grid → gh×gw int64 map of indices into ``names``; a label not in names raises."""
    validate_grid(grid)
    lookup = {name: i for i, name in enumerate(names)}
    missing = sorted({label for row in grid for label in row} - set(lookup))
    if missing:
        raise ValueError(f"labels {missing} are not in names {list(names)}")
    return np.array([[lookup[label] for label in row] for row in grid], dtype=np.int64)


def upsample_grid(grid: np.ndarray, *, size: tuple[int, int]) -> np.ndarray:
    """Nearest upsampling of a gh×gw grid to an H×W image (``size = (H, W)``); dtype is kept."""
    grid = np.asarray(grid)
    if grid.ndim != 2 or 0 in grid.shape:
        raise ValueError(f"grid must be a non-empty 2-D array, got shape {grid.shape}")
    h, w = size
    if h < 1 or w < 1:
        raise ValueError(f"image size must be positive, got {size}")
    gh, gw = grid.shape
    rows = np.minimum(np.arange(h) * gh // h, gh - 1)
    cols = np.minimum(np.arange(w) * gw // w, gw - 1)
    return grid[np.ix_(rows, cols)]


def grow_mask(mask: np.ndarray, pixels: int) -> np.ndarray:
    """H×W bool: the pixels within ``pixels`` (Euclidean) of ``mask``'s foreground; 0 keeps the mask."""
    mask = np.asarray(mask, dtype=bool)
    if pixels < 0:
        raise ValueError(f"pixels must be >= 0, got {pixels}")
    if pixels == 0 or not mask.any():
        return mask.copy()
    from scipy import ndimage  # lazy: the codec and parser do not need scipy

    return ndimage.distance_transform_edt(~mask) <= pixels


def snap_cells(cells: np.ndarray, hint_cells: np.ndarray, rows: int) -> np.ndarray:
    """gh×gw bool: ``cells`` plus every group of ``hint_cells`` (8-connected) that has a cell at most
    ``rows`` cell rows above or below one of ``cells`` in the same column: an answer a row off its
    hinted word gains the whole word. 0 keeps ``cells``."""
    cells, hint_cells = np.asarray(cells, dtype=bool), np.asarray(hint_cells, dtype=bool)
    if cells.shape != hint_cells.shape:
        raise ValueError(f"cells {cells.shape} and hint cells {hint_cells.shape} differ in shape")
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    if rows == 0:
        return cells.copy()
    from scipy import ndimage  # lazy: the codec and parser do not need scipy

    near = cells.copy()
    for shift in range(1, rows + 1):
        near[shift:] |= cells[:-shift]
        near[:-shift] |= cells[shift:]
    groups, _ = ndimage.label(hint_cells, structure=np.ones((3, 3), bool))
    touched = np.unique(groups[near & hint_cells])
    return cells | np.isin(groups, touched[touched > 0])


def mask_prompt_logits(mask: np.ndarray, *, eps: float = 1e-3) -> np.ndarray:
    """Binary (or [0, 1] soft) mask → float32 logits for SAM's mask prompt.

    SAM works poorly with binary mask inputs; Text4Seg feeds probabilities 1−ε / ε as logits, which
    is ±log((1−ε)/ε) ≈ ±6.9 for ε = 1e-3. Soft masks are clipped to [ε, 1−ε] first.
    """
    if not 0.0 < eps < 0.5:
        raise ValueError(f"eps must be in (0, 0.5), got {eps}")
    p = np.clip(np.asarray(mask, dtype=np.float64), eps, 1.0 - eps)
    return np.log(p / (1.0 - p)).astype(np.float32)
