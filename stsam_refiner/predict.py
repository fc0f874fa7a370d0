"""Single-image inference: original image + coarse mask → refined mask at the original size.

Follows SamPredictor's frames exactly: the image's longest side is resized to S (the model's input)
and zero-padded bottom/right; the coarse mask goes to SAM's M×M mask-input frame (M = S/4) the same
way, as ±6.9 logits (``text4seg.core.masks.mask_prompt_logits``) with zero (undecided) padding, as
Text4Seg's reference refinement does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from segment_anything.utils.transforms import ResizeLongestSide

from stsam_refiner.model import STSAMRefiner
from text4seg.core.inference import FLIPS
from text4seg.core.masks import mask_prompt_logits, upsample_grid


@dataclass
class RefinedMask:
    """One refined mask at the original image size."""

    mask: np.ndarray
    """H×W bool (logits > 0)."""
    logits: np.ndarray
    """H×W float32 logits (HR head when enabled, else SAM's low-res logits upsampled)."""
    iou: float
    """The decoder's predicted IoU."""
    low_res_logits: np.ndarray
    """1×M×M float32 logits in SAM's padded mask frame (feedable as a next mask prompt)."""


def coarse_to_mask_prompt(
    coarse: np.ndarray, *, original_size: tuple[int, int], mask_size: int
) -> np.ndarray:
    """Coarse mask covering the whole image (gh×gw grid or H×W, bool) → 1×M×M float32 logits."""
    h, w = ResizeLongestSide.get_preprocess_shape(original_size[0], original_size[1], mask_size)
    resized = upsample_grid(np.asarray(coarse, dtype=bool), size=(h, w))
    prompt = np.zeros((1, mask_size, mask_size), dtype=np.float32)
    prompt[0, :h, :w] = mask_prompt_logits(resized)
    return prompt


def prepare_backbone_view(model: STSAMRefiner, image: np.ndarray) -> torch.Tensor | None:
    """HWC uint8 RGB → the text backbone's own 1×3×V×V view in [0, 1] of SAM's padded frame, or None
    when the refiner has no backbone or no own view size (``text_backbone.image_size``).

    The photo is resized as SAM's input is (longest side to V, top-left aligned) and padded with
    SAM's mean colour, so the view covers exactly SAM's frame at a higher resolution.
    """
    size = model.cfg.text_backbone.image_size if model.text_backbone is not None else None
    if size is None:
        return None
    resized = ResizeLongestSide(size).apply_image(image)
    view = torch.as_tensor(resized, device=model.sam.device).permute(2, 0, 1).float()[None] / 255.0
    frame = (model.sam.pixel_mean / 255.0).view(1, 3, 1, 1).expand(1, 3, size, size).clone()
    frame[..., : view.shape[-2], : view.shape[-1]] = view
    return frame


def prepare_image(model: STSAMRefiner, image: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
    """HWC uint8 RGB → (1×3×S×S normalised padded tensor, resized (h, w) before padding)."""
    transform = ResizeLongestSide(model.image_size)
    resized = transform.apply_image(image)
    tensor = torch.as_tensor(resized, device=model.sam.device).permute(2, 0, 1).contiguous()[None]
    return model.sam.preprocess(tensor.float()), tuple(resized.shape[:2])


def refine_image(
    model: STSAMRefiner,
    image: np.ndarray,
    *,
    coarse: np.ndarray | None = None,
    mask_logits: np.ndarray | None = None,
    description: str | None = None,
    point_coords: np.ndarray | None = None,
    point_labels: np.ndarray | None = None,
    flips: tuple[str, ...] = (),
) -> RefinedMask:
    """Refine one image. Give ``coarse`` (bool, whole-image grid) or ``mask_logits`` (1×M×M), or
    neither; points (N×2 xy in original pixels, N labels) are optional as in SamPredictor.

    ``flips`` is test-time augmentation: the image and its coarse mask are also refined flipped
    left-right (``"h"``) and/or upside down (``"v"``), each result is flipped back, and the mask is
    the mean of the logits > 0. ``iou`` and ``low_res_logits`` stay those of the unflipped view. Only
    with ``coarse``: a mask prompt in SAM's padded frame, or points, would not flip with the image.
    """
    if coarse is not None and mask_logits is not None:
        raise ValueError("give coarse or mask_logits, not both")
    unknown = sorted(set(flips) - set(FLIPS))
    if unknown:
        raise ValueError(f"flips {unknown} not in {sorted(FLIPS)}")
    if flips and (mask_logits is not None or point_coords is not None):
        raise ValueError("flips work with a coarse mask prompt only, not with mask_logits or points")
    out = _refine_view(model, image, coarse, mask_logits, description, point_coords, point_labels)
    if not flips:
        return out
    logits = out.logits.copy()
    for flip in flips:
        axis = FLIPS[flip]
        view = _refine_view(
            model, np.flip(image, axis).copy(), None if coarse is None else np.flip(coarse, axis).copy(),
            None, description, None, None,
        )  # fmt: skip
        logits += np.flip(view.logits, axis)
    logits /= 1 + len(flips)
    return RefinedMask(
        mask=logits > model.sam.mask_threshold, logits=logits, iou=out.iou, low_res_logits=out.low_res_logits
    )


@torch.no_grad()
def _refine_view(
    model: STSAMRefiner,
    image: np.ndarray,
    coarse: np.ndarray | None,
    mask_logits: np.ndarray | None,
    description: str | None,
    point_coords: np.ndarray | None,
    point_labels: np.ndarray | None,
) -> RefinedMask:
    original = tuple(image.shape[:2])
    images, input_size = prepare_image(model, image)
    device = images.device
    if coarse is not None:
        mask_logits = coarse_to_mask_prompt(
            coarse, original_size=original, mask_size=4 * model.image_size // 16
        )
    mask = (
        torch.as_tensor(mask_logits, dtype=torch.float, device=device)[None]
        if mask_logits is not None
        else None
    )
    points = None
    if point_coords is not None:
        coords = ResizeLongestSide(model.image_size).apply_coords(point_coords, original)
        points = (
            torch.as_tensor(coords, dtype=torch.float, device=device)[None],
            torch.as_tensor(point_labels, dtype=torch.int, device=device)[None],
        )
    view = prepare_backbone_view(model, image)
    out = model(images, mask, descriptions=[description], points=points, backbone_view=view)
    if out.hr_logits is not None:
        logits = out.hr_logits[..., : input_size[0], : input_size[1]]
        logits = F.interpolate(logits, original, mode="bilinear", align_corners=False)
    else:
        logits = model.sam.postprocess_masks(out.low_res_logits, input_size, original)
    logits_np = logits[0, 0].float().cpu().numpy()
    return RefinedMask(
        mask=logits_np > model.sam.mask_threshold,
        logits=logits_np,
        iou=float(out.iou_pred[0, 0]),
        low_res_logits=out.low_res_logits[0].float().cpu().numpy(),
    )
