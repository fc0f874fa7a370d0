"""SAM-MI's target sampling probabilities (TSPP, Eq. 3–5) from ground-truth masks.

Everything is measured on the d×d grid of candidate points (d = 32), not in pixels:

- Grid point (i, j) sits at pixel ((j + ½)·W/d, (i + ½)·H/d), exactly where SAM's
  ``build_point_grid`` puts it; it belongs to mask k when the pixel under it is in the mask
  (``text4seg.core.masks.grid_from_mask`` with the ``nearest`` rule). A mask given at d×d is used as is.
- area_k = the number of grid points in mask k, so P_k = min(ceil(area_k / g_p), m_p) counts
  points per grid point, which is what makes g_p = 5 mean "one expected point per five candidates".
  Measured in pixels, every mask above 5·m_p pixels would get P_k = m_p and the size term would vanish.
- The skeleton is ``skimage.morphology.skeletonize`` of the d×d point mask; d(x, y) is the Euclidean
  distance in grid steps to the nearest skeleton point (``scipy.ndimage.distance_transform_edt``).
- σ_k = max over the mask of d / 3. When σ_k = 0 (the mask is its own skeleton: a one-point-wide
  stroke or a single point) every point has d = 0 and the Gaussian is 1 there: P_k is spread evenly.
- p_k(x, y) = P_k · G_k(x, y) / Σ_{mask k} G_k with G_k = exp(−d² / 2σ_k²), so Σ p_k = P_k exactly.
  The image's map is Σ_k p_k; masks of a semantic map are disjoint, overlapping instances add up.
  p is an expected count and can exceed 1 at a skeleton point of a small mask.
- A mask that covers no grid point (smaller than the grid spacing) gets area 0 and P_k = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stsam_refiner.points.config import TargetConfig
from text4seg.core.masks import grid_from_mask


@dataclass
class MaskTarget:
    """Target of one mask on the d×d grid."""

    point_mask: np.ndarray
    """d×d bool: grid points inside the mask."""
    area: int
    """Grid points inside the mask."""
    expected: int
    """P_k = min(ceil(area / g_p), m_p): expected sampled points in this mask."""
    sigma: float
    """σ_k = max skeleton distance / 3, in grid steps."""
    skeleton: np.ndarray
    """d×d bool skeleton of ``point_mask``."""
    prob: np.ndarray
    """d×d float64 p_k: zero outside the mask, sums to ``expected``."""


@dataclass
class TsppTarget:
    """Target of one image: the summed probability map and its per-mask parts."""

    prob: np.ndarray
    """d×d float64 expected point count per grid point (Σ over masks); sums to Σ P_k."""
    masks: list[MaskTarget]
    """One entry per (component of a) given mask, in input order."""

    @property
    def expected_points(self) -> float:
        """E[N_p] = Σ p (SAM-MI Eq. 2)."""
        return float(self.prob.sum())


def point_mask(mask: np.ndarray, grid_size: int) -> np.ndarray:
    """H×W bool mask → d×d bool: which of SAM's d×d grid points fall inside it."""

    mask = np.asarray(mask, dtype=bool)
    if mask.shape == (grid_size, grid_size):
        return mask.copy()
    return grid_from_mask(mask, grid_size=(grid_size, grid_size), rule="nearest")


def expected_points(area: int, *, g_p: float, m_p: int) -> int:
    """P_k = min(ceil(area / g_p), m_p) (SAM-MI Eq. 5)."""
    if area < 0:
        raise ValueError(f"area {area} must be >= 0")
    return min(math.ceil(area / g_p), m_p)


def mask_target(points: np.ndarray, cfg: TargetConfig) -> MaskTarget:
    """Eq. 3–5 for one d×d point mask."""
    from scipy.ndimage import distance_transform_edt
    from skimage.morphology import skeletonize

    points = np.asarray(points, dtype=bool)
    area = int(points.sum())
    empty = np.zeros(points.shape, dtype=np.float64)
    if area == 0:
        return MaskTarget(points, 0, 0, 0.0, np.zeros_like(points), empty)
    skeleton = skeletonize(points, method=cfg.skeleton) & points
    if not skeleton.any():
        # Thinning may erase a tiny blob entirely; the blob is then its own skeleton.
        skeleton = points.copy()
    distance = distance_transform_edt(~skeleton)
    sigma = float(distance[points].max()) / 3.0
    if sigma > 0:
        gauss = np.exp(-(distance**2) / (2.0 * sigma**2))
    else:
        gauss = np.ones_like(distance)
    gauss = np.where(points, gauss, 0.0)
    p_k = expected_points(area, g_p=cfg.g_p, m_p=cfg.m_p)
    prob = gauss * (p_k / gauss.sum())
    return MaskTarget(points, area, p_k, sigma, skeleton, prob)


def split_components(points: np.ndarray) -> list[np.ndarray]:
    """8-connected components of a d×d bool mask, largest first."""
    from scipy.ndimage import label

    labelled, count = label(points, structure=np.ones((3, 3), dtype=bool))
    parts = [labelled == i for i in range(1, count + 1)]
    return sorted(parts, key=lambda part: -int(part.sum()))


def tspp_target(masks, cfg: TargetConfig | None = None) -> TsppTarget:
    """Target map from ground-truth masks (K×H×W bool, or a list of H×W / d×d bool masks)."""
    cfg = cfg or TargetConfig()
    d = cfg.grid_size
    grid_masks = [point_mask(m, d) for m in masks]
    if cfg.split_components:
        grid_masks = [part for m in grid_masks for part in split_components(m)]
    targets = [mask_target(m, cfg) for m in grid_masks]
    prob = np.zeros((d, d), dtype=np.float64)
    for t in targets:
        prob += t.prob
    return TsppTarget(prob=prob, masks=targets)


def label_map_masks(label_map: np.ndarray, *, num_classes: int | None = None) -> list[np.ndarray]:
    """H×W int class map (0 background, negative or 255 unlabelled) → one bool mask per present class."""
    label_map = np.asarray(label_map)
    top = int(label_map.max()) if num_classes is None else num_classes - 1
    return [label_map == c for c in range(1, top + 1) if c != 255 and (label_map == c).any()]
