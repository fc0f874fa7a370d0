"""SAM prompted with points — TSPP, the uniform grid or random points — then SMAgg; and Text4Seg's refiner.

Candidate points are SAM's own d×d grid (``segment_anything.utils.amg.build_point_grid``), so TSPP
and the random baseline choose subsets of exactly the points the grid baseline uses. Masks come
from segment-anything's ``SamAutomaticMaskGenerator`` given those points (``point_grids``): points in
mask-decoder batches, three masks per point, predicted-IoU and stability filtering, box NMS. The
point sources are a registry keyed by ``PointsConfig.mode``; ``text4seg`` is the reference refiner
(``SamPredictor``, coarse mask as logits + random positive/negative points, fed back 3 times).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from stsam_refiner.points.aggregation import AggregatedMasks
from stsam_refiner.points.config import PromptingConfig, SamplingConfig, Text4SegRefineConfig


@dataclass
class PointRequest:
    """What a point source may use for one image."""

    grid_size: int
    """d: candidates are the d×d grid points."""
    rng: np.random.Generator
    """Per-image generator."""
    prob: np.ndarray | None = None
    """d×d TSPP probability map (``tspp`` only)."""
    budget: int | None = None
    """Number of points (``random`` only)."""
    sampling: SamplingConfig | None = None
    """Sampler settings (``tspp`` only)."""


def sample_from_prob(prob: np.ndarray, cfg: SamplingConfig, rng: np.random.Generator) -> np.ndarray:
    """d×d expected-count map → M×2 int (row, col) of distinct sampled grid points."""
    flat = np.clip(np.asarray(prob, dtype=np.float64).ravel(), 0.0, None)
    count = int(round(flat.sum()))
    if cfg.sampler == "bernoulli":
        chosen = np.flatnonzero(rng.random(flat.size) < np.minimum(flat, 1.0))
    elif cfg.sampler == "multinomial" and flat.sum() > 0:
        count = min(count, int(np.count_nonzero(flat)))
        if cfg.spread_radius:
            chosen = _spread_draws(flat.reshape(prob.shape), count, cfg.spread_radius, rng)
        else:
            chosen = rng.choice(flat.size, size=count, replace=False, p=flat / flat.sum())
    else:
        chosen = np.argsort(-flat, kind="stable")[:count]
    if len(chosen) < cfg.min_points:  # top up with the most probable points not yet chosen
        taken = set(chosen.tolist())
        rest = [i for i in np.argsort(-flat, kind="stable") if i not in taken]
        chosen = np.concatenate([chosen, rest[: cfg.min_points - len(chosen)]]).astype(np.int64)
    if cfg.max_points is not None and len(chosen) > cfg.max_points:
        chosen = chosen[np.argsort(-flat[chosen], kind="stable")[: cfg.max_points]]
    d = prob.shape[1]
    return np.stack([chosen // d, chosen % d], 1).astype(np.int64)


def _spread_draws(prob: np.ndarray, count: int, radius: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` distinct flat indices drawn one at a time in proportion to ``prob`` (d×d), each draw
    ruling out the grid points within Chebyshev distance ``radius`` of it. When every point left is
    ruled out, the rest are drawn from all unchosen points with p > 0, as without spreading."""
    w = prob.shape[1]
    weight = prob.astype(np.float64).copy()
    open_ = np.ones_like(weight, dtype=bool)
    chosen: list[int] = []
    for _ in range(count):
        live = weight * open_
        if live.sum() <= 0:
            live = weight.copy()  # all points within reach of a chosen one: stop spreading
        idx = int(rng.choice(weight.size, p=(live / live.sum()).ravel()))
        chosen.append(idx)
        r, c = divmod(idx, w)
        open_[max(r - radius, 0) : r + radius + 1, max(c - radius, 0) : c + radius + 1] = False
        weight[r, c] = 0.0
    return np.asarray(chosen, dtype=np.int64)


def _tspp(req: PointRequest) -> np.ndarray:
    if req.prob is None or req.sampling is None:
        raise ValueError("tspp points need the prompter's probability map and sampling settings")
    return sample_from_prob(req.prob, req.sampling, req.rng)


def _grid(req: PointRequest) -> np.ndarray:
    rows, cols = np.meshgrid(np.arange(req.grid_size), np.arange(req.grid_size), indexing="ij")
    return np.stack([rows.ravel(), cols.ravel()], 1)


def _random(req: PointRequest) -> np.ndarray:
    if req.budget is None:
        raise ValueError("random points need a budget")
    n = min(req.budget, req.grid_size**2)
    chosen = req.rng.choice(req.grid_size**2, size=n, replace=False)
    return np.stack([chosen // req.grid_size, chosen % req.grid_size], 1)


POINT_SOURCES: dict[str, Callable[[PointRequest], np.ndarray]] = {
    "tspp": _tspp,
    "grid": _grid,
    "random": _random,
}
"""Point source by ``PointsConfig.mode``: request → M×2 int (row, col) grid indices."""


def normalized_points(indices: np.ndarray, grid_size: int) -> np.ndarray:
    """(row, col) grid indices → M×2 float xy in [0, 1], SAM's ``build_point_grid`` positions."""
    from segment_anything.utils.amg import build_point_grid

    grid = build_point_grid(grid_size)  # row-major: point r·d + c is (x_c, y_r)
    return grid[np.asarray(indices, dtype=np.int64).reshape(-1, 2) @ np.array([grid_size, 1])]


@dataclass
class SamProposals:
    """Masks SAM returned for a set of point prompts (after its own filtering and NMS)."""

    masks: np.ndarray
    """N×H×W bool at the image size."""
    iou: np.ndarray
    """N float32 predicted IoU."""
    points: np.ndarray
    """M×2 float pixel xy of the prompts given (M ≥ N is typical)."""


def masks_from_points(sam, image: np.ndarray, points: np.ndarray, cfg: PromptingConfig) -> SamProposals:
    """Prompt ``sam`` (a segment-anything ``Sam``) with M×2 normalised xy points on an H×W×3 image."""
    from segment_anything import SamAutomaticMaskGenerator

    h, w = image.shape[:2]
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(points) == 0:
        return SamProposals(np.zeros((0, h, w), bool), np.zeros(0, np.float32), points)
    generator = SamAutomaticMaskGenerator(
        sam,
        points_per_side=None,
        point_grids=[points],
        points_per_batch=cfg.points_per_batch,
        pred_iou_thresh=cfg.pred_iou_thresh,
        stability_score_thresh=cfg.stability_score_thresh,
        box_nms_thresh=cfg.box_nms_thresh,
    )
    records = generator.generate(image)
    masks = np.stack([r["segmentation"] for r in records]) if records else np.zeros((0, h, w), bool)
    return SamProposals(
        masks=masks.astype(bool),
        iou=np.array([r["predicted_iou"] for r in records], dtype=np.float32),
        points=points * np.array([w, h]),
    )


def _random_pixels(mask: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    if len(ys) == 0 or count == 0:
        return np.zeros((0, 2), dtype=np.float64)
    pick = rng.choice(len(ys), size=min(count, len(ys)), replace=False)
    return np.stack([xs[pick], ys[pick]], 1).astype(np.float64)


def text4seg_refine(
    predictor, coarse: np.ndarray, cfg: Text4SegRefineConfig, rng: np.random.Generator
) -> np.ndarray:
    """Text4Seg's reference refinement of one class on an image already set on ``predictor``.

    coarse: H×W bool coarse mask at the image size (the upsampled descriptor grid). An empty coarse
    mask skips SAM. Returns H×W bool.
    """
    # lazy: stsam_refiner.predict pulls segment-anything
    from stsam_refiner.predict import coarse_to_mask_prompt

    coarse = np.asarray(coarse, dtype=bool)
    if not coarse.any():
        return np.zeros_like(coarse)
    mask_size = predictor.model.prompt_encoder.mask_input_size[0]
    logits = coarse_to_mask_prompt(coarse, original_size=coarse.shape, mask_size=mask_size)
    pos = _random_pixels(coarse, cfg.num_points, rng)
    neg = _random_pixels(~coarse, cfg.num_points, rng)
    coords = np.concatenate([pos, neg]) if len(pos) + len(neg) else None
    labels = (
        np.concatenate([np.ones(len(pos)), np.zeros(len(neg))]).astype(np.int64)
        if coords is not None
        else None
    )
    for _ in range(cfg.iterations):
        masks, _, low_res = predictor.predict(
            point_coords=coords, point_labels=labels, mask_input=logits, multimask_output=False
        )
        logits = low_res
    return masks[0].astype(bool)


@dataclass
class PointRefinement:
    """Refined masks of one image from one refinement mode."""

    class_masks: np.ndarray
    """K×H×W bool: one refined mask per class/instance of the answer."""
    num_points: int
    """Point prompts given to SAM (text4seg: positive + negative points per class, summed)."""
    seconds: float
    """Wall time: prompter + SAM (image encoder included) + aggregation."""
    proposals: SamProposals | None = None
    """SAM's masks (point modes)."""
    aggregated: AggregatedMasks | None = None
    """SMAgg's result (point modes)."""

    def label_map(self) -> np.ndarray:
        """H×W int64: 0 background, k + 1 class k (smaller masks painted over larger ones)."""
        k, h, w = self.class_masks.shape
        out = np.zeros((h, w), dtype=np.int64)
        for idx in np.argsort(-self.class_masks.reshape(k, -1).sum(1), kind="stable"):
            out[self.class_masks[idx]] = idx + 1
        return out
