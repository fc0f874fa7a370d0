"""The ST-SAM refiner: segment-anything's ``Sam`` plus adapters, prompts, alignment and HR head.

Data path for a batch of B square, normalised, padded images (S×S) and coarse-mask logits (M×M,
M = S/4, SAM's ``mask_input`` frame):

1. sparse text tokens (queries + general sentences + description) → TextAffine → B×L×D;
2. SAM's ViT with adapters (SAM-PTx: the pooled text vector goes into every MLP-parallel adapter)
   → image embedding I (B×D×e×e, e = S/16); with alignment, I + Î;
3. dense prompt = SAM's PromptEncoder on the coarse-mask logits (its own mask-downscaling path)
   + the SegFormer dense visual prompt;
4. SAM's MaskDecoder with sparse = [points…, text tokens] (single-mask output, token 0);
5. HR head on the decoder's upscaled features → B×1×S×S logits.

With every addition disabled this is exactly ``Sam`` (tested against ``SamPredictor``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from segment_anything.modeling import Sam
from torch import nn

from stsam_refiner.adapters import AdaptedBlock, encode_image, insert_adapters
from stsam_refiner.config import RefinerConfig
from stsam_refiner.dense_prompt import DenseVisualPrompt
from stsam_refiner.hr_head import HRHead, capture_decoder_features
from stsam_refiner.text_encoders import FrozenTextEncoder
from stsam_refiner.text_prompt import CrossModalAlignment, SparseTextPrompt


@dataclass
class RefinerOutput:
    """Refiner predictions in the model's padded S×S input frame."""

    low_res_logits: torch.Tensor
    """B×1×M×M float logits from SAM's mask decoder (M = S/4)."""
    iou_pred: torch.Tensor
    """B×1 float predicted IoU of the low-res mask."""
    hr_logits: torch.Tensor | None
    """B×1×S×S float logits from the HR head, or None when it is disabled."""

    @property
    def best_logits(self) -> torch.Tensor:
        """HR logits when present, else the low-res ones (B×1×·×·)."""
        return self.hr_logits if self.hr_logits is not None else self.low_res_logits


class STSAMRefiner(nn.Module):
    """Coarse mask (+ text) → refined mask. Build with :func:`stsam_refiner.build.build_refiner`."""

    def __init__(
        self,
        *,
        cfg: RefinerConfig,
        sam: Sam,
        text_encoder: FrozenTextEncoder | None = None,
        sentences: Sequence[str] = (),
        sam_base_keys: frozenset[str] = frozenset(),
    ) -> None:
        """sentences: the general text-prompt sentences (saved with the checkpoint);
        sam_base_keys: SAM state keys filled from an official checkpoint (not stored again)."""
        super().__init__()
        self.cfg = cfg
        self.sam = sam
        self.sentences = tuple(sentences)
        self._sam_base_keys = frozenset(sam_base_keys)
        dim = sam.prompt_encoder.embed_dim
        if cfg.text_prompt.enabled and text_encoder is None:
            raise ValueError("text_prompt.enabled needs a text encoder")
        text_dim = text_encoder.dim if text_encoder is not None else None
        if cfg.adapter.enabled:
            insert_adapters(sam.image_encoder, cfg.adapter, text_dim=text_dim)
        self.text_prompt = (
            SparseTextPrompt(cfg=cfg.text_prompt, encoder=text_encoder, sentences=sentences, out_dim=dim)
            if cfg.text_prompt.enabled
            else None
        )
        self.alignment = CrossModalAlignment(cfg=cfg.alignment, dim=dim) if cfg.alignment.enabled else None
        self.dense_prompt = (
            DenseVisualPrompt(cfg=cfg.dense_prompt, out_chans=dim, mask_size=cfg.sam.mask_size)
            if cfg.dense_prompt.enabled
            else None
        )
        self.hr_head = HRHead(cfg=cfg.hr_head, decoder_dim=dim) if cfg.hr_head.enabled else None
        self.apply_freezing()

    def apply_freezing(self) -> None:
        """ST-SAM's trainable set: adapters, mask decoder and every addition; SAM's encoders frozen."""
        if not self.cfg.sam.freeze:
            return
        self.sam.image_encoder.requires_grad_(False)
        self.sam.prompt_encoder.requires_grad_(False)
        for block in self.sam.image_encoder.blocks:
            if isinstance(block, AdaptedBlock):
                block.attn_adapter.requires_grad_(True)
                block.mlp_adapter.requires_grad_(True)

    @property
    def base_keys(self) -> frozenset[str]:
        """State keys filled from base checkpoints (official SAM, pretrained SegFormer): a project
        checkpoint does not store them unless they were trained."""
        keys = {f"sam.{k}" for k in self._sam_base_keys}
        if self.dense_prompt is not None and self.cfg.dense_prompt.pretrained:
            keys |= {f"dense_prompt.segformer.{k}" for k in self.dense_prompt.segformer.state_dict()}
        return frozenset(keys)

    @property
    def image_size(self) -> int:
        """Square model input side S."""
        return self.sam.image_encoder.img_size

    def forward(
        self,
        images: torch.Tensor,
        mask_prompt: torch.Tensor | None = None,
        *,
        descriptions: Sequence[str | None] | None = None,
        points: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> RefinerOutput:
        """images: B×3×S×S normalised+padded; mask_prompt: B×1×M×M logits; points: (B×N×2, B×N)."""
        batch = images.shape[0]
        text = self.text_prompt(batch, descriptions) if self.text_prompt is not None else None
        ptx = text.pooled if (text is not None and self.cfg.adapter.parallel_text) else None
        embeddings = encode_image(self.sam.image_encoder, images, ptx)
        image_pe = self.sam.prompt_encoder.get_dense_pe()
        if self.alignment is not None:
            embeddings = embeddings + self.alignment(embeddings, image_pe, text.tokens)
        visual = self.dense_prompt(images) if self.dense_prompt is not None else None
        lows, ious, hrs = [], [], []
        # SAM's decoder pairs one image with a batch of prompts, so images go through one by one.
        for i in range(batch):
            sparse, dense = self.sam.prompt_encoder(
                points=(points[0][i : i + 1], points[1][i : i + 1]) if points is not None else None,
                boxes=None,
                masks=mask_prompt[i : i + 1] if mask_prompt is not None else None,
            )
            if visual is not None:
                dense = dense + visual[i : i + 1]
            if text is not None and self.cfg.text_prompt.to_decoder:
                sparse = torch.cat([sparse, text.tokens[i : i + 1]], dim=1)
            with capture_decoder_features(self.sam.mask_decoder) as feats:
                low, iou = self.sam.mask_decoder(
                    image_embeddings=embeddings[i : i + 1],
                    image_pe=image_pe,
                    sparse_prompt_embeddings=sparse,
                    dense_prompt_embeddings=dense,
                    multimask_output=False,
                )
            lows.append(low)
            ious.append(iou)
            if self.hr_head is not None:
                hrs.append(self.hr_head(feats.upscaled, feats.mask_tokens[:, 0], low, images[i : i + 1]))
        return RefinerOutput(
            low_res_logits=torch.cat(lows),
            iou_pred=torch.cat(ious),
            hr_logits=torch.cat(hrs) if hrs else None,
        )


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(total, trainable) parameter counts (buffers and the frozen text encoder excluded)."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable
