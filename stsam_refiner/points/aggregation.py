"""Shallow mask aggregation (SMAgg, SAM-MI Eq. 6–7) guided by the MLLM's per-class coarse masks.

SAM prompted with points over-segments: one object comes back as several part masks. With the
coarse masks M_k^text (the descriptor grid of class/instance k, upsampled to the image), each SAM
mask M_i gets the match score O(i, k) = |M_i ∩ M_k^text| / (|M_i| + ε) — the fraction of the SAM
mask that lies inside the class — and the refined class mask is the union of every M_i with
O(i, k) > α. Scores are fractions of the SAM mask, not IoUs, so a small part of a large object
still merges; a distractor lying mostly outside every coarse mask matches nothing and is kept
apart. Masks of a descriptor are disjoint, so for α ≥ 0.5 a SAM mask joins at most one class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stsam_refiner.points.config import AggregationConfig


@dataclass
class AggregatedMasks:
    """Refined masks of one image."""

    class_masks: np.ndarray
    """K×H×W bool: one refined mask per class/instance of the answer (input order)."""
    scores: np.ndarray
    """N×K float32 match scores O(i, k)."""
    matched: np.ndarray
    """N×K bool: SAM mask i merged into class k (O > α)."""
    unmatched: np.ndarray
    """U×H×W bool: SAM masks merged into no class, kept as they are."""
    from_coarse: np.ndarray
    """K bool: no SAM mask matched class k, which kept its coarse mask (if so configured)."""

    def label_map(self) -> np.ndarray:
        """H×W int64: 0 background, k + 1 for class k.

        Where refined class masks overlap, the smaller mask wins (painted last), so a small object
        sitting on a large one is not swallowed by it.
        """
        k, h, w = self.class_masks.shape
        out = np.zeros((h, w), dtype=np.int64)
        areas = self.class_masks.reshape(k, -1).sum(1)
        for idx in np.argsort(-areas, kind="stable"):
            out[self.class_masks[idx]] = idx + 1
        return out


def match_scores(sam_masks: np.ndarray, text_masks: np.ndarray, *, eps: float = 1e-6) -> np.ndarray:
    """O(i, k) = |M_i ∩ M_k| / (|M_i| + ε) for N×H×W SAM masks and K×H×W coarse masks → N×K float32."""
    sam_masks, text_masks = _check(sam_masks, "sam_masks"), _check(text_masks, "text_masks")
    if sam_masks.shape[1:] != text_masks.shape[1:]:
        raise ValueError(
            f"SAM masks {sam_masks.shape[1:]} and coarse masks {text_masks.shape[1:]} differ in size"
        )
    n, k = len(sam_masks), len(text_masks)
    flat_sam = sam_masks.reshape(n, int(np.prod(sam_masks.shape[1:])))
    sizes = flat_sam.sum(1).astype(np.float64)
    scores = np.zeros((n, k), dtype=np.float32)
    for j in range(k):
        inter = (flat_sam & text_masks[j].reshape(1, flat_sam.shape[1])).sum(1)
        scores[:, j] = inter / (sizes + eps)
    return scores


def aggregate(
    sam_masks: np.ndarray, text_masks: np.ndarray, cfg: AggregationConfig | None = None
) -> AggregatedMasks:
    """SMAgg: N×H×W SAM masks + K×H×W coarse class masks (both bool) → refined masks per class."""
    cfg = cfg or AggregationConfig()
    sam_masks, text_masks = _check(sam_masks, "sam_masks"), _check(text_masks, "text_masks")
    scores = match_scores(sam_masks, text_masks, eps=cfg.eps)
    matched = scores > cfg.alpha
    k = len(text_masks)
    class_masks = np.zeros(text_masks.shape, dtype=bool)
    for j in range(k):
        members = sam_masks[matched[:, j]]
        if len(members):
            class_masks[j] = members.any(0)
    from_coarse = ~matched.any(0) & text_masks.reshape(k, -1).any(1)
    if cfg.keep_coarse_when_unmatched:
        class_masks[from_coarse] = text_masks[from_coarse]
    else:
        from_coarse = np.zeros(k, dtype=bool)
    return AggregatedMasks(
        class_masks=class_masks,
        scores=scores,
        matched=matched,
        unmatched=sam_masks[~matched.any(1)],
        from_coarse=from_coarse,
    )


def _check(masks: np.ndarray, name: str) -> np.ndarray:
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"{name} must be N×H×W, got shape {masks.shape}")
    return masks.astype(bool, copy=False)
