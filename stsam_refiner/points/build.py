"""Point refinement as refinement modes of ``text4seg.app.pipeline.Text4SegPipeline``.

The pipeline resolves ``PipelineConfig.refine_mode`` through its ``REFINE_MODES`` registry of
"module:function" strings, each function taking (pipeline, RefineRequest) and returning
{label: H×W bool}. ``POINT_REFINE_MODES`` holds this package's entries; register them with
``REFINE_MODES.update(POINT_REFINE_MODES)`` and give the pipeline its point refiner with
:func:`attach_point_refiner` (the SAM, the TSPP head and the ``PointsConfig``).

Instance answers work unchanged: the request's grids hold "text 1", "text 2" … and their class
"text" (the union); SMAgg merges a SAM mask into every grid that covers more than α of it, so the
instance masks and the class mask are refined together from one set of SAM masks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stsam_refiner.points.config import PointsConfig
from stsam_refiner.points.refiner import PointRefiner

POINT_REFINE_MODES: dict[str, str] = {
    mode: f"stsam_refiner.points.pipeline_hook:refine_{mode}"
    for mode in ("tspp", "grid", "random", "text4seg")
}
"""Entries for ``text4seg.app.pipeline.REFINE_MODES``."""


def build_point_refiner(
    cfg: PointsConfig,
    *,
    sam_checkpoint: str | Path | None = None,
    prompter_checkpoint: str | Path | None = None,
    sam=None,
) -> PointRefiner:
    """A ``PointRefiner`` from checkpoints: a SAM state_dict (``train_sam`` output or official, tiny
    layout) or an already built ``Sam``; the TSPP head's checkpoint (needed for mode ``tspp``)."""
    from stsam_refiner.points.train_prompter import load_prompter
    from stsam_refiner.points.train_sam import load_point_sam

    if sam is None:
        if sam_checkpoint is None:
            raise ValueError("give a SAM (sam=...) or sam_checkpoint")
        sam = load_point_sam(sam_checkpoint)
    prompter = load_prompter(prompter_checkpoint) if prompter_checkpoint is not None else None
    return PointRefiner(sam=sam, cfg=cfg, prompter=prompter)


def attach_point_refiner(pipeline, refiner: PointRefiner) -> None:
    """Give ``pipeline`` the point refiner its point modes use."""
    pipeline.point_refiner = refiner


def _refine(pipeline, request, mode: str) -> dict[str, np.ndarray]:
    refiner = getattr(pipeline, "point_refiner", None)
    if refiner is None:
        raise ValueError(
            f"refine_mode {mode!r} needs a point refiner: "
            "stsam_refiner.points.pipeline_hook.attach_point_refiner(pipeline, build_point_refiner(...))"
        )
    labels = list(request.grids)
    if not labels:
        return {}
    coarse = np.stack([np.asarray(request.grids[label], dtype=bool) for label in labels])
    out = refiner.refine(request.image, coarse, mode=mode)
    return {label: out.class_masks[i] for i, label in enumerate(labels)}


def refine_tspp(pipeline, request) -> dict[str, np.ndarray]:
    """TSPP points → SAM → SMAgg."""
    return _refine(pipeline, request, "tspp")


def refine_grid(pipeline, request) -> dict[str, np.ndarray]:
    """All 32×32 grid points → SAM → SMAgg."""
    return _refine(pipeline, request, "grid")


def refine_random(pipeline, request) -> dict[str, np.ndarray]:
    """``prompting.random_points`` random grid points → SAM → SMAgg."""
    return _refine(pipeline, request, "random")


def refine_text4seg(pipeline, request) -> dict[str, np.ndarray]:
    """Text4Seg's refiner (mask logits + random points, fed back) per class."""
    return _refine(pipeline, request, "text4seg")
