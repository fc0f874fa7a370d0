"""How sure the MLLM was of each descriptor cell: token probabilities → a g×g confidence map.

The TSPP head can take soft class maps (``prompter.soft_class_maps``): the label the answer names
for a cell, weighted by the probability the MLLM gave that label. Generation does not keep those
probabilities, so they are recomputed with one teacher-forced forward pass over prompt + answer (the
same model and inputs as ``text4seg.mllm.generate.segment``, both built by
``text4seg.core.templates.build_inputs``): the probability of every answer token given everything
before it. A run ``label *N`` gives each of its N cells the lowest probability among
the tokens that spell its label — the label is the decision; counts and separators are bookkeeping.
"""

from __future__ import annotations

import re

import numpy as np

from text4seg.core.codec import SEG_CLOSE, SEG_OPEN
from text4seg.core.templates import build_inputs

_RUN = re.compile(r"(?P<label>[^|*\n]+?) \*(?P<count>\d+)")


def label_spans(answer: str, *, height: int, width: int) -> list[tuple[int, int, int, int, int]] | None:
    """(row, first column, count, label start, label end) of every run, character offsets into
    ``answer``; None when the block is missing or does not fill height × width exactly."""
    opened = answer.find(SEG_OPEN)
    closed = answer.find(SEG_CLOSE, opened + 1)
    if opened < 0 or closed < 0:
        return None
    base = opened + len(SEG_OPEN)
    block = answer[base:closed]
    spans, offset = [], base
    lines = block.split("\n")
    rows = [(line, start) for line, start in _with_offsets(lines, offset) if line.strip()]
    if len(rows) != height:
        return None
    for r, (line, start) in enumerate(rows):
        col = 0
        for match in _RUN.finditer(line):
            label_start = start + match.start("label") + (len(match["label"]) - len(match["label"].lstrip()))
            count = int(match["count"])
            spans.append((r, col, count, label_start, start + match.end("label")))
            col += count
        if col != width:
            return None
    return spans


def _with_offsets(lines: list[str], offset: int):
    for line in lines:
        yield line, offset
        offset += len(line) + 1


def cell_confidence(
    answer: str, offsets: list[tuple[int, int]], token_probs: np.ndarray, *, height: int, width: int
) -> np.ndarray | None:
    """g×g float32: per cell, the lowest probability of the tokens spelling its run's label.

    offsets: (start, end) characters of each answer token (a fast tokenizer's offset mapping);
    token_probs: the probability of each of those tokens. None when the answer has no clean block.
    """
    spans = label_spans(answer, height=height, width=width)
    if spans is None:
        return None
    probs = np.asarray(token_probs, dtype=np.float64)
    starts = np.array([s for s, _ in offsets])
    ends = np.array([e for _, e in offsets])
    out = np.ones((height, width), dtype=np.float32)
    for row, col, count, lo, hi in spans:
        covering = (starts < hi) & (ends > lo)
        if covering.any():
            out[row, col : col + count] = probs[covering].min()
    return out


def answer_token_probs(model, processor, image, question: str, answer: str) -> tuple[list, np.ndarray]:
    """Teacher-forced probabilities of the answer's tokens: (offsets, P(token | prefix) per token)."""
    import torch

    inputs = build_inputs(processor, image, question).to(model.device)
    encoded = processor.tokenizer(answer, add_special_tokens=False, return_offsets_mapping=True)
    answer_ids = torch.tensor([encoded["input_ids"]], dtype=inputs["input_ids"].dtype, device=model.device)
    prompt_len = inputs["input_ids"].shape[1]
    inputs["input_ids"] = torch.cat([inputs["input_ids"], answer_ids], 1)
    inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    with torch.no_grad():
        logits = model(**inputs).logits[0, prompt_len - 1 : -1].float()
    probs = logits.softmax(-1).gather(1, answer_ids[0, :, None])[:, 0]
    return list(encoded["offset_mapping"]), probs.cpu().numpy()


def descriptor_confidence(
    model, processor, image, question: str, answer: str, *, height: int, width: int
) -> np.ndarray | None:
    """g×g confidence of an answer the MLLM gave to ``question`` about ``image`` (None: no clean block)."""
    offsets, probs = answer_token_probs(model, processor, image, question, answer)
    return cell_confidence(answer, offsets, probs, height=height, width=width)
