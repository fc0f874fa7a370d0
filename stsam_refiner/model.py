"""The ST-SAM refiner: segment-anything's ``Sam`` plus adapters, prompts, alignment and HR head.

Data path for a batch of B square, normalised, padded images (S×S) and coarse-mask logits (M×M,
M = S/4, SAM's ``mask_input`` frame):

1. sparse text tokens (queries + general sentences + description) → TextAffine → B×L×D;
2. SAM's ViT with adapters (SAM-PTx: the pooled text vector goes into every MLP-parallel adapter)
   → image embedding I (B×D×e×e, e = S/16); with alignment, I + Î;
3. dense prompt = SAM's PromptEncoder on the coarse-mask logits (its own mask-downscaling path)
   + the dense visual prompt (a SegFormer, or the pretrained text backbone's features);
4. SAM's MaskDecoder with sparse = [points…, text tokens] (single-mask output, token 0);
5. HR head on the decoder's upscaled features (+ image, + text-backbone features) → B×1×S×S logits.

The text backbone (``text4seg.backbone``), when a part uses it, runs once per batch on the
un-normalised images and its features go to both the dense prompt and the HR head.

With every addition disabled this is exactly ``Sam`` (tested against ``SamPredictor``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from segment_anything.modeling import Sam
from torch import nn

from stsam_refiner.adapters import AdaptedBlock, encode_image, insert_adapters
from stsam_refiner.config import RefinerConfig
from stsam_refiner.dense_prompt import build_dense_prompt
from stsam_refiner.hr_head import HRHead, capture_decoder_features
from stsam_refiner.text_encoders import FrozenTextEncoder
from stsam_refiner.text_prompt import CrossModalAlignment, SparseTextPrompt
from text4seg.backbone import BackboneFeatures, TextBackbone


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
        text_backbone: TextBackbone | None = None,
    ) -> None:
        """sentences: the general text-prompt sentences (saved with the checkpoint);
        sam_base_keys: SAM state keys filled from an official checkpoint (not stored again);
        text_backbone: the pretrained text detector, when ``cfg.uses_text_backbone``."""
        super().__init__()
        if cfg.uses_text_backbone != (text_backbone is not None):
            need = "needs" if cfg.uses_text_backbone else "does not use"
            raise ValueError(f"this refiner config {need} a text backbone")
        self.cfg = cfg
        self.sam = sam
        self.text_backbone = text_backbone
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
            build_dense_prompt(
                cfg.dense_prompt,
                out_chans=dim,
                mask_size=cfg.sam.mask_size,
                quarter_channels=text_backbone.quarter_channels if text_backbone is not None else None,
            )
            if cfg.dense_prompt.enabled
            else None
        )
        self.hr_head = (
            HRHead(
                cfg=cfg.hr_head,
                decoder_dim=dim,
                half_channels=text_backbone.half_channels if text_backbone is not None else None,
            )
            if cfg.hr_head.enabled
            else None
        )
        self.apply_freezing()

    def apply_freezing(self) -> None:
        """ST-SAM's trainable set: adapters, mask decoder and every addition; SAM's encoders frozen;
        the text backbone frozen when its config says so."""
        if self.text_backbone is not None and self.cfg.text_backbone.freeze:
            self.text_backbone.requires_grad_(False)
        if not self.cfg.sam.freeze:
            return
        self.sam.image_encoder.requires_grad_(False)
        self.sam.prompt_encoder.requires_grad_(False)
        for block in self.sam.image_encoder.blocks:
            if isinstance(block, AdaptedBlock):
                block.attn_adapter.requires_grad_(True)
                block.mlp_adapter.requires_grad_(True)

    def optimizer_groups(self, lr: float) -> list[dict]:
        """AdamW parameter groups of the trainable weights: the text backbone's at
        ``lr × text_backbone.lr_scale``, everything else at ``lr`` (one group when there is no
        trainable backbone, as before it existed, so older optimizer states still resume)."""
        backbone = (
            {id(p) for p in self.text_backbone.parameters()} if self.text_backbone is not None else set()
        )
        trainable = [p for p in self.parameters() if p.requires_grad]
        groups = [{"params": [p for p in trainable if id(p) not in backbone], "lr": lr}]
        slow = [p for p in trainable if id(p) in backbone]
        if slow:
            groups.append({"params": slow, "lr": lr * self.cfg.text_backbone.lr_scale})
        return groups

    @property
    def base_keys(self) -> frozenset[str]:
        """State keys filled from base checkpoints (official SAM, pretrained SegFormer): a project
        checkpoint does not store them unless they were trained."""
        keys = {f"sam.{k}" for k in self._sam_base_keys}
        if (
            self.dense_prompt is not None
            and self.cfg.dense_prompt.source == "segformer"
            and self.cfg.dense_prompt.pretrained
        ):
            keys |= {f"dense_prompt.segformer.{k}" for k in self.dense_prompt.segformer.state_dict()}
        return frozenset(keys)

    @property
    def image_size(self) -> int:
        """Square model input side S."""
        return self.sam.image_encoder.img_size

    def backbone_view(self, images: torch.Tensor) -> torch.Tensor:
        """The backbone's B×3×V×V RGB view in [0, 1] of B×3×S×S SAM-normalised images.

        SAM's normalisation is undone; SAM's zero padding becomes the mean colour, which is also
        what the backbone pads with. With ``text_backbone.image_size`` the view is upsampled to it
        (``predict`` passes a sharper view of the original photo instead).
        """
        rgb = (images * self.sam.pixel_std + self.sam.pixel_mean) / 255.0
        size = self.cfg.text_backbone.image_size
        if size is not None and size != rgb.shape[-1]:
            rgb = F.interpolate(rgb, size=(size, size), mode="bilinear", align_corners=False)
        return rgb

    def backbone_features(
        self, images: torch.Tensor, view: torch.Tensor | None = None
    ) -> BackboneFeatures | None:
        """The text backbone's cuts in SAM's S×S frame (None without a backbone).

        images: B×3×S×S SAM-normalised; view: the backbone's B×3×V×V RGB view in [0, 1] of the same
        padded frame (None: :meth:`backbone_view`). Features of a larger view are area-pooled to
        S/4, S/2 and S.
        """
        if self.text_backbone is None:
            return None
        view = self.backbone_view(images) if view is None else view
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.cfg.text_backbone.freeze):
            features = self.text_backbone(view)
        side = images.shape[-1]
        if view.shape[-1] == side:
            return features
        return BackboneFeatures(
            quarter=F.adaptive_avg_pool2d(features.quarter, side // 4),
            half=F.adaptive_avg_pool2d(features.half, side // 2),
            db_logit=F.adaptive_avg_pool2d(features.db_logit, side),
        )

    def forward(
        self,
        images: torch.Tensor,
        mask_prompt: torch.Tensor | None = None,
        *,
        descriptions: Sequence[str | None] | None = None,
        points: tuple[torch.Tensor, torch.Tensor] | None = None,
        backbone_view: torch.Tensor | None = None,
    ) -> RefinerOutput:
        """images: B×3×S×S normalised+padded; mask_prompt: B×1×M×M logits; points: (B×N×2, B×N);
        backbone_view: the text backbone's own B×3×V×V RGB view in [0, 1] of the same padded frame
        (None: derived from ``images``)."""
        batch = images.shape[0]
        text = self.text_prompt(batch, descriptions) if self.text_prompt is not None else None
        ptx = text.pooled if (text is not None and self.cfg.adapter.parallel_text) else None
        embeddings = encode_image(self.sam.image_encoder, images, ptx)
        image_pe = self.sam.prompt_encoder.get_dense_pe()
        if self.alignment is not None:
            embeddings = embeddings + self.alignment(embeddings, image_pe, text.tokens)
        features = self.backbone_features(images, backbone_view)
        visual = None
        if self.dense_prompt is not None:
            visual = self.dense_prompt(
                features if self.cfg.dense_prompt.source == "text_backbone" else images
            )
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
                one = _select(features, i) if self.cfg.hr_head.backbone_features else None
                hrs.append(self.hr_head(feats.upscaled, feats.mask_tokens[:, 0], low, images[i : i + 1], one))
        return RefinerOutput(
            low_res_logits=torch.cat(lows),
            iou_pred=torch.cat(ious),
            hr_logits=torch.cat(hrs) if hrs else None,
        )


def _select(features: BackboneFeatures, i: int) -> BackboneFeatures:
    """Image ``i`` of a batch of backbone features, batch dimension kept."""
    return BackboneFeatures(
        quarter=features.quarter[i : i + 1],
        half=features.half[i : i + 1],
        db_logit=features.db_logit[i : i + 1],
    )


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(total, trainable) parameter counts (buffers and the frozen text encoder excluded)."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable
