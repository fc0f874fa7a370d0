"""The text-guided sparse point prompter (SAM-MI's TSPP) on the MLLM's per-class coarse maps.

SAM-MI starts from CLIP pixel-text cost maps; here the class evidence is the MLLM's descriptor:
one g×g map per class or instance of the answer (1 where the descriptor names it, or the token
probability of that label when the answer is softened by the MLLM's confidence). A background entry
(1 − max over classes) joins them. Each entry goes through a point-wise MLP and a depth-wise
convolution (spatial context), then attention across the entries at every grid point (class-level
context, SAM-MI's attention block), giving S_en. Two 1×1 heads read S_en: a non-negative expected
point count per entry (summed over the foreground entries into the image's map p, trained with MSE
against :mod:`stsam_refiner.points.targets`) and a class logit per entry (trained with cross-entropy
against the ground-truth class of every grid point — SAM-MI's L_ce^mask, which it needs for
convergence). L = L_ce + λ_mse · L_mse.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stsam_refiner.points.config import PrompterConfig


@dataclass
class PrompterOutput:
    """TSPP predictions on the d×d candidate grid."""

    prob: torch.Tensor
    """B×d×d float ≥ 0: expected sampled points per grid point (sum = expected budget)."""
    class_prob: torch.Tensor
    """B×K×d×d float ≥ 0: the part of ``prob`` that comes from each foreground entry."""
    class_logits: torch.Tensor
    """B×(K+1)×d×d float: entry 0 background, entry k + 1 class k; padded classes at −1e4."""


class SparsePointPrompter(nn.Module):
    """Per-class coarse maps (+ image) → per-point sampling probability and class logits."""

    def __init__(self, *, cfg: PrompterConfig, grid_size: int = 32) -> None:
        super().__init__()
        self.cfg = cfg
        self.grid_size = grid_size
        h = cfg.hidden
        in_ch = 2 + (3 if cfg.use_image else 0)
        self.point_mlp = nn.Sequential(nn.Conv2d(in_ch, h, 1), nn.GELU(), nn.Conv2d(h, h, 1))
        k = cfg.context_kernel
        self.context = nn.Conv2d(h, h, k, padding=k // 2, groups=h)
        self.attn_norm = nn.LayerNorm(h)
        self.attn = nn.MultiheadAttention(h, cfg.num_heads, batch_first=True)
        self.mlp_norm = nn.LayerNorm(h)
        self.mlp = nn.Sequential(nn.Linear(h, 2 * h), nn.GELU(), nn.Linear(2 * h, h))
        self.prob_head = nn.Linear(h, 1)
        self.class_head = nn.Linear(h, 1)

    def forward(
        self, coarse: torch.Tensor, class_valid: torch.Tensor, image: torch.Tensor | None = None
    ) -> PrompterOutput:
        """coarse: B×K×g×g float in [0, 1]; class_valid: B×K bool (False = padding);
        image: B×3×d×d float, normalised (needed when ``cfg.use_image``)."""
        b, k = coarse.shape[:2]
        d = self.grid_size
        if k > self.cfg.max_classes:
            raise ValueError(f"{k} classes > prompter.max_classes {self.cfg.max_classes}")
        maps = F.interpolate(coarse.float(), size=(d, d), mode="bilinear", align_corners=False)
        maps = maps * class_valid[:, :, None, None]
        background = 1 - maps.max(1, keepdim=True).values if k else torch.ones(b, 1, d, d)
        entries = torch.cat([background, maps], 1)  # B×E×d×d
        e = k + 1
        flag = torch.zeros_like(entries)
        flag[:, 0] = 1
        parts = [entries[:, :, None], flag[:, :, None]]
        if self.cfg.use_image:
            if image is None:
                raise ValueError("prompter.use_image needs the image (B×3×d×d)")
            parts.append(image[:, None].expand(b, e, 3, d, d))
        x = torch.cat(parts, 2).flatten(0, 1)  # (B·E)×C×d×d
        f = self.point_mlp(x)
        f = f + F.gelu(self.context(f))
        h = f.shape[1]
        tokens = f.view(b, e, h, d * d).permute(0, 3, 1, 2).reshape(b * d * d, e, h)
        valid = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=coarse.device), class_valid], 1)
        pad = (~valid)[:, None].expand(b, d * d, e).reshape(b * d * d, e)
        q = self.attn_norm(tokens)
        tokens = tokens + self.attn(q, q, q, key_padding_mask=pad, need_weights=False)[0]
        tokens = tokens + self.mlp(self.mlp_norm(tokens))
        tokens = tokens.view(b, d, d, e, h)
        per_entry = F.softplus(self.prob_head(tokens)[..., 0]).permute(0, 3, 1, 2)  # B×E×d×d
        class_prob = per_entry[:, 1:] * class_valid[:, :, None, None]
        logits = self.class_head(tokens)[..., 0].permute(0, 3, 1, 2)
        logits = logits.masked_fill(~valid[:, :, None, None], -1e4)
        return PrompterOutput(prob=class_prob.sum(1), class_prob=class_prob, class_logits=logits)


def prompter_loss(
    out: PrompterOutput, target_prob: torch.Tensor, labels: torch.Tensor, *, lambda_mse: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """L = CE(class_logits, labels) + λ · MSE(prob, target_prob).

    target_prob: B×d×d float (``TsppTarget.prob``); labels: B×d×d int64, 0 background, k + 1 class k.
    """
    ce = F.cross_entropy(out.class_logits, labels)
    mse = F.mse_loss(out.prob, target_prob)
    return ce + lambda_mse * mse, {"ce": float(ce.detach()), "mse": float(mse.detach())}


def soft_class_maps(
    index_grid: np.ndarray, num_classes: int, confidence: np.ndarray | None = None
) -> np.ndarray:
    """A descriptor as per-class maps: g×g int (0 background, k + 1 class k) → K×g×g float32.

    Without ``confidence`` the maps are one-hot. With it (g×g, the probability the MLLM gave the
    label token of each cell's run) the named class gets that probability and the rest (1 − c) is
    shared evenly by the other K entries (background included), so an unsure cell still hints at
    the classes it might belong to.
    """
    index_grid = np.asarray(index_grid)
    onehot = np.stack([index_grid == k + 1 for k in range(num_classes)]).astype(np.float32)
    if confidence is None:
        return onehot
    c = np.clip(np.asarray(confidence, dtype=np.float32), 0.0, 1.0)
    if c.shape != index_grid.shape:
        raise ValueError(f"confidence {c.shape} != descriptor grid {index_grid.shape}")
    rest = (1 - c) / max(num_classes, 1)
    return onehot * c[None] + (1 - onehot) * rest[None]


def image_to_grid(image: np.ndarray, grid_size: int) -> torch.Tensor:
    """H×W×3 uint8 RGB → 3×d×d float (area-resized, roughly zero-mean unit-range)."""
    t = torch.as_tensor(np.ascontiguousarray(image)).permute(2, 0, 1).float()[None] / 255.0
    return (F.interpolate(t, size=(grid_size, grid_size), mode="area")[0] - 0.5) / 0.25


@torch.no_grad()
def predict_prob(
    prompter: SparsePointPrompter, coarse: np.ndarray, image: np.ndarray | None = None
) -> np.ndarray:
    """One image: K×g×g float coarse maps (+ H×W×3 image) → d×d float64 probability map."""
    coarse_t = torch.as_tensor(np.asarray(coarse, dtype=np.float32))[None]
    valid = torch.ones(1, coarse_t.shape[1], dtype=torch.bool)
    img = image_to_grid(image, prompter.grid_size)[None] if prompter.cfg.use_image else None
    return prompter(coarse_t, valid, img).prob[0].double().numpy()
