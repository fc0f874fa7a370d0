"""Per-sample scores, stored as one-image meter states so that any set of records re-adds exactly.

Each record keeps, for the coarse, refined and oracle masks and for the patch grid, the state of a
``text4seg.core.metrics`` meter that saw only that sample. The report merges those states in sample
order, so a run split over processes, or resumed after a kill, sums the very same numbers in the very
same order as one uninterrupted process.

Samples with word polygons (``EvalSample.photo``: ICDAR 2015) also keep their
``text4seg.core.photo_metrics.PhotoScore`` counts under ``"photo"``, scored on the refined mask and the
answer's grid; :func:`photo_summary` pools them as ``PhotoMeter`` does.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from text4seg.core.codec import BACKGROUND
from text4seg.core.expressions import sample_kinds
from text4seg.core.masks import grid_from_mask, upsample_grid
from text4seg.core.metrics import RecMeter, ReferringMeter, SceneTextMeter
from text4seg.core.photo_metrics import PhotoScore, PhotoSummary, score_photo, summarize

# Meter kinds kept per mask source; the report rebuilds them by these names.
METERS = {"scene": SceneTextMeter, "referring": ReferringMeter, "rec": RecMeter}
MASK_SOURCES = ("coarse", "refined", "oracle")
HINT_GROW = 4
"""Pixels a target is grown by before asking how much of a reading hint lies off it (``hint_hits``)."""


def _meter_states(pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None) -> tuple[dict, float]:
    scene, referring, rec = SceneTextMeter(), ReferringMeter(), RecMeter()
    scene.update(pred, gt, ignore)
    iou = referring.update(pred, gt)
    rec.update(pred, gt)
    states = {"scene": scene.state_dict(), "referring": referring.state_dict(), "rec": rec.state_dict()}
    return states, iou


def gt_grid(mask: np.ndarray, *, grid: tuple[int, int], rule: str, threshold: float) -> np.ndarray:
    """gh×gw bool ground-truth grid made by the rule the model was trained with."""
    return grid_from_mask(mask, grid_size=grid, rule=rule, threshold=threshold).astype(bool)


def score_sample(
    sample,
    result,
    *,
    grid: tuple[int, int],
    rule: str,
    threshold: float,
) -> dict[str, Any]:
    """Scores of one ``EvalSample`` given its ``SegmentationResult`` (None when the pipeline failed:
    then every prediction is empty, so the sample still counts)."""
    gt = sample.mask
    shape = gt.shape
    if result is not None:
        coarse, refined = result.mask(refined=False), result.mask(refined=True)
        pred_grid = np.array([[cell != BACKGROUND for cell in row] for row in result.grid], dtype=bool)
    else:
        coarse = refined = np.zeros(shape, bool)
        pred_grid = np.zeros(grid, bool)
    truth_grid = gt_grid(gt, grid=pred_grid.shape, rule=rule, threshold=threshold)
    oracle = upsample_grid(truth_grid, size=shape)
    record: dict[str, Any] = {"meters": {}, "iou": {}}
    for name, pred in (("coarse", coarse), ("refined", refined), ("oracle", oracle)):
        record["meters"][name], record["iou"][name] = _meter_states(pred, gt, sample.ignore)
    grid_scene = SceneTextMeter()
    grid_scene.update(pred_grid, truth_grid)
    record["meters"]["grid"] = {"scene": grid_scene.state_dict()}
    union = int(np.count_nonzero(pred_grid | truth_grid))
    record["iou"]["grid"] = int(np.count_nonzero(pred_grid & truth_grid)) / union if union else 1.0
    record["gt_pixels"] = int(np.count_nonzero(gt))
    record["kinds"] = list(record_kinds(sample.task, sample.query, record["gt_pixels"], sample.n_targets))
    if sample.photo is not None:
        score = score_photo(refined, sample.photo.polygons, sample.photo.dont_care, grid=pred_grid)
        record["photo"] = asdict(score)
    return record


def hint_hits(hint: np.ndarray, target: np.ndarray) -> bool:
    """Whether a reading hint (H×W, nonzero = hinted) lands on its target: a present target is hit when
    the hint covers at least half of its pixels and at most half of the hint lies off the target grown
    by ``HINT_GROW`` px (a hint is a word's outline, the target its strokes); an absent one when the
    hint is empty."""
    from scipy import ndimage

    hinted = np.asarray(hint) > 0
    target = np.asarray(target, bool)
    if not target.any():
        return not hinted.any()
    covered = (hinted & target).sum() / target.sum()
    off = (hinted & ~ndimage.binary_dilation(target, iterations=HINT_GROW)).sum() / max(1, hinted.sum())
    return bool(covered >= 0.5 and off <= 0.5)


def record_kinds(task: str, query: str, gt_pixels: int, n_targets: int | None = None) -> tuple[str, ...]:
    """Expression kinds of a referring sample (``text4seg.core.expressions.sample_kinds``); none for
    scene text."""
    if task != "referring":
        return ()
    return sample_kinds(query, target_pixels=gt_pixels, n_targets=n_targets)


def merged_meters(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """source → meter name → meter holding the sum of the records' states, added in list order."""
    out: dict[str, dict[str, Any]] = {}
    for source in (*MASK_SOURCES, "grid"):
        names = ("scene",) if source == "grid" else tuple(METERS)
        out[source] = {name: METERS[name]() for name in names}
        for record in records:
            for name in names:
                one = METERS[name]()
                one.load_state_dict(record["meters"][source][name])
                out[source][name].merge(one)
    return out


def photo_summary(records: list[dict[str, Any]]) -> PhotoSummary | None:
    """The word-level figures pooled over the records that have photo counts (sums of counts, then
    ratios: ``text4seg.core.photo_metrics.summarize``); None when no record has them."""
    scores = [PhotoScore(**record["photo"]) for record in records if "photo" in record]
    return summarize(scores) if scores else None
