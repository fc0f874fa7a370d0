"""How a trained MLLM checkpoint is meant to be asked and decoded: the settings that travel with it.

Every MLLM checkpoint folder holds ``inference.json`` (written at save time, beside transformers'
``generation_config.json``) with an :class:`InferenceSettings`: the descriptor grid the model
answers with, the rule its training grids were made by, the chat template set, how referring
answers are labelled and how the refiner is run (test-time flips, zoom). Commands read it and say so; a flag
overrides a field visibly (:func:`describe_overrides`). A folder without the file (an official
LLaVA, an old checkpoint) gets the defaults below, and the commands say that too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from text4seg.core.config import Config
from text4seg.core.masks import GRID_RULES
from text4seg.core.reading import READING_MODES

INFERENCE_FILE = "inference.json"
"""File name of the settings inside an MLLM checkpoint folder."""
REFERRING_LABELS = ("sentence", "target")
FLIPS = {"h": 1, "v": 0}
"""Test-time flips the refiner knows -> the axis of an H×W array each reverses: "h" left-right, "v"
upside down."""
DESCRIPTION_SOURCES = ("none", "query", "mllm")


@dataclass(frozen=True, kw_only=True)
class InferenceSettings(Config):
    """How to ask a checkpoint and read its answer. The defaults are the only place they are written."""

    grid: tuple[int, int] = (16, 16)
    """(gh, gw) descriptor grid the MLLM answers with (Text4Seg's 16×16 by default)."""
    grid_rule: str = "nearest"
    """How training grids were made from masks (``text4seg.core.masks.GRID_RULES``); evaluation
    compares grids by the same rule."""
    grid_threshold: float = 0.5
    """Foreground fraction of the ``area`` grid rule."""
    template_set: str = "fixed"
    """``text4seg.core.templates`` set that phrases the question."""
    referring_label: str = "sentence"
    """Foreground label of referring answers: the expression itself or "target" (the word "text")."""
    instance_labels: int = 0
    """Also allow instance labels "<label> 1" … "<label> N" in answers (0: class labels only)."""
    refiner_flips: tuple[str, ...] = ()
    """Test-time flips of the ST-SAM refiner ("h", "v"): the mask is the mean of the views' logits."""
    refiner_zoom: bool = True
    """Refine each group of coarse cells in its own window, seen at least twice as large as in the
    whole-photo view and up to the photo's own pixels (``stsam_refiner.zoom``), instead of refining
    the photo shrunk whole."""
    refiner_description: str = "none"
    """Text given to the refiner's description prompt: none, the query, or the MLLM's own words."""
    reading: str = "none"
    """``text4seg.core.reading.READING_MODES``: "content" and "runs" list the words a reader finds, with
    their grid cells (spans, or the answer's own runs), in the prompt of content queries ("the word
    'OPEN'"), as the model was trained; "hint" gives the tower the outlines of the read words the
    query names as a fourth image channel."""
    colour_hint: bool = False
    """With ``reading: hint``: a colour query ("the red word") gets the pixels of the colours it names
    (``text4seg.core.colours.colour_hint``) as the hint channel, as the model was trained."""
    attribute_hint: bool = False
    """With ``reading: hint``: a colour, position or size query ("the red word", "the topmost text", "the
    largest text") gets the outlines of the read words it picks (``text4seg.core.selection``) as the hint
    channel, as a content query gets the words it names; takes the place of ``colour_hint``."""
    scene_text_hint: bool = False
    """With ``reading: hint``: a scene-text query gets the outlines of every word the reader reads as
    the hint channel, as the model was trained."""
    reading_adapter: bool = False
    """The checkpoint holds a peft adapter (``reading_adapter/``) switched on only for a query whose
    reading hint shows a read word (``reading: hint``); every other query, and every query under another
    reading mode, is answered by the checkpoint's own weights."""
    empty_hint_adapter: bool = False
    """With ``reading_adapter``: the adapter is also on for a query that asked the reader and got an empty
    hint (no read word is named or picked), as an adapter trained with ``empty_hint_rows`` learned to
    answer it; False: such a query is answered by the checkpoint's own weights."""
    hint_clip: int | None = None
    """With ``reading: hint``: the refined mask of a query whose hint shows a read word is kept within
    that many pixels of the hint (the read words' outlines); None: not clipped. The answer of a hinted
    query often strays a cell row off its words, and the refiner follows it onto their neighbours."""
    hint_snap: int = 0
    """With ``reading: hint``: a query whose hint shows a read word has the refiner prompted with its
    answer's cells plus the hint's cells (gridded by ``grid_rule``) at most this many cell rows above or
    below an answer cell in the same column (0: the answer's cells only). The answer itself is kept."""
    text_gate: int | None = None
    """The refined mask of a scene-text or referring query is kept within that many pixels of where the
    word reader's detector sees text (``WordReader.text_regions``: its rectangles in every view); None:
    not gated. A mask ``hint_clip`` already kept on its hint is not gated again, and semantic queries
    ("person|car") never are. The refiner, trained on synthetic scenes, marks texture beside the words
    of a real photo; the detector, trained on real photos, does not box it."""
    max_new_tokens: int | None = None
    """Generation budget (None: enough for the longest answer of the grid)."""

    def __post_init__(self) -> None:
        grid = tuple(int(v) for v in (self.grid if not isinstance(self.grid, int) else (self.grid,) * 2))
        if len(grid) != 2 or min(grid) < 1:
            raise ValueError(f"grid must be two positive sizes, got {self.grid}")
        object.__setattr__(self, "grid", grid)
        object.__setattr__(self, "refiner_flips", tuple(self.refiner_flips))
        if not set(self.refiner_flips) <= set(FLIPS):
            raise ValueError(f"refiner_flips {list(self.refiner_flips)} must be drawn from {sorted(FLIPS)}")
        if self.grid_rule not in GRID_RULES:
            raise ValueError(f"grid_rule {self.grid_rule!r} not in {GRID_RULES}")
        if not 0.0 < self.grid_threshold <= 1.0:
            raise ValueError(f"grid_threshold {self.grid_threshold} outside (0, 1]")
        if self.referring_label not in REFERRING_LABELS:
            raise ValueError(f"referring_label {self.referring_label!r} not in {REFERRING_LABELS}")
        if self.instance_labels < 0:
            raise ValueError(f"instance_labels {self.instance_labels} must be >= 0")
        if self.refiner_description not in DESCRIPTION_SOURCES:
            raise ValueError(f"refiner_description {self.refiner_description!r} not in {DESCRIPTION_SOURCES}")
        if self.reading not in READING_MODES:
            raise ValueError(f"reading {self.reading!r} not in {READING_MODES}")
        if self.hint_clip is not None and self.hint_clip < 0:
            raise ValueError(f"hint_clip {self.hint_clip} must be >= 0 pixels, or null for no clipping")
        if self.text_gate is not None and self.text_gate < 0:
            raise ValueError(f"text_gate {self.text_gate} must be >= 0 pixels, or null for no gating")
        if self.empty_hint_adapter and not self.reading_adapter:
            raise ValueError(
                "empty_hint_adapter switches a reading adapter on: it needs reading_adapter: true"
            )
        if self.hint_snap < 0:
            raise ValueError(f"hint_snap {self.hint_snap} must be >= 0 cell rows")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens {self.max_new_tokens} must be >= 1")


def save_inference_settings(folder: str | Path, settings: InferenceSettings) -> Path:
    """Write ``folder/inference.json`` (call it wherever a checkpoint folder is saved)."""
    path = Path(folder) / INFERENCE_FILE
    path.write_text(json.dumps(settings.to_dict(), indent=1) + "\n", encoding="utf-8")
    return path


def load_inference_settings(folder: str | Path) -> InferenceSettings | None:
    """The checkpoint's settings, or None when the folder has no ``inference.json``.

    An unknown key or an invalid value is a ``ValueError`` naming the file.
    """
    path = Path(folder) / INFERENCE_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return InferenceSettings.from_dict(data, source=str(path))


def settings_fields() -> tuple[str, ...]:
    """Names of the fields an ``inference.json`` holds."""
    return tuple(f.name for f in fields(InferenceSettings))


def describe_overrides(base: InferenceSettings, overrides: dict[str, Any], *, source: str) -> list[str]:
    """One line per field a flag changes, e.g. "grid (8, 8) from DIR/inference.json -> (16, 16) (flag)"."""
    lines = []
    for name, value in overrides.items():
        old = getattr(base, name)
        if value != old:
            lines.append(f"{name} {old!r} from {source} -> {value!r} (flag)")
    return lines
