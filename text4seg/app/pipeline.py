"""The whole system behind one call: image + query → answer, coarse and refined masks, boxes, timings.

``Text4SegPipeline.from_pretrained()`` loads the embedded default model (or given checkpoints) with
the inference settings its MLLM folder carries (``inference.json``, ``text4seg.core.inference``);
calling it asks the MLLM for a descriptor (``text4seg.mllm.generate.segment``), decodes it to one
coarse mask per class and refines each non-empty class with the refiner the config's
``refine_mode`` names (``text4seg.app.refiners.REFINERS``: the ST-SAM refiner by default). Classes
whose coarse mask is empty never reach the refiner.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from text4seg.app.default_model import DEFAULT_ROOT, locate_default_model
from text4seg.app.refiners import REFINERS, Refiner, RefineRequest, RefinerParts, build_refiner
from text4seg.backbone.reader import ReaderConfig, WordReader
from text4seg.core.codec import BACKGROUND, encode_rrle
from text4seg.core.colours import colour_hint
from text4seg.core.expressions import expression_kinds, named_words
from text4seg.core.inference import (
    INFERENCE_FILE,
    InferenceSettings,
    describe_overrides,
    load_inference_settings,
)
from text4seg.core.io import as_rgb_array
from text4seg.core.masks import grid_from_mask, grow_mask, snap_cells, upsample_grid
from text4seg.core.metrics import mask_box
from text4seg.core.query import Query, interpret_query
from text4seg.core.reading import (
    CLOSEST_RATIO,
    SPOT_FLOOR,
    SeenWord,
    hint_mask,
    matching_words,
    reading_context,
)
from text4seg.core.selection import select_words
from text4seg.core.templates import build_inputs, get_template_set
from text4seg.core.visualize import overlay_masks
from text4seg.mllm import generate
from text4seg.mllm.loading import load_mllm
from text4seg.mllm.lora import load_reading_adapter


@dataclass(frozen=True, kw_only=True)
class PipelineConfig(InferenceSettings):
    """The checkpoint's inference settings plus how the pipeline refines.

    Change a field with ``pipe.config = dataclasses.replace(pipe.config, refiner_flips=())``.
    """

    refine_mode: str = "stsam"
    """Key of ``text4seg.app.refiners.REFINERS``."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.refine_mode not in REFINERS:
            raise ValueError(f"refine_mode {self.refine_mode!r} not in {sorted(REFINERS)}")

    @classmethod
    def from_settings(cls, settings: InferenceSettings | None, **overrides: Any) -> PipelineConfig:
        """The settings a checkpoint carries (None: the defaults) with ``overrides`` applied."""
        base = dataclasses.asdict(settings) if settings is not None else {}
        return cls(**{**base, **overrides})


def checkpoint_config(
    model_dir: str | Path, *, overrides: dict[str, Any] | None = None, announce: bool = True
) -> PipelineConfig:
    """The pipeline config of an MLLM folder: its ``inference.json`` with ``overrides`` (flags) on top.

    With ``announce`` it tells stderr where the settings came from and which flag changed what.
    """
    # None: no flag given; "off": the flag turns an optional setting off (e.g. ``--text-gate off``)
    overrides = {
        k: None if isinstance(v, str) and v == "off" else v
        for k, v in (overrides or {}).items()
        if v is not None
    }
    settings = load_inference_settings(model_dir)
    base = PipelineConfig.from_settings(settings)
    if announce:
        if settings is None:
            print(f"text4seg: {model_dir} has no inference.json: using the default settings", file=sys.stderr)
        source = str(Path(model_dir) / INFERENCE_FILE) if settings is not None else "the defaults"
        for line in describe_overrides(base, overrides, source=source):
            print(f"text4seg: {line}", file=sys.stderr)
    return dataclasses.replace(base, **overrides)


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
    hint: np.ndarray | None = None
    """H×W uint8 (0 or 255): the reading hint the MLLM was shown (``inference.json`` ``reading: hint``),
    or None when the query got none."""

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


_INSTANCE_RE = re.compile(r"^(?P<base>.+) (?P<number>\d+)$")


class Text4SegPipeline:
    """MLLM (descriptor answer) → coarse masks → refined masks. Build with :meth:`from_pretrained`."""

    def __init__(
        self, *, mllm, parts: RefinerParts | None = None, config: PipelineConfig | None = None
    ) -> None:
        """mllm: ``text4seg.mllm.loading.LoadedMllm``; parts: the loaded refiner models (none: no
        refinement possible); config: settings (default ``PipelineConfig()``). The refiner
        ``config.refine_mode`` names is built here, so a missing part is an error now."""
        self.mllm = mllm
        self.parts = parts or RefinerParts()
        self.config = config or PipelineConfig()
        self.refiner  # noqa: B018 - builds the refiner once to fail early on a missing part
        # segment() keeps grammar masks here per (grid, labels), so repeated queries skip rebuilding them.
        self._grammar_cache: dict[tuple, Any] = {}
        self._reader: WordReader | None = None  # built on first use: a reading hint or the text gate
        # every box kept, even one read as nothing (an attribute query's candidate); _read applies the floor
        self._reader_config = ReaderConfig(min_score=0.0, keep_unread=True)

    @property
    def reader_config(self) -> ReaderConfig:
        """Settings of the word reader behind reading and attribute hints (``min_score`` is applied
        per query by ``_read``; keep it 0). Setting it drops the reader built so far."""
        return self._reader_config

    @reader_config.setter
    def reader_config(self, config: ReaderConfig) -> None:
        self._reader_config, self._reader = config, None

    @property
    def refiner(self) -> Refiner:
        """The refiner of ``config.refine_mode`` over this pipeline's parts."""
        return build_refiner(self.config.refine_mode, self.parts)

    @classmethod
    def from_pretrained(
        cls,
        *,
        model: str | Path | None = None,
        refiner: str | Path | None = None,
        sam_checkpoint: str | None = None,
        device: str = "cpu",
        config: PipelineConfig | None = None,
        overrides: dict[str, Any] | None = None,
        points=None,
        default_root: str | Path | None = None,
    ) -> Text4SegPipeline:
        """Load the MLLM and refiner; ``None`` takes the embedded default model's part.

        refiner: a project refiner checkpoint, ``"none"`` for no refiner, or None for the default's.
        config: how to ask and refine; default: the MLLM folder's ``inference.json`` with
            ``overrides`` (e.g. ``{"grid": (16, 16)}`` from a flag; the change is printed to stderr).
        points: a ``PointRefiner`` for the sparse-point refine modes.
        Raises ``DefaultModelMissing`` (with build instructions) when a default part is needed but absent.
        """
        default = None
        if model is None or refiner is None:
            default = locate_default_model(default_root or DEFAULT_ROOT)
        model_dir = model if model is not None else default.mllm
        if config is None:
            overrides = dict(overrides or {})
            if refiner is not None and str(refiner) == "none" and overrides.get("refine_mode") is None:
                overrides["refine_mode"] = "none"
            config = checkpoint_config(
                model_dir, overrides=overrides, announce=model is not None or bool(overrides)
            )
        mllm = load_mllm(model_dir, device_map=device)
        if config.reading_adapter:  # switched on per query, by its hint (generate.segment)
            mllm = dataclasses.replace(mllm, model=load_reading_adapter(mllm.model, model_dir))
        refiner_path = default.refiner if refiner is None else refiner
        stsam = None
        if str(refiner_path) != "none":
            stsam = load_pipeline_refiner(refiner_path, sam_checkpoint=sam_checkpoint, device=device)
        return cls(mllm=mllm, parts=RefinerParts(stsam=stsam, points=points), config=config)

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
        start = time.perf_counter()
        array = as_rgb_array(image)
        if not array.flags.writeable:  # e.g. np.asarray(PIL image); torch warns on read-only buffers
            array = array.copy()
        timings = {"load_image": time.perf_counter() - start}
        grid = tuple(grid) if grid is not None else self.config.grid
        parsed_query = interpret_query(query, task=task, referring_label=self.config.referring_label)
        t0 = time.perf_counter()
        context, hint = self._reading(array, parsed_query, grid)
        if context or hint is not None:
            timings["reading"] = time.perf_counter() - t0
        coarse, timings["mllm"], timings["parse"] = self._ask(
            array, parsed_query, grid, constrained, on_row, context=context, hint=hint
        )
        grids = self._class_grids(coarse.grid, parsed_query)
        masks = {label: upsample_grid(g, size=array.shape[:2]) for label, g in grids.items()}
        t0 = time.perf_counter()
        nonempty = {label: g for label, g in grids.items() if g.any()}
        refined = dict(masks)
        if refine and nonempty and self.config.refine_mode != "none":
            refined.update(self._refine(array, nonempty, parsed_query, hint))
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
            hint=hint,
        )

    def refine_answer(self, image, result: SegmentationResult) -> dict[str, np.ndarray]:
        """label → refined H×W bool for ``result``'s answer (and hint) under this pipeline's current
        config, without asking the MLLM again: e.g. to compare refiner settings on the same answers."""
        array = as_rgb_array(image)
        query = interpret_query(result.query, task=result.task, referring_label=self.config.referring_label)
        nonempty = {label: g for label, g in self._class_grids(result.grid, query).items() if g.any()}
        return self._refine(array, nonempty, query, result.hint) if nonempty else {}

    def _refine(
        self, image: np.ndarray, grids: dict[str, np.ndarray], query: Query, hint: np.ndarray | None
    ) -> dict[str, np.ndarray]:
        """The refiner's masks for the answer's non-empty ``grids``; a query whose hint shows a word has
        its prompt snapped to the hint (``hint_snap``) and its masks clipped to it (``hint_clip``), and
        other text queries have their masks kept where the detector sees text (``text_gate``)."""
        request = RefineRequest(
            image=image,
            grids=self._snapped(grids, hint),
            query=query,
            description=self._description(image, query),
            flips=self.config.refiner_flips,
            zoom=self.config.refiner_zoom,
        )
        refined = self.refiner.refine(request)
        if self.config.hint_clip is not None and hint is not None and hint.any():
            near_hint = grow_mask(hint > 0, self.config.hint_clip)
            refined = {label: mask & near_hint for label, mask in refined.items()}
        else:
            refined = self.text_gated(image, refined, query)
        return refined

    def text_gated(
        self, image: np.ndarray, masks: dict[str, np.ndarray], query: Query
    ) -> dict[str, np.ndarray]:
        """``masks`` kept within ``text_gate`` pixels of where the detector sees text in ``image``, for a
        scene-text or referring ``query``; unchanged when the gate is off or the query is semantic."""
        if (
            self.config.text_gate is None
            or query.task == "semantic"
            or not any(m.any() for m in masks.values())
        ):
            return masks  # nothing to gate: the detector is not run
        near_text = self._word_reader().text_regions(image, margin=self.config.text_gate)
        return {label: mask & near_text for label, mask in masks.items()}

    def _snapped(self, grids: dict[str, np.ndarray], hint: np.ndarray | None) -> dict[str, np.ndarray]:
        """The grids the refiner is prompted with: the answer's, with ``hint_snap`` the hint's cells
        next to them (``text4seg.core.masks.snap_cells``) when the hint shows a word."""
        if not self.config.hint_snap or hint is None or not hint.any():
            return grids
        any_grid = next(iter(grids.values()))
        hint_cells = grid_from_mask(
            hint > 0,
            grid_size=any_grid.shape,
            rule=self.config.grid_rule,
            threshold=self.config.grid_threshold,
        ).astype(bool)
        return {label: snap_cells(g, hint_cells, self.config.hint_snap) for label, g in grids.items()}

    def _answer_labels(self, query: Query) -> list[str]:
        extra = [f"{label} {i}" for label in query.labels for i in range(1, self.config.instance_labels + 1)]
        return [*query.labels, *extra]

    def _reading(self, image: np.ndarray, query: Query, grid) -> tuple[str, np.ndarray | None]:
        """What a content query of a model trained with reading (``inference.json`` ``reading``) is
        given besides the image: the words read with their cells as a prompt line (content, runs), or
        the outlines of the read words the query names as the hint channel (hint); with ``colour_hint``
        a colour query gets the pixels of the colours it names as its hint. ("", None) for other
        queries and models: they are asked exactly as before."""
        hint_model = self.config.reading == "hint"
        if hint_model and self.config.scene_text_hint and query.task == "scene_text":
            return "", hint_mask(self._read(image), image.shape[:2])  # every word read
        if self.config.reading == "none" or query.task != "referring":
            return "", None
        if "content" not in expression_kinds(query.target):
            if hint_model and self.config.attribute_hint:
                # "the red word", "the topmost text": the read words it picks (None: it names no attribute)
                picked = select_words(self._read(image, every_box=True), query.target, image)
                return "", None if picked is None else hint_mask(picked, image.shape[:2])
            # "the red word": a hint model is shown the pixels of the colours named (None: none named)
            return "", colour_hint(image, query.target) if hint_model and self.config.colour_hint else None
        if hint_model:
            # Spotting scores every box read, however unsure; the text is matched on confident ones only.
            named = matching_words(
                self._read(image, every_box=True),
                named_words(query.target),
                closest=CLOSEST_RATIO,
                spot=SPOT_FLOOR,
                min_score=ReaderConfig().min_score,
            )
            return "", hint_mask(named, image.shape[:2])
        words = self._read(image)
        context = reading_context(
            words,
            image_size=image.shape[:2],
            grid=tuple(grid),
            style=self.config.reading,
            threshold=self.config.grid_threshold,
        )
        return context, None

    def query_hint(self, image, query: str, *, task: str | None = None) -> np.ndarray | None:
        """The reading hint ``query`` would be asked with (H×W uint8, 0 or 255), or None when it gets
        none: what a hint model is shown besides the photo (``inference.json`` ``reading``)."""
        parsed = interpret_query(query, task=task, referring_label=self.config.referring_label)
        return self._reading(as_rgb_array(image), parsed, self.config.grid)[1]

    def _read(self, image: np.ndarray, *, every_box: bool = False) -> list[SeenWord]:
        """The words the reader reads in ``image``; ``every_box``: also the boxes whose reading is too
        unsure to match a named word (an attribute query needs where the words are, not what they say)."""
        floor = 0.0 if every_box else ReaderConfig().min_score
        return [
            SeenWord(text=w.text, box=w.box, polygon=w.polygon, score=w.score, spotting=w.spotting)
            for w in self._word_reader().read(image)
            if w.score >= floor
        ]

    def _word_reader(self) -> WordReader:
        """The word reader, built on first use (reading hints, ``text_gate``)."""
        if self._reader is None:
            self._reader = WordReader(config=self._reader_config)
        return self._reader

    def _ask(
        self,
        image: np.ndarray,
        query: Query,
        grid,
        constrained: bool,
        on_row,
        *,
        context: str = "",
        hint=None,
    ):
        labels = self._answer_labels(query)
        start = time.perf_counter()
        result = generate.segment(
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
            context=context,
            hint=hint,
            adapter=(hint is not None) if self.config.empty_hint_adapter else None,
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

    question = get_template_set(template_set).question("describe", "text")
    inputs = build_inputs(mllm.processor, image, question).to(mllm.model.device)
    with torch.no_grad():
        output = mllm.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    new_ids = output[0, inputs["input_ids"].shape[1] :]
    return mllm.processor.tokenizer.decode(new_ids, skip_special_tokens=True).strip()


def load_pipeline_refiner(path: str | Path, *, sam_checkpoint: str | None = None, device: str = "cpu"):
    """Load a project refiner checkpoint for inference; weights it cannot fill are an error."""
    from stsam_refiner.build import load_refiner  # lazy: pulls segment-anything and torch

    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such refiner checkpoint")
    refiner, report = load_refiner(path, sam_checkpoint=sam_checkpoint)
    if report.missing:
        raise ValueError(
            f"{path}: refiner checkpoint leaves {len(report.missing)} weights unfilled, e.g. {report.missing[:3]}"
            " (give --sam-checkpoint if it was trained on a frozen official SAM)"
        )
    return refiner.to(device).eval()
