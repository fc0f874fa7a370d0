"""Sparse text prompt (ST-SAM eq. 5–6) and cross-modal alignment (eq. 7–8).

Tokens, in order: L1 learnable queries, the L2 general sentences (LLM-written text attributes,
``configs/text_prompts.yaml``), and, optionally, one token for the image's own description (what
the MLLM says about the text's look). All live in the frozen encoder's space, then
``TextAffine`` (Linear + ReLU) maps them to the decoder width. The general sentences' embeddings
are computed once and kept as a buffer (saved with the checkpoint, so a reload does not depend
on the sentence file being unchanged).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from segment_anything.modeling.common import MLPBlock
from segment_anything.modeling.transformer import Attention
from torch import nn

from stsam_refiner.config import AlignmentConfig, TextPromptConfig, TextPromptSentences
from stsam_refiner.text_encoders import FrozenTextEncoder


def load_sentences(path: str | Path) -> list[str]:
    """The ``sentences`` list of a text-prompt YAML file (non-empty strings, stripped)."""
    return list(TextPromptSentences.from_yaml(path).sentences)


@dataclass
class TextTokens:
    """Sparse text prompt for a batch."""

    tokens: torch.Tensor
    """B×L×D float tokens after TextAffine (D = decoder width), L = L1 + L2 (+1 with description)."""
    pooled: torch.Tensor
    """B×E float mean of the token embeddings in the text encoder's space (E), for SAM-PTx."""


class SparseTextPrompt(nn.Module):
    """Learnable queries + cached general sentences + optional description → TextAffine tokens."""

    def __init__(
        self, *, cfg: TextPromptConfig, encoder: FrozenTextEncoder, sentences: Sequence[str], out_dim: int
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.use_description = cfg.use_description
        dim = encoder.dim
        general = encoder.encode(list(sentences)) if cfg.use_general else torch.zeros(0, dim)
        self.register_buffer("general", general)
        # Same scale as the unit-norm sentence embeddings they sit beside.
        self.queries = nn.Parameter(torch.randn(cfg.num_queries, dim) / dim**0.5)
        self.no_description = nn.Parameter(torch.zeros(dim)) if cfg.use_description else None
        self.affine = nn.Sequential(nn.Linear(dim, out_dim), nn.ReLU())

    @property
    def num_tokens(self) -> int:
        """Tokens per image."""
        return self.queries.shape[0] + self.general.shape[0] + int(self.use_description)

    def forward(self, batch_size: int, descriptions: Sequence[str | None] | None = None) -> TextTokens:
        """Tokens for ``batch_size`` images; ``descriptions`` has one entry (or None) per image."""
        shared = torch.cat([self.queries, self.general.to(self.queries.dtype)], dim=0)
        rows = shared.unsqueeze(0).expand(batch_size, -1, -1)
        if self.use_description:
            rows = torch.cat([rows, self._describe(batch_size, descriptions).unsqueeze(1)], dim=1)
        return TextTokens(tokens=self.affine(rows), pooled=rows.mean(dim=1))

    def _describe(self, batch_size: int, descriptions: Sequence[str | None] | None) -> torch.Tensor:
        if descriptions is not None and len(descriptions) != batch_size:
            raise ValueError(f"{len(descriptions)} descriptions for {batch_size} images")
        texts = list(descriptions or [None] * batch_size)
        given = [t for t in texts if t]
        encoded = dict(zip(given, self.encoder.encode(given), strict=True)) if given else {}
        device = self.queries.device
        return torch.stack(
            [encoded[t].to(device) if t else self.no_description for t in texts]  # type: ignore[index]
        )


class AlignmentLayer(nn.Module):
    """Image tokens cross-attend to text tokens, then an MLP; pre-residual LayerNorm like SAM's."""

    def __init__(self, *, dim: int, num_heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.cross_attn = Attention(dim, num_heads)
        self.norm1 = nn.LayerNorm(dim)
        self.mlp = MLPBlock(dim, mlp_dim)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, pos: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """x, pos: B×N×D image tokens and positions; text: B×L×D → B×N×D."""
        x = self.norm1(x + self.cross_attn(q=x + pos, k=text, v=text))
        return self.norm2(x + self.mlp(x))


class CrossModalAlignment(nn.Module):
    """Î = Ψ_CA(Q = I, K = V = text); the decoder then gets I + Î. Î is zero at initialisation."""

    def __init__(self, *, cfg: AlignmentConfig, dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            AlignmentLayer(dim=dim, num_heads=cfg.num_heads, mlp_dim=cfg.mlp_dim) for _ in range(cfg.depth)
        )
        self.out = nn.Linear(dim, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, image: torch.Tensor, image_pe: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """image: B×D×h×w, image_pe: 1×D×h×w, text: B×L×D → Î B×D×h×w."""
        b, d, h, w = image.shape
        x = image.flatten(2).transpose(1, 2)
        pos = image_pe.flatten(2).transpose(1, 2)
        for layer in self.layers:
            x = layer(x, pos, text)
        return self.out(x).transpose(1, 2).reshape(b, d, h, w)
