"""The whole system behind one call: image + query → answer, coarse and refined masks, boxes, timings.

``Text4SegPipeline.from_pretrained()`` loads the embedded default model (or given checkpoints);
calling it asks the MLLM for a descriptor (``text4seg.mllm.generate.segment``), decodes it to one
coarse mask per class and refines each non-empty class with the refinement mode the config names
(``REFINE_MODES``: the ST-SAM refiner by default). Classes whose coarse mask is empty never reach
the refiner.
"""

from __future__ import annotations

import importlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from stsam_refiner.points.pipeline_hook import POINT_REFINE_MODES
from text4seg.core.codec import BACKGROUND, encode_rrle
from text4seg.core.masks import GRID_RULES, upsample_grid
from text4seg.core.metrics import mask_box
from text4seg.core.query import Query, interpret_query
from text4seg.core.visualize import overlay_masks

# Refinement modes by config string -> "module:function". A function takes (pipeline, RefineRequest)
# and returns {label: H×W bool}; it is imported only when used, so other packages can add modes here
# without the pipeline importing them.
REFINE_MODES: dict[str, str] = {
    "stsam": "text4seg.app.pipeline:refine_stsam",
    "none": "text4seg.app.pipeline:refine_none",
}
# SAM-MI sparse points (tspp, grid, random) and Text4Seg's point refiner; they need a point refiner
# attached with stsam_refiner.points.pipeline_hook.attach_point_refiner (CLI: --points-config).
REFINE_MODES.update(POINT_REFINE_MODES)
DESCRIPTION_SOURCES = ("none", "query", "mllm")


@dataclass(kw_only=True)
class PipelineConfig:
    """How the pipeline asks, decodes and refines (the default model's manifest fills it)."""

    grid: tuple[int, int] = (16, 16)
    """(gh, gw) descriptor grid the MLLM answers with."""
    grid_rule: str = "nearest"
    """How ground-truth grids were made from masks in training (evaluation compares grids by it)."""
    grid_threshold: float = 0.5
    """Foreground fraction of the ``area`` grid rule."""
    referring_label: str = "sentence"
    """Foreground label of referring answers: the expression itself or "target" (the word "text")."""
    instance_labels: int = 0
    """Also allow instance labels "<label> 1" … "<label> N" in answers (0: class labels only)."""
    refine_mode: str = "stsam"
    """Key of ``REFINE_MODES``."""
    refiner_description: str = "none"
    """Text given to the refiner's description prompt: none, the query, or the MLLM's own words."""
    refiner_flips: tuple[str, ...] = ()
    """Test-time flips of the ST-SAM refiner: "h" (left-right), "v" (upside down); the mask comes from
    the mean logits of the plain and flipped views (``stsam_refiner.predict.refine_image``)."""
    template_set: str = "fixed"
    """``text4seg.core.templates`` set that phrases the question."""
    max_new_tokens: int | None = None
    """Generation budget (None: ``default_max_new_tokens`` of the grid)."""

    def __post_init__(self) -> None:
        self.grid = tuple(int(v) for v in self.grid)
        if len(self.grid) != 2 or min(self.grid) < 1:
            raise ValueError(f"grid must be two positive sizes, got {self.grid}")
        self.refiner_flips = tuple(self.refiner_flips)
        if self.refiner_flips:
            from stsam_refiner.predict import FLIPS

            if not set(self.refiner_flips) <= set(FLIPS):
                raise ValueError(
                    f"refiner_flips {list(self.refiner_flips)} must be drawn from {sorted(FLIPS)}"
                )
        if self.grid_rule not in GRID_RULES:
            raise ValueError(f"grid_rule {self.grid_rule!r} not in {GRID_RULES}")
        if self.referring_label not in ("sentence", "target"):
            raise ValueError(f"referring_label {self.referring_label!r} not in ('sentence', 'target')")
        if self.instance_labels < 0:
            raise ValueError(f"instance_labels {self.instance_labels} must be >= 0")
        if self.refine_mode not in REFINE_MODES:
            raise ValueError(f"refine_mode {self.refine_mode!r} not in {sorted(REFINE_MODES)}")
        if self.refiner_description not in DESCRIPTION_SOURCES:
            raise ValueError(f"refiner_description {self.refiner_description!r} not in {DESCRIPTION_SOURCES}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PipelineConfig:
        """Pick this config's fields out of a dict (e.g. the default model's manifest)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_yaml(cls, path: str | Path) -> PipelineConfig:
        import yaml

        data = yaml.safe_load(Path(path).read_text()) or {}
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"{path}: unknown PipelineConfig keys {unknown}")
        return cls(**data)


@dataclass
class RefineRequest:
    """What a refinement mode gets for one image."""

    image: np.ndarray
    """H×W×3 uint8 RGB at the original size."""
    grids: dict[str, np.ndarray]
    """label → gh×gw bool coarse grid, only for labels with at least one foreground cell."""
    query: Query
    """The interpreted query."""
    description: str | None
    """Text for the refiner's description prompt, or None."""


@dataclass
class SegmentationResult:
    """Everything one pipeline call produced. Masks are H×W bool at the original image size."""

    answer: str
    """The MLLM's raw answer text."""
    query: str
    """The query as given."""
    task: str
    """How the query was read: scene_text, referring or semantic."""
    labels: list[str]
    """Foreground labels present in the answer's grid (no ``others``)."""
    grid: list[list[str]]
    """Parsed descriptor grid, gh rows of gw labels."""
    repairs: list
    """``text4seg.core.parser.Repair`` list (empty for a well-formed answer)."""
    coarse_masks: dict[str, np.ndarray]
    """label → H×W bool, nearest-upsampled grid."""
    refined_masks: dict[str, np.ndarray]
    """label → H×W bool; equals the coarse mask when refinement is off or the coarse mask is empty."""
    boxes: dict[str, tuple[int, int, int, int] | None]
    """label → (x0, y0, x1, y1) box of the refined mask (x1/y1 exclusive), None when empty."""
    instances: dict[str, np.ndarray] = field(default_factory=dict)
    """Instance labels ("text 1", …) → refined H×W bool masks, when the answer has them."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per stage: load_image, mllm, parse, refine, total."""
    parse_failed: bool = False
    """True when the answer held no readable descriptor (the grid is then all background)."""
    refined_labels: list[str] = field(default_factory=list)
    """Labels the refiner was actually called for."""

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) of the masks (the original image)."""
        any_mask = next(iter(self.coarse_masks.values()), None)
        return tuple(any_mask.shape) if any_mask is not None else (0, 0)

    def mask(self, *, refined: bool = True) -> np.ndarray:
        """H×W bool union of all class masks."""
        masks = self.refined_masks if refined else self.coarse_masks
        union = np.zeros(self.image_size, dtype=bool)
        for m in masks.values():
            union |= m
        return union

    def overlay(self, image: np.ndarray, *, refined: bool = True) -> np.ndarray:
        """H×W×3 uint8: ``image`` with each class mask tinted and outlined in its own colour."""
        from text4seg.core.io import as_rgb_array

        masks = self.refined_masks if refined else self.coarse_masks
        return overlay_masks(as_rgb_array(image), masks)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready summary (no arrays): answer, labels, grid, repairs, boxes, areas, timings."""
        return {
            "query": self.query,
            "task": self.task,
            "answer": self.answer,
            "labels": list(self.labels),
            "grid": encode_rrle(self.grid) if self.grid else "",
            "parse_failed": self.parse_failed,
            "repairs": [{"kind": r.kind, "row": r.row, "detail": r.detail} for r in self.repairs],
            "image_size": list(self.image_size),
            "boxes": {k: (list(v) if v is not None else None) for k, v in self.boxes.items()},
            "coarse_area": {k: int(v.sum()) for k, v in self.coarse_masks.items()},
            "refined_area": {k: int(v.sum()) for k, v in self.refined_masks.items()},
            "refined_labels": list(self.refined_labels),
            "instances": sorted(self.instances),
            "timings": {k: round(v, 6) for k, v in self.timings.items()},
        }


def _resolve(mode: str) -> Callable[[Text4SegPipeline, RefineRequest], dict[str, np.ndarray]]:
    module_name, _, attr = REFINE_MODES[mode].partition(":")
    return getattr(importlib.import_module(module_name), attr)


def refine_none(pipeline: Text4SegPipeline, request: RefineRequest) -> dict[str, np.ndarray]:
    """No refinement: the coarse masks as they are."""
    size = request.image.shape[:2]
    return {label: upsample_grid(grid, size=size) for label, grid in request.grids.items()}


def refine_stsam(pipeline: Text4SegPipeline, request: RefineRequest) -> dict[str, np.ndarray]:
    """The ST-SAM refiner, once per class, with the class's grid as the dense mask prompt."""
    from stsam_refiner.predict import refine_image

    if pipeline.refiner is None:
        return refine_none(pipeline, request)
    return {
        label: refine_image(
            pipeline.refiner,
            request.image,
            coarse=grid,
            description=request.description,
            flips=pipeline.config.refiner_flips,
        ).mask
        for label, grid in request.grids.items()
    }


_INSTANCE_RE = re.compile(r"^(?P<base>.+) (?P<number>\d+)$")


class Text4SegPipeline:
    """MLLM (descriptor answer) → coarse masks → refined masks. Build with :meth:`from_pretrained`."""

    def __init__(self, *, mllm, refiner=None, config: PipelineConfig | None = None) -> None:
        """mllm: ``text4seg.mllm.loading.LoadedMllm``; refiner: ``STSAMRefiner`` or None (no refinement)."""
        self.mllm = mllm
        self.refiner = refiner
        self.config = config or PipelineConfig()
        # segment() keeps grammar masks here per (grid, labels), so repeated queries skip rebuilding them.
        self._grammar_cache: dict[tuple, Any] = {}

    @classmethod
    def from_pretrained(
        cls,
        *,
        model: str | Path | None = None,
        refiner: str | Path | None = None,
        sam_checkpoint: str | None = None,
        device: str = "cpu",
        config: PipelineConfig | None = None,
        default_root: str | Path | None = None,
    ) -> Text4SegPipeline:
        """Load the MLLM and refiner; ``None`` takes the embedded default model's part.

        refiner: a project refiner checkpoint, ``"none"`` for no refiner, or None for the default's.
        config: how to ask and refine; default: the default model's manifest when the MLLM is the
            default one, else ``PipelineConfig()``.
        Raises ``DefaultModelMissing`` (with build instructions) when a default part is needed but absent.
        """
        from text4seg.app.default_model import DEFAULT_ROOT, locate_default_model
        from text4seg.mllm.loading import load_mllm

        default = None
        if model is None or refiner is None:
            default = locate_default_model(default_root or DEFAULT_ROOT)
        if config is None:  # the manifest describes how the default MLLM answers, not another model
            config = PipelineConfig.from_dict(default.manifest) if model is None else PipelineConfig()
        mllm = load_mllm(model if model is not None else default.mllm, device_map=device)
        refiner_path = default.refiner if refiner is None else refiner
        refiner_model = None
        if str(refiner_path) != "none":
            refiner_model = load_pipeline_refiner(refiner_path, sam_checkpoint=sam_checkpoint, device=device)
        return cls(mllm=mllm, refiner=refiner_model, config=config)

    def __call__(
        self,
        image,
        query: str,
        *,
        grid: tuple[int, int] | None = None,
        refine: bool = True,
        constrained: bool = True,
        task: str | None = None,
        on_row=None,
    ) -> SegmentationResult:
        """Segment ``query`` in ``image`` (path, PIL image or HWC uint8 array).

        grid: descriptor grid (default: the config's). task: force scene_text/referring/semantic
        instead of reading it from the query. on_row: called with each ``RowUpdate`` as it streams.
        """
        from text4seg.core.io import as_rgb_array

        start = time.perf_counter()
        array = as_rgb_array(image)
        if not array.flags.writeable:  # e.g. np.asarray(PIL image); torch warns on read-only buffers
            array = array.copy()
        timings = {"load_image": time.perf_counter() - start}
        grid = tuple(grid) if grid is not None else self.config.grid
        parsed_query = interpret_query(query, task=task, referring_label=self.config.referring_label)
        coarse, timings["mllm"], timings["parse"] = self._ask(array, parsed_query, grid, constrained, on_row)
        grids = self._class_grids(coarse.grid, parsed_query)
        masks = {label: upsample_grid(g, size=array.shape[:2]) for label, g in grids.items()}
        t0 = time.perf_counter()
        nonempty = {label: g for label, g in grids.items() if g.any()}
        refined = dict(masks)
        if refine and nonempty and self.config.refine_mode != "none":
            request = RefineRequest(
                image=array,
                grids=nonempty,
                query=parsed_query,
                description=self._description(array, parsed_query),
            )
            refined.update(_resolve(self.config.refine_mode)(self, request))
        timings["refine"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - start
        base = set(parsed_query.labels)
        return SegmentationResult(
            answer=coarse.text,
            query=query,
            task=parsed_query.task,
            labels=[label for label in coarse.labels if label != BACKGROUND],
            grid=coarse.grid,
            repairs=list(coarse.repairs),
            coarse_masks=masks,
            refined_masks=refined,
            boxes={label: mask_box(m) for label, m in refined.items()},
            instances={k: v for k, v in refined.items() if k not in base},
            timings=timings,
            parse_failed=coarse.failed,
            refined_labels=sorted(nonempty) if refine and self.config.refine_mode != "none" else [],
        )

    def _answer_labels(self, query: Query) -> list[str]:
        extra = [f"{label} {i}" for label in query.labels for i in range(1, self.config.instance_labels + 1)]
        return [*query.labels, *extra]

    def _ask(self, image: np.ndarray, query: Query, grid, constrained: bool, on_row):
        from text4seg.mllm.generate import segment
        from text4seg.core.templates import get_template_set

        labels = self._answer_labels(query)
        start = time.perf_counter()
        result = segment(
            self.mllm.model,
            self.mllm.processor,
            image,
            query.target,
            task=query.task,
            labels=labels,
            grid=grid,
            constrained=constrained,
            templates=get_template_set(self.config.template_set),
            max_new_tokens=self.config.max_new_tokens,
            masks_cache=self._grammar_cache,
            on_row=on_row,
        )
        # segment() times generation itself; the rest of the call is prompt building and parsing.
        return result, result.seconds, time.perf_counter() - start - result.seconds

    def _class_grids(self, grid: list[list[str]], query: Query) -> dict[str, np.ndarray]:
        """label → gh×gw bool for every queried class plus any instance label in the answer.

        An instance label "text 2" also counts towards its class "text", so the class mask is the union.
        """
        cells = np.array(grid, dtype=object)
        out = {label: cells == label for label in query.labels}
        for label in sorted({str(v) for v in cells.ravel()} - {BACKGROUND, *query.labels}):
            match = _INSTANCE_RE.match(label)
            if match and match["base"] in out:
                out[label] = cells == label
                out[match["base"]] = out[match["base"]] | out[label]
        return {k: np.asarray(v, dtype=bool) for k, v in out.items()}

    def _description(self, image: np.ndarray, query: Query) -> str | None:
        source = self.config.refiner_description
        if source == "query":
            return query.target
        if source == "mllm":
            return describe_image(self.mllm, image, template_set=self.config.template_set)
        return None


def describe_image(mllm, image: np.ndarray, *, template_set: str = "fixed", max_new_tokens: int = 64) -> str:
    """The MLLM's own prose about the text's look (the "describe" task), greedy and unconstrained."""
    import torch

    from text4seg.mllm.generate import build_inputs
    from text4seg.core.templates import get_template_set

    question = get_template_set(template_set).question("describe", "text")
    inputs = build_inputs(mllm.processor, image, question)
    with torch.no_grad():
        output = mllm.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    new_ids = output[0, inputs["input_ids"].shape[1] :]
    return mllm.processor.tokenizer.decode(new_ids, skip_special_tokens=True).strip()


def load_pipeline_refiner(path: str | Path, *, sam_checkpoint: str | None = None, device: str = "cpu"):
    """Load a project refiner checkpoint for inference; weights it cannot fill are an error."""
    from stsam_refiner.build import load_refiner

    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such refiner checkpoint")
    refiner, report = load_refiner(path, sam_checkpoint=sam_checkpoint)
    if report.missing:
        raise ValueError(
            f"{path}: refiner checkpoint leaves {len(report.missing)} weights unfilled, e.g. {report.missing[:3]}"
            " (give --sam-checkpoint if it was trained on a frozen official SAM)"
        )
    return refiner.to(device).eval()
