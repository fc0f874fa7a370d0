"""Evaluation samples from any supported dataset, in one order every process agrees on.

Real datasets come through ``data_builders.readers`` (their published layouts); ``synthetic`` is an
Arrow folder written by ``python -m data_builders.synthetic`` (scene-text samples, or its referring
expressions with ``task="referring"``). Sample ``i`` is the i-th in reader order, which is what
sharding (``i::N``) and resuming (by ``sample_id``) rely on.

Datasets in ``PHOTO_DATASETS`` (ICDAR 2015) have word polygons for truth; their samples also carry
those polygons (``EvalSample.photo``) so each is scored with ``text4seg.core.photo_metrics`` as well.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_builders.readers import build_reader
from data_builders.readers.icdar15 import WordPhoto
from data_builders.records import Record
from data_builders.synthetic.writers import decode_rle

EVAL_DATASETS = (
    "textseg",
    "totaltext",
    "icdar13",
    "icdar15",
    "hiertext",
    "refcoco",
    "refcoco+",
    "refcocog",
    "grefcoco",
    "synthetic",
)
PHOTO_DATASETS = ("icdar15",)
"""Datasets whose truth is word polygons (their reader's ``photo_records(split)`` pairs each record
with its ``WordPhoto``): scored with the word-level photo metrics as well as against the polygons' mask."""
SCENE_TEXT_QUERY = "text"


@dataclass(frozen=True)
class EvalSample:
    """One image and its target."""

    index: int
    """Position in the dataset's sample order (0-based)."""
    sample_id: str
    """Unique id (the reader's ``source_id``, plus ``#ref<k>`` for synthetic referring samples)."""
    image: np.ndarray
    """H×W×3 uint8 RGB."""
    mask: np.ndarray
    """H×W bool ground truth."""
    ignore: np.ndarray | None
    """H×W bool pixels left out of scene-text scoring, or None."""
    task: str
    """scene_text or referring."""
    query: str
    """What the model is asked to segment ("text" or the referring expression)."""
    n_targets: int | None = None
    """Referring samples: how many instances the expression picks (gRefCOCO's several targets), when
    the dataset gives them; None when it gives none (scene text, a reader's no-target record)."""
    photo: WordPhoto | None = None
    """The word polygons and don't-care flags, in this image's pixels (``PHOTO_DATASETS``), or None."""


def match_split(name: str, splits: tuple[str, ...]) -> str:
    """The dataset's own split name for ``name`` in any case ("Test" → "test")."""
    for split in splits:
        if split.lower() == name.lower():
            return split
    raise ValueError(f"split {name!r} not in {splits}")


def _reader_samples(dataset: str, root: Path, split: str) -> Iterator[EvalSample]:
    # Opened here, not in the generator, so a wrong root or split fails before anything is evaluated.
    reader = build_reader(dataset, root=root)
    split = match_split(split, reader.splits)
    if dataset in PHOTO_DATASETS:
        # One pass gives each record its photo: reading photos() apart would warn of each bad file twice.
        return _records_as_samples(reader.photo_records(split))
    return _records_as_samples((None, record) for record in reader.records(split))


def _records_as_samples(pairs: Iterable[tuple[WordPhoto | None, Record]]) -> Iterator[EvalSample]:
    """A reader's records as samples, each with its word polygons (PHOTO_DATASETS) or None."""
    for index, (photo, record) in enumerate(pairs):
        if record.mask is None:
            raise ValueError(f"{record.source_id}: task {record.task!r} has no binary mask to evaluate")
        query = SCENE_TEXT_QUERY if record.task == "scene_text" else record.text
        n_targets = (
            len(record.instance_masks) if record.task == "referring" and record.instance_masks else None
        )
        yield EvalSample(
            index, record.source_id, record.image, record.mask, record.ignore, record.task, query, n_targets,
            photo,
        )  # fmt: skip


def _synthetic_samples(root: Path, split: str, task: str) -> Iterator[EvalSample]:
    # Opened here, not in the generator, so a wrong split fails before anything is evaluated.
    import datasets

    data = datasets.load_from_disk(str(root))
    splits = data["split"]
    wanted = match_split(split, tuple(sorted(set(splits))))
    # Rows are picked by position rather than with Dataset.filter, which would write cache files into
    # the dataset folder (a race when several evaluation processes open it at once).
    positions = [i for i, s in enumerate(splits) if s == wanted]
    return _synthetic_rows_as_samples(data, positions, task)


def _synthetic_rows_as_samples(data, positions: list[int], task: str) -> Iterator[EvalSample]:
    """The Arrow rows at ``positions`` as samples: one per row for scene text, one per expression
    for ``task="referring"``."""
    index = 0
    for position in positions:
        row = data[position]
        image = np.asarray(row["image"].convert("RGB"))
        mask = np.asarray(row["mask"].convert("L")) > 127
        if task == "scene_text":
            yield EvalSample(index, row["source_id"], image, mask, None, "scene_text", SCENE_TEXT_QUERY)
            index += 1
            continue
        instances = [decode_rle(text) for text in row["instance_masks"]]
        for k, expression in enumerate(row["referring"]):
            target = np.zeros(mask.shape, bool)
            for i in expression["targets"]:
                target |= instances[i]
            sample_id = f"{row['source_id']}#ref{k}"
            yield EvalSample(
                index, sample_id, image, target, None, "referring", expression["sentence"],
                len(expression["targets"]),
            )  # fmt: skip
            index += 1


def iter_samples(
    dataset: str, *, root: str | Path, split: str, task: str = "scene_text"
) -> Iterator[EvalSample]:
    """Samples of ``dataset`` in a fixed order. ``task`` only matters for ``synthetic``. The dataset is
    opened by this call, so a wrong root (LayoutError, FileNotFoundError) or split (ValueError)
    raises here, not on the first sample."""
    if dataset not in EVAL_DATASETS:
        raise ValueError(f"dataset {dataset!r} not in {EVAL_DATASETS}")
    if task not in ("scene_text", "referring"):
        raise ValueError(f"task {task!r} not in ('scene_text', 'referring')")
    root = Path(root)
    if dataset == "synthetic":
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: no such synthetic Arrow folder")
        return _synthetic_samples(root, split, task)
    return _reader_samples(dataset, root, split)
