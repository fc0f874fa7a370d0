"""Ask the MLLM for a segmentation and read its answer into coarse masks, optionally streaming rows.

`segment(model, processor, image, query)` builds the user turn with the same templates the training
conversations use (`text4seg.core.templates`), generates (grammar-constrained by default), parses the
answer with `text4seg.core.parser.parse_answer` and upsamples each class's grid to the image size.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from text4seg.core.codec import BACKGROUND, SEG_OPEN
from text4seg.core.inference import InferenceSettings
from text4seg.core.masks import upsample_grid
from text4seg.core.parser import Repair, parse_answer
from text4seg.core.reading import with_reading
from text4seg.core.templates import TemplateSet, build_inputs, get_template_set
from text4seg.mllm.collator import with_hint
from text4seg.mllm.lora import reading_adapter_on


@dataclass(frozen=True)
class RowUpdate:
    """One descriptor row, delivered as soon as its row break has been generated."""

    index: int
    """0-based grid row."""
    labels: list[str]
    """W labels of the row (parsed tolerantly; repairs are reported in the final result)."""
    seconds: float
    """Time since generation started."""


@dataclass
class CoarseMaskResult:
    """What the MLLM answered and the coarse masks it decodes to.

    text: the generated answer (special tokens removed).
    grid: H×W labels (background "others").
    labels: distinct labels in the grid, background first.
    repairs: what the parser had to fix (always empty under constrained decoding).
    masks: label → Himg×Wimg bool mask (nearest upsampling of the grid), one per requested label.
    num_tokens: generated tokens, eos included.
    seconds: wall time of generation (prompt processing + decoding).
    first_row_seconds: time until the first descriptor row was complete (None if there was none).
    failed: the parser found no descriptor at all.
    """

    text: str
    grid: list[list[str]]
    labels: list[str]
    repairs: list[Repair]
    masks: dict[str, np.ndarray]
    num_tokens: int
    seconds: float
    first_row_seconds: float | None = None
    failed: bool = False
    rows: list[RowUpdate] = field(default_factory=list, repr=False)
    """Rows in arrival order (streaming record)."""


def query_labels(task: str, target: str) -> list[str]:
    """Labels an answer to `target` may use besides background: semantic queries join classes with `|`."""
    if task == "semantic":
        return [name.strip() for name in target.split("|") if name.strip()]
    return [target]


def default_max_new_tokens(height: int, width: int) -> int:
    """A budget that fits typical answers (a few runs per row) with room for the sentence."""
    return 64 + height * (4 * max(2, width // 4) + 2)


class _RowStreamer:
    """A transformers streamer (put/end) that decodes completed descriptor rows as tokens arrive."""

    def __init__(self, *, tokenizer, width: int, labels: Sequence[str], on_row, start: float) -> None:
        self.tokenizer, self.width, self.labels = tokenizer, width, list(labels)
        self.on_row, self.start = on_row, start
        self.ids: list[int] = []
        self.rows: list[RowUpdate] = []
        self._seen_prompt = False

    def put(self, value) -> None:
        if not self._seen_prompt:  # generate() first hands over the prompt
            self._seen_prompt = True
            return
        self.ids.extend(int(v) for v in value.reshape(-1).tolist())
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        opened = text.find(SEG_OPEN)
        if opened < 0:
            return
        finished = text[opened + len(SEG_OPEN) :].split("\n")[:-1]
        for index in range(len(self.rows), len(finished)):
            parsed = parse_answer(
                finished[index].strip(), height=1, width=self.width, known_labels=self.labels
            )
            update = RowUpdate(index=index, labels=parsed.grid[0], seconds=time.perf_counter() - self.start)
            self.rows.append(update)
            if self.on_row is not None:
                self.on_row(update)

    def end(self) -> None:
        return None


def segment(
    model,
    processor,
    image,
    query: str,
    *,
    task: str = "scene_text",
    labels: Sequence[str] | None = None,
    grid: tuple[int, int] | None = None,
    constrained: bool = True,
    answer_sentence: str = "free",
    templates: TemplateSet | None = None,
    max_new_tokens: int | None = None,
    masks_cache: dict | None = None,
    on_row: Callable[[RowUpdate], None] | None = None,
    context: str = "",
    hint=None,
    adapter: bool | None = None,
) -> CoarseMaskResult:
    """Segment `query` in `image` (HWC uint8 array or PIL image) with the MLLM.

    grid: (gh, gw) descriptor grid (None: ``InferenceSettings``' default; pipelines pass the checkpoint's).
    labels: the foreground labels the answer may use (default from `query_labels(task, query)`).
    constrained: mask logits with the R-RLE grammar (`text4seg.mllm.constrained`); False decodes freely.
    answer_sentence: "free" lets the model write its sentence; "template" forces the template's.
    masks_cache: a dict the caller keeps across calls; grammar masks are stored in it per (grid, labels,
        sentence), so repeated queries skip rebuilding them.
    on_row: called with each `RowUpdate` as rows complete (streaming).
    context: a line put after the image token's line (``text4seg.core.reading``: the words read), for a
        model trained with it; "" leaves the prompt as the templates write it.
    hint: an H×W reading-hint mask (``text4seg.core.reading.hint_mask``) given to the tower as a
        fourth image channel, for a model whose tower has ``reading_hint``; None gives none.
    adapter: whether the model's reading adapter, if it has one, answers; None: when ``hint`` shows a
        read word (``inference.json`` ``empty_hint_adapter`` has pipelines pass ``hint is not None``).
    """
    import torch

    if answer_sentence not in ("free", "template"):
        raise ValueError(f"answer_sentence {answer_sentence!r} not in ('free', 'template')")
    templates = templates or get_template_set("fixed")
    grid = tuple(grid) if grid is not None else InferenceSettings().grid
    height, width = grid
    labels = list(labels) if labels is not None else query_labels(task, query)
    max_new_tokens = max_new_tokens or default_max_new_tokens(height, width)
    sentence = templates.answer_sentence(task, query) if answer_sentence == "template" else None
    question = templates.question(task, query)
    question = with_reading(question, context) if context else question
    inputs = build_inputs(processor, image, question)
    if hint is not None:
        inputs["pixel_values"] = with_hint(inputs["pixel_values"], hint)
    inputs = inputs.to(model.device)
    processors = []
    if constrained:
        grammar = _grammar_processor(processor.tokenizer, grid, labels, sentence, max_new_tokens, masks_cache)
        processors.append(grammar)
    start = time.perf_counter()
    streamer = _RowStreamer(
        tokenizer=processor.tokenizer, width=width, labels=labels, on_row=on_row, start=start
    )
    if adapter is None:
        adapter = hint is not None and bool(np.asarray(hint).any())
    with torch.no_grad(), reading_adapter_on(model, adapter):
        output = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            logits_processor=processors,
            streamer=streamer,
        )
    seconds = time.perf_counter() - start
    new_ids = output[0, inputs["input_ids"].shape[1] :].tolist()
    return _result(processor, new_ids, image, (height, width), labels, seconds, streamer.rows)


def _grammar_processor(tokenizer, grid, labels, sentence, max_new_tokens, cache):
    # lazy: constrained imports transformers at module level; free decoding never needs it
    from text4seg.mllm.constrained import RrleLogitsProcessor, masks_for

    cache = cache if cache is not None else {}
    key = (*grid, tuple(labels), sentence)
    if key not in cache:
        cache[key] = masks_for(tokenizer, height=grid[0], width=grid[1], labels=labels, sentence=sentence)
    return RrleLogitsProcessor(masks=cache[key], max_new_tokens=max_new_tokens)


def _image_size(image) -> tuple[int, int]:
    if hasattr(image, "size") and not isinstance(image, np.ndarray):
        width, height = image.size
        return height, width
    return tuple(np.asarray(image).shape[:2])


def _result(processor, new_ids, image, grid, labels, seconds, rows) -> CoarseMaskResult:
    tokenizer = processor.tokenizer
    pad = tokenizer.pad_token_id
    if tokenizer.eos_token_id in new_ids:
        new_ids = new_ids[: new_ids.index(tokenizer.eos_token_id) + 1]
    new_ids = [i for i in new_ids if i != pad or i == tokenizer.eos_token_id]
    text = tokenizer.decode(new_ids, skip_special_tokens=True)
    parsed = parse_answer(text, height=grid[0], width=grid[1], known_labels=labels)
    size = _image_size(image)
    masks = {label: upsample_grid(parsed.mask(label), size=size) for label in labels if label != BACKGROUND}
    return CoarseMaskResult(
        text=text,
        grid=parsed.grid,
        labels=parsed.labels,
        repairs=parsed.repairs,
        masks=masks,
        num_tokens=len(new_ids),
        seconds=seconds,
        first_row_seconds=rows[0].seconds if rows else None,
        failed=parsed.failed,
        rows=rows,
    )


def iter_segment(model, processor, image, query: str, **kwargs) -> Iterator[RowUpdate | CoarseMaskResult]:
    """`segment` as a generator: yields each `RowUpdate` as it is decoded, then the `CoarseMaskResult`.

    Generation runs in a worker thread (torch releases the GIL while computing), so a UI can show
    rows while later ones are still being generated. Errors in generation are re-raised here.
    """
    import queue
    import threading

    if "on_row" in kwargs:
        raise ValueError("iter_segment yields the rows itself; do not pass on_row")
    events: queue.Queue = queue.Queue()
    done = object()

    def work() -> None:
        try:
            events.put(segment(model, processor, image, query, on_row=events.put, **kwargs))
        except BaseException as error:  # handed to the consumer, raised there
            events.put(error)
        finally:
            events.put(done)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    while (event := events.get()) is not done:
        if isinstance(event, BaseException):
            raise event
        yield event
    worker.join()
