"""Chat samples -> model batches with loss only on the assistant's answer, checked token by token.

A sample is a row of the conversation builder's Arrow dataset: ``image`` (PIL), ``messages``
(``[{"role", "content"}]``, the user turn starting with ``"<image>\\n"``) and ``source_id``.
Each sample is rendered with the processor's own chat template, the same one generation uses, then:

- the prompt (everything up to and including the generation prompt) is found as a text prefix of
  the full rendering, so the collator works with any template, with or without ``{% generation %}``;
- labels cover the answer tokens and the end-of-turn token (so the model learns to stop); every
  other position, the image tokens included, is ``ignore_index``;
- the unmasked label tokens must decode back to exactly ``answer + eos``. Any mismatch (a template
  that rewrites the answer, BPE merging across the prompt/answer boundary, truncation, a template
  without an end-of-turn token) raises ``ValueError`` naming the sample: a silently blanked label
  only shows up much later as a suspicious "loss 0.0".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

IMAGE_PREFIX = "<image>\n"
"""How the conversation builder marks the image at the start of the user turn."""


def to_template_messages(messages: Sequence[dict]) -> list[dict]:
    """Dataset messages -> chat-template messages with a structured image part.

    ``"<image>\\n"`` at the start of a user turn becomes ``{"type": "image"}`` followed by the rest
    as text, so each architecture's template writes its own image placeholder (LLaVA ``<image>``,
    Qwen2-VL ``<|vision_start|><|image_pad|><|vision_end|>``). Other turns pass through unchanged.
    """
    out = []
    for message in messages:
        content = message["content"]
        if message["role"] == "user" and content.startswith(IMAGE_PREFIX):
            parts = [{"type": "image"}, {"type": "text", "text": content[len(IMAGE_PREFIX) :]}]
            out.append({"role": "user", "content": parts})
        else:
            out.append({"role": message["role"], "content": content})
    return out


def with_hint(pixel_values, hint):
    """1×3×S×S processor pixels → 1×4×S×S with ``hint`` (an H×W mask, PIL "L" or array, 0-255; None:
    no hint) resized to S×S and scaled to [0, 1] as the fourth channel (``text4seg.core.reading.hint_mask``).
    The processor resizes the image to S×S without cropping, so the hint is resized the same way."""
    import numpy as np
    import torch
    from PIL import Image

    size = tuple(pixel_values.shape[-2:])
    channel = torch.zeros((pixel_values.shape[0], 1, *size), dtype=pixel_values.dtype)
    if hint is not None:
        image = hint if isinstance(hint, Image.Image) else Image.fromarray(np.asarray(hint, np.uint8))
        resized = np.asarray(image.convert("L").resize(size[::-1], Image.BILINEAR), np.float32) / 255.0
        channel[:] = torch.from_numpy(resized)
    return torch.cat([pixel_values, channel], dim=1)


@dataclass(kw_only=True)
class Rendered:
    """One sample after templating and tokenization (before padding)."""

    input_ids: list[int]
    """Token ids, image placeholders already expanded by the processor; length L."""
    labels: list[int]
    """Same length L; ``ignore_index`` except on the answer tokens and the end-of-turn token."""
    extras: dict[str, Any]
    """Processor outputs other than ids/mask (``pixel_values``, ``image_grid_thw``, ...), batch dim 1."""


class ChatCollator:
    """Turns dataset rows into a padded batch: ``input_ids``, ``attention_mask``, ``labels`` + image tensors.

    Args:
        processor: the model's HF processor (tokenizer, image processor, chat template).
        max_length: longest allowed sequence; a longer sample raises instead of losing its answer.
        ignore_index: label value the loss skips (HF models use -100).
        chat_template: optional Jinja template overriding the processor's (tests use it to break it).
    """

    def __init__(self, *, processor, max_length: int = 2048, ignore_index: int = -100, chat_template=None):
        if max_length < 2:
            raise ValueError(f"max_length {max_length} must be >= 2")
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.max_length = max_length
        self.ignore_index = ignore_index
        self.chat_template = chat_template
        if self.tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no pad token; batches cannot be padded")
        if self.tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no eos token; the model could not learn to stop")

    def __call__(self, rows: Sequence[dict]) -> dict:
        return self.pad([self.render(row, index=i) for i, row in enumerate(rows)])

    # --- one sample -----------------------------------------------------------------------------

    def _template(self, messages: list[dict], *, generation_prompt: bool) -> str:
        return self.processor.apply_chat_template(
            messages,
            tokenize=False,
            add_generation_prompt=generation_prompt,
            chat_template=self.chat_template,
        )

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def render(self, row: dict, *, index: int = 0) -> Rendered:
        """Template, tokenize and label one row; raises ``ValueError`` naming the sample on any mismatch."""
        name = f"sample {row.get('source_id', index)!r}"
        messages = to_template_messages(row["messages"])
        if not messages or messages[-1]["role"] != "assistant":
            raise ValueError(f"{name}: the last message must be the assistant's answer")
        answer = messages[-1]["content"]
        prompt = self._template(messages[:-1], generation_prompt=True)
        full = self._template(messages, generation_prompt=False)
        if not full.startswith(prompt + answer):
            raise ValueError(
                f"{name}: the chat template does not render prompt + answer verbatim "
                f"(expected the answer {answer[:40]!r}... right after the generation prompt)"
            )
        prompt_ids, with_answer_ids, full_ids = self._ids(prompt), self._ids(prompt + answer), self._ids(full)
        if full_ids[: len(with_answer_ids)] != with_answer_ids or full_ids[: len(prompt_ids)] != prompt_ids:
            raise ValueError(
                f"{name}: tokens merge across the prompt/answer/turn-end boundaries, "
                "so no set of label tokens is exactly the answer"
            )
        encoded = self.processor(  # H×W×C said outright: transformers misreads 1×1 and 3×W images
            images=[row["image"]],
            text=[full],
            return_tensors="pt",
            add_special_tokens=False,
            input_data_format="channels_last",
        )
        input_ids = encoded["input_ids"][0].tolist()
        tail = full_ids[len(prompt_ids) :]
        if input_ids[len(input_ids) - len(tail) :] != tail:
            raise ValueError(f"{name}: the processor's tokens end differently from the tokenizer's")
        labels = self._labels(input_ids, tail, len(with_answer_ids) - len(prompt_ids), name=name)
        self._check_labels(labels, answer, name=name)
        if len(input_ids) > self.max_length:
            raise ValueError(f"{name}: {len(input_ids)} tokens > max_length {self.max_length}")
        extras = {k: v for k, v in encoded.items() if k not in ("input_ids", "attention_mask")}
        if "hint" in row:  # rows built with reading "hint": the fourth image channel
            extras["pixel_values"] = with_hint(extras["pixel_values"], row["hint"])
        return Rendered(input_ids=input_ids, labels=labels, extras=extras)

    def _labels(self, input_ids: list[int], tail: list[int], n_answer: int, *, name: str) -> list[int]:
        """Unmask the answer tokens and the first end-of-turn token after them."""
        eos = self.tokenizer.eos_token_id
        after = tail[n_answer:]
        if eos not in after:
            raise ValueError(f"{name}: the template ends the assistant turn without the eos token {eos}")
        n_label = n_answer + after.index(eos) + 1
        start = len(input_ids) - len(tail)
        labels = [self.ignore_index] * len(input_ids)
        labels[start : start + n_label] = input_ids[start : start + n_label]
        return labels

    def _check_labels(self, labels: list[int], answer: str, *, name: str) -> None:
        kept = [t for t in labels if t != self.ignore_index]
        if not kept or kept[-1] != self.tokenizer.eos_token_id:
            raise ValueError(f"{name}: labels do not end with the eos token")
        decoded = self.tokenizer.decode(kept[:-1], skip_special_tokens=False)
        if decoded != answer:
            raise ValueError(
                f"{name}: the {len(kept) - 1} unmasked label tokens decode to {decoded[:60]!r}..., "
                f"not the answer {answer[:60]!r}..."
            )

    # --- batch ----------------------------------------------------------------------------------

    def pad(self, samples: Sequence[Rendered]) -> dict:
        """Right-pad to the longest sample; image tensors are concatenated along dim 0."""
        import torch

        longest = max(len(s.input_ids) for s in samples)
        pad_id = self.tokenizer.pad_token_id
        batch = {
            "input_ids": torch.full((len(samples), longest), pad_id, dtype=torch.long),
            "attention_mask": torch.zeros((len(samples), longest), dtype=torch.long),
            "labels": torch.full((len(samples), longest), self.ignore_index, dtype=torch.long),
        }
        for i, sample in enumerate(samples):
            n = len(sample.input_ids)
            batch["input_ids"][i, :n] = torch.tensor(sample.input_ids)
            batch["attention_mask"][i, :n] = 1
            batch["labels"][i, :n] = torch.tensor(sample.labels)
        for key in samples[0].extras:
            batch[key] = self._merge_extra(key, [s.extras[key] for s in samples], longest)
        return batch

    @staticmethod
    def _merge_extra(key: str, values: list, longest: int):
        import torch

        if values[0].dim() == 2 and values[0].shape[0] == 1 and key.endswith("token_type_ids"):
            # Per-token side inputs (e.g. Qwen2-VL's mm_token_type_ids) are padded like the ids.
            out = torch.zeros((len(values), longest), dtype=values[0].dtype)
            for i, v in enumerate(values):
                out[i, : v.shape[1]] = v[0]
            return out
        return torch.cat(values, dim=0)
