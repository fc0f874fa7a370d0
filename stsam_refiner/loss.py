"""Hi-SAM / ST-SAM loss: focal : dice : IoU-MSE = 20 : 1 : 1 on the low-res and HR outputs.

Focal is torchvision's ``sigmoid_focal_loss``. The low-res target is the full-resolution mask
area-averaged to SAM's M×M frame (a soft target: a thin stroke covers part of a low-res pixel).
The IoU-MSE term regresses the decoder's IoU prediction on the actual IoU of its low-res mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from stsam_refiner.config import LossConfig
from stsam_refiner.model import RefinerOutput


@dataclass
class LossBreakdown:
    """Scalar loss terms (0-dim float tensors); ``total`` is the weighted sum that is optimised."""

    total: torch.Tensor
    focal: torch.Tensor
    dice: torch.Tensor
    iou_mse: torch.Tensor
    hr_focal: torch.Tensor
    hr_dice: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        """Python floats for logging."""
        return {k: float(v.detach()) for k, v in self.__dict__.items()}


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Mean over the batch of 1 - soft dice; logits and target B×1×H×W."""
    prob = logits.sigmoid().flatten(1)
    target = target.flatten(1)
    inter = (prob * target).sum(1)
    return (1 - (2 * inter + eps) / (prob.sum(1) + target.sum(1) + eps)).mean()


def focal_loss(logits: torch.Tensor, target: torch.Tensor, cfg: LossConfig) -> torch.Tensor:
    """Per-pixel mean sigmoid focal loss."""
    from torchvision.ops import sigmoid_focal_loss

    return sigmoid_focal_loss(logits, target, alpha=cfg.focal_alpha, gamma=cfg.focal_gamma, reduction="mean")


def mask_iou(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """B IoU of (logits > 0) with (target > 0.5); empty union counts as 1."""
    pred = (logits > 0).flatten(1)
    gt = (target > 0.5).flatten(1)
    inter = (pred & gt).sum(1).float()
    union = (pred | gt).sum(1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def refiner_loss(out: RefinerOutput, target: torch.Tensor, cfg: LossConfig) -> LossBreakdown:
    """out: refiner predictions; target: B×1×S×S float in {0, 1} at the model's input size."""
    low = out.low_res_logits
    low_target = F.adaptive_avg_pool2d(target, low.shape[-2:])
    focal = focal_loss(low, low_target, cfg)
    dice = dice_loss(low, low_target)
    iou_mse = F.mse_loss(out.iou_pred[:, 0], mask_iou(low.detach(), low_target))
    zero = low.new_zeros(())
    hr_focal = focal_loss(out.hr_logits, target, cfg) if out.hr_logits is not None else zero
    hr_dice = dice_loss(out.hr_logits, target) if out.hr_logits is not None else zero
    total = (
        cfg.focal * focal
        + cfg.dice * dice
        + cfg.iou_mse * iou_mse
        + cfg.hr_weight * (cfg.focal * hr_focal + cfg.dice * hr_dice)
    )
    return LossBreakdown(
        total=total, focal=focal, dice=dice, iou_mse=iou_mse, hr_focal=hr_focal, hr_dice=hr_dice
    )
