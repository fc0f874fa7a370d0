"""One entry point for point-based refinement of a multi-class / instance answer.

``PointRefiner.refine(image, coarse)`` takes the answer's per-class coarse grids (K×g×g, one per
class or instance, in the answer's order) and returns one refined mask per class. ``mode`` picks
the prompts: ``tspp`` (learned sparse points), ``grid`` (all d×d points), ``random`` (the same
budget drawn uniformly) — each followed by SMAgg — or ``text4seg`` (Text4Seg's reference refiner).
"""

from __future__ import annotations

import time

import numpy as np

from stsam_refiner.points.aggregation import aggregate
from stsam_refiner.points.config import POINT_MODES, PointsConfig
from stsam_refiner.points.prompting import (
    POINT_SOURCES,
    PointRefinement,
    PointRequest,
    masks_from_points,
    normalized_points,
    text4seg_refine,
)
from text4seg.core.masks import upsample_grid


def coarse_to_image(coarse: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """K×g×g coarse maps (bool, or float thresholded at 0.5) → K×H×W bool by nearest upsampling."""

    coarse = np.asarray(coarse)
    hard = coarse > 0.5 if coarse.dtype != bool else coarse
    if len(hard) == 0:
        return np.zeros((0, *size), dtype=bool)
    return np.stack([upsample_grid(m, size=size) for m in hard])


class PointRefiner:
    """SAM + (optional) TSPP prompter + SMAgg, configured by a :class:`PointsConfig`."""

    def __init__(self, *, sam, cfg: PointsConfig, prompter=None) -> None:
        self.sam = sam
        self.cfg = cfg
        self.prompter = prompter
        if prompter is not None and prompter.grid_size != cfg.targets.grid_size:
            raise ValueError(
                f"prompter grid {prompter.grid_size} != targets.grid_size {cfg.targets.grid_size}"
            )

    def refine(
        self,
        image: np.ndarray,
        coarse: np.ndarray,
        *,
        mode: str | None = None,
        seed: int = 0,
        budget: int | None = None,
    ) -> PointRefinement:
        """image: H×W×3 uint8 RGB; coarse: K×g×g per-class maps (bool, or float in [0, 1] — soft
        maps reach the prompter as they are). ``budget`` sets the ``random`` mode's point count
        (default: ``prompting.random_points``, else the TSPP head's expected count for this image)."""
        mode = mode or self.cfg.mode
        if mode not in POINT_MODES:
            raise ValueError(f"point refinement mode {mode!r} not in {POINT_MODES}")
        rng = np.random.default_rng([self.cfg.sampling.seed, seed])
        start = time.perf_counter()
        text_masks = coarse_to_image(coarse, image.shape[:2])
        if mode == "text4seg":
            return self._text4seg(image, text_masks, rng, start)
        budget = budget if budget is not None else self.cfg.prompting.random_points
        prob = None
        if mode == "tspp" or (mode == "random" and budget is None and self.prompter is not None):
            if self.prompter is None:
                raise ValueError("mode 'tspp' needs a trained prompter")
            # lazy: the TSPP head pulls torch, needed only in mode tspp
            from stsam_refiner.points.prompter import predict_prob

            prob = predict_prob(self.prompter, np.asarray(coarse, dtype=np.float32), image)
            prob = prob * self.cfg.sampling.budget_scale
            if mode == "random":  # TSPP's expected budget, spent uniformly
                budget, prob = max(1, round(float(prob.sum()))), None
        request = PointRequest(
            grid_size=self.cfg.targets.grid_size,
            rng=rng,
            prob=prob,
            budget=budget,
            sampling=self.cfg.sampling,
        )
        indices = POINT_SOURCES[mode](request)
        points = normalized_points(indices, self.cfg.targets.grid_size)
        proposals = masks_from_points(self.sam, image, points, self.cfg.prompting.for_mode(mode))
        aggregated = aggregate(proposals.masks, text_masks, self.cfg.aggregation)
        return PointRefinement(
            class_masks=aggregated.class_masks,
            num_points=len(points),
            seconds=time.perf_counter() - start,
            proposals=proposals,
            aggregated=aggregated,
        )

    def _text4seg(self, image, text_masks, rng, start) -> PointRefinement:
        from segment_anything import SamPredictor

        predictor = SamPredictor(self.sam)
        predictor.set_image(image)
        cfg = self.cfg.text4seg
        refined = [text4seg_refine(predictor, m, cfg, rng) for m in text_masks]
        used = sum(2 * cfg.num_points for m in text_masks if m.any())
        masks = np.stack(refined) if refined else np.zeros((0, *image.shape[:2]), dtype=bool)
        return PointRefinement(class_masks=masks, num_points=used, seconds=time.perf_counter() - start)
