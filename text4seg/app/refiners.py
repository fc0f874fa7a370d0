"""Refiners: what turns a class's coarse grid into a pixel mask, behind one protocol and one registry.

A refiner takes a :class:`RefineRequest` (the image, the non-empty coarse grids by label, the query,
the description and the flips) and returns {label: H×W bool}. ``REFINERS`` maps the config string
``PipelineConfig.refine_mode`` to a builder that takes the loaded parts (:class:`RefinerParts`);
the pipeline calls it once, at construction, so a missing part is an error then, not mid-batch.

- ``none``: the coarse masks as they are;
- ``stsam``: the ST-SAM refiner, once per class, with the class's grid as the dense mask prompt
  (with ``zoom``: once per window around each group of cells);
- ``tspp``, ``grid``, ``random``, ``text4seg``: SAM-MI sparse points through
  ``stsam_refiner.points.refiner.PointRefiner`` (one set of SAM masks merged into every class).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np

from text4seg.core.masks import upsample_grid
from text4seg.core.query import Query


@dataclass(frozen=True, kw_only=True)
class RefineRequest:
    """What a refiner gets for one image."""

    image: np.ndarray
    """H×W×3 uint8 RGB at the original size."""
    grids: dict[str, np.ndarray]
    """label → gh×gw bool coarse grid, only for labels with at least one foreground cell."""
    query: Query
    """The interpreted query."""
    description: str | None = None
    """Text for the refiner's description prompt, or None."""
    flips: tuple[str, ...] = ()
    """Test-time flips ("h", "v") for refiners that support them."""
    zoom: bool = False
    """Refine each group of coarse cells in its own zoomed window (``stsam_refiner.zoom``)."""


class Refiner(Protocol):
    """Coarse grids → pixel masks for one image."""

    mode: str
    """The ``REFINERS`` key this refiner was built for."""

    def refine(self, request: RefineRequest) -> dict[str, np.ndarray]:
        """label → H×W bool mask for every label of ``request.grids``."""
        ...


@dataclass(frozen=True, kw_only=True)
class RefinerParts:
    """Loaded models a refiner may need; absent parts are None."""

    stsam: Any = None
    """``stsam_refiner.model.STSAMRefiner`` in eval mode."""
    points: Any = None
    """``stsam_refiner.points.refiner.PointRefiner`` (SAM + TSPP head + ``PointsConfig``)."""


@dataclass(frozen=True)
class NoRefiner:
    """No refinement: the coarse masks upsampled to the image."""

    mode: str = "none"

    def refine(self, request: RefineRequest) -> dict[str, np.ndarray]:
        size = request.image.shape[:2]
        return {label: upsample_grid(grid, size=size) for label, grid in request.grids.items()}


@dataclass(frozen=True)
class StsamRefiner:
    """The ST-SAM refiner, once per class."""

    model: Any
    mode: str = "stsam"

    def refine(self, request: RefineRequest) -> dict[str, np.ndarray]:
        import torch  # lazy: torch is only needed once a refiner runs

        from stsam_refiner import predict, zoom  # lazy: pulls segment-anything and torch

        refine = zoom.refine_zoomed if request.zoom else predict.refine_image
        with torch.no_grad():
            return {
                label: refine(
                    self.model,
                    request.image,
                    coarse=grid,
                    description=request.description,
                    flips=request.flips,
                ).mask
                for label, grid in request.grids.items()
            }


@dataclass(frozen=True)
class PointsRefiner:
    """SAM prompted with sparse points drawn from the coarse grids (SAM-MI), merged per class."""

    points: Any
    mode: str

    def refine(self, request: RefineRequest) -> dict[str, np.ndarray]:
        labels = list(request.grids)
        if not labels:
            return {}
        coarse = np.stack([np.asarray(request.grids[label], dtype=bool) for label in labels])
        out = self.points.refine(request.image, coarse, mode=self.mode)
        return {label: out.class_masks[i] for i, label in enumerate(labels)}


def _stsam(parts: RefinerParts) -> Refiner:
    if parts.stsam is None:
        raise ValueError("refine_mode 'stsam' needs an ST-SAM refiner checkpoint (--refiner FILE)")
    return StsamRefiner(parts.stsam)


def _points(mode: str) -> Callable[[RefinerParts], Refiner]:
    def build(parts: RefinerParts) -> Refiner:
        if parts.points is None:
            raise ValueError(
                f"refine_mode {mode!r} needs a point refiner: --points-config and --points-sam "
                "(Python: Text4SegPipeline(..., refiner_parts=RefinerParts(points=build_point_refiner(...))))"
            )
        return PointsRefiner(parts.points, mode)

    return build


REFINERS: Mapping[str, Callable[[RefinerParts], Refiner]] = MappingProxyType(
    {
        "none": lambda parts: NoRefiner(),
        "stsam": _stsam,
        **{mode: _points(mode) for mode in ("tspp", "grid", "random", "text4seg")},
    }
)
"""refine_mode → builder of its refiner from the loaded parts."""
POINT_MODES = ("tspp", "grid", "random", "text4seg")


def build_refiner(mode: str, parts: RefinerParts) -> Refiner:
    """The refiner ``mode`` names, built from ``parts`` (ValueError: unknown mode or missing part)."""
    if mode not in REFINERS:
        raise ValueError(f"refine_mode {mode!r} not in {sorted(REFINERS)}")
    return REFINERS[mode](parts)
