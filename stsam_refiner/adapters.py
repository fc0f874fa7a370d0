"""Two adapters per ViT block (Hi-SAM's design), optionally SAM-PTx text-conditioned.

``AdaptedBlock`` extends segment-anything's ``Block``: it takes over an existing block's modules
(``norm1``, ``attn``, ``norm2``, ``mlp`` keep their names, so official checkpoint keys still load)
and adds

- an attention-side adapter with a skip: ``x = shortcut + a + Adapter(a)``, ``a`` the attention output;
- an MLP-parallel adapter: ``x = x + MLP(LN(x)) + s * Adapter(LN(x))``, ``s = 0.5``.

With SAM-PTx's parallel text (REFERENCE.md §6, chosen form) the MLP-parallel adapter becomes
``s * Up(GELU(Down(LN(x)) + W_t t))`` for a per-image text vector ``t``.

Up-projections start at zero, so a freshly adapted encoder computes exactly what SAM computes.
"""

from __future__ import annotations

import torch
from segment_anything.modeling.image_encoder import (
    Block,
    ImageEncoderViT,
    window_partition,
    window_unpartition,
)
from torch import nn

from stsam_refiner.config import AdapterConfig


class Adapter(nn.Module):
    """``Linear(D→D/r) → GELU → Linear(D/r→D)``, up-projection zero-initialised.

    With ``text_dim`` set, a projected text vector (B×text_dim) is added to the bottleneck.
    """

    def __init__(self, *, dim: int, reduction: int, text_dim: int | None = None) -> None:
        super().__init__()
        hidden = max(1, dim // reduction)
        self.down = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.up = nn.Linear(hidden, dim)
        # Zero init: the adapted block starts as the pretrained block, so training starts from SAM.
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        self.text_proj = nn.Linear(text_dim, hidden) if text_dim else None

    def forward(self, x: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        """x: B×H×W×D; text: B×text_dim or None → B×H×W×D."""
        h = self.down(x)
        if self.text_proj is not None:
            if text is None:
                raise ValueError("this adapter was built with parallel text and needs a text vector")
            h = h + self.text_proj(text)[:, None, None, :]
        return self.up(self.act(h))


class AdaptedBlock(Block):
    """segment-anything ``Block`` plus the two adapters; built from an existing block."""

    def __init__(self, *, block: Block, cfg: AdapterConfig, text_dim: int | None = None) -> None:
        # Block.__init__ would create fresh layers; take over the given block's instead so that
        # pretrained weights and parameter names stay exactly as they are.
        nn.Module.__init__(self)
        self.norm1 = block.norm1
        self.attn = block.attn
        self.norm2 = block.norm2
        self.mlp = block.mlp
        self.window_size = block.window_size
        dim = block.norm1.normalized_shape[0]
        self.mlp_scale = cfg.mlp_scale
        self.attn_adapter = Adapter(dim=dim, reduction=cfg.reduction)
        self.mlp_adapter = Adapter(
            dim=dim, reduction=cfg.reduction, text_dim=text_dim if cfg.parallel_text else None
        )

    def forward(self, x: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        """x: B×H×W×D tokens; text: B×text_dim (parallel-text only) → B×H×W×D."""
        shortcut = x
        h = self.norm1(x)
        if self.window_size > 0:
            height, width = h.shape[1], h.shape[2]
            h, pad_hw = window_partition(h, self.window_size)
        h = self.attn(h)
        if self.window_size > 0:
            h = window_unpartition(h, self.window_size, pad_hw, (height, width))
        x = shortcut + h + self.attn_adapter(h)
        normed = self.norm2(x)
        return x + self.mlp(normed) + self.mlp_scale * self.mlp_adapter(normed, text)


def insert_adapters(encoder: ImageEncoderViT, cfg: AdapterConfig, *, text_dim: int | None = None) -> None:
    """Replace every block of ``encoder`` in place by an :class:`AdaptedBlock` wrapping it."""
    for i, block in enumerate(encoder.blocks):
        if isinstance(block, AdaptedBlock):
            raise ValueError(f"encoder block {i} already has adapters")
        encoder.blocks[i] = AdaptedBlock(block=block, cfg=cfg, text_dim=text_dim)


def encode_image(
    encoder: ImageEncoderViT, images: torch.Tensor, text: torch.Tensor | None = None
) -> torch.Tensor:
    """Run the ViT, passing ``text`` to adapted blocks (plain ``encoder(images)`` when text is None).

    images: B×3×S×S normalised, padded → B×C×S/16×S/16 image embedding.
    """
    if text is None:
        return encoder(images)
    x = encoder.patch_embed(images)
    if encoder.pos_embed is not None:
        x = x + encoder.pos_embed
    for block in encoder.blocks:
        x = block(x, text) if isinstance(block, AdaptedBlock) else block(x)
    return encoder.neck(x.permute(0, 3, 1, 2))
