"""Build a ``PointRefiner`` (SAM + TSPP head + ``PointsConfig``) from checkpoints.

The application uses it through ``text4seg.app.refiners`` (refine modes tspp, grid, random,
text4seg). Instance answers work unchanged: the grids hold "text 1", "text 2" … and their class
"text" (the union); SMAgg merges a SAM mask into every grid that covers more than α of it, so the
instance masks and the class mask are refined together from one set of SAM masks.
"""

from __future__ import annotations

from pathlib import Path

from stsam_refiner.points.config import PointsConfig
from stsam_refiner.points.refiner import PointRefiner


def build_point_refiner(
    cfg: PointsConfig,
    *,
    sam_checkpoint: str | Path | None = None,
    prompter_checkpoint: str | Path | None = None,
    sam=None,
) -> PointRefiner:
    """A ``PointRefiner`` from checkpoints: a SAM state_dict (``train_sam`` output or official, tiny
    layout) or an already built ``Sam``; the TSPP head's checkpoint (needed for mode ``tspp``)."""
    # lazy: the checkpoint loaders pull torch and segment-anything; building the config does not
    from stsam_refiner.points.train_prompter import load_prompter
    from stsam_refiner.points.train_sam import load_point_sam

    if sam is None:
        if sam_checkpoint is None:
            raise ValueError("give a SAM (sam=...) or sam_checkpoint")
        sam = load_point_sam(sam_checkpoint)
    prompter = load_prompter(prompter_checkpoint) if prompter_checkpoint is not None else None
    return PointRefiner(sam=sam, cfg=cfg, prompter=prompter)
