"""Train a small SAM (segment-anything's own classes) with point prompts on toy shape scenes.

There are no pretrained SAM weights on this machine, and a random SAM answers every point with
noise, which makes any comparison of point-prompting strategies meaningless. This trains the
``tiny`` SAM the way SAM itself is trained for points: one positive point per prompt, three
multimask outputs, the loss of the best output (20·focal + dice) plus an IoU-head MSE. A point on a
two-tone object is paired with either its one-colour part or the whole object, so the three outputs
learn part and whole — and point prompting over-segments, as real SAM does.

Run: ``python -m stsam_refiner.points.train_sam --config configs/points/train_sam_tiny.yaml --out DIR``
(writes DIR/sam.safetensors every ``save_every`` steps, resumable from it).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from stsam_refiner.data import CoarseConfig, damage_grid
from stsam_refiner.points.shapes import ShapeScene, make_scene
from stsam_refiner.predict import coarse_to_mask_prompt
from stsam_refiner.sam_backbone import SAM_ARCHS, load_sam_checkpoint, sam_from_arch
from text4seg.core.checkpoints import check_safetensors
from text4seg.core.masks import grid_from_mask, upsample_grid
from text4seg.core.training import CosineTrainingArguments


@dataclass(frozen=True, kw_only=True)
class PointSamTrainConfig(CosineTrainingArguments):
    """Point-prompt training of a small SAM; ``seed`` seeds the scenes and the prompts."""

    variant: str = "tiny"
    """Key of ``stsam_refiner.sam_backbone.SAM_ARCHS``."""
    image_size: int = 256
    """Square input side (scenes are drawn at this size)."""
    batch_size: int = 8
    """Images per step."""
    steps: int = 3000
    """Steps of the cosine schedule (training may stop earlier on ``minutes``)."""
    prompts_per_image: int = 6
    """Point prompts per image per step (each its own mask-decoder query)."""
    background_prob: float = 0.15
    """Chance that a prompt's point is on the background, whose target is the background region."""
    part_prob: float = 0.5
    """Chance that a point on a two-tone object targets its one-colour part instead of the whole."""
    lr: float = 8e-4
    """AdamW learning rate (cosine decay to 10 % after a linear warm-up)."""
    minutes: float = 15.0
    """Wall-clock budget of one run."""
    save_every: int = 50
    """Checkpoint interval in steps."""
    log_every: int = 50
    """Steps between log lines (the mean loss since the last one)."""
    threads: int = 1
    """torch threads."""
    pool_size: int = 400
    """Scenes drawn once and reused (with fresh prompts and flips) — drawing costs more than a step."""
    loss_size: int = 128
    """Side at which masks are compared (the decoder's low-res logits are upsampled to it)."""
    mask_prompts_per_image: int = 0
    """Extra prompts per image in Text4Seg's refiner form: a damaged 16×16 coarse grid of one object
    as mask logits + ``mask_prompt_points`` positive and negative points from it (single output)."""
    mask_prompt_points: int = 10
    """Positive points, and as many negative ones, of each mask-form prompt."""
    focal_weight: float = 20.0
    """Focal-loss weight against dice 1 (SAM: 20). From scratch, a lower weight leaves the
    all-background minimum sooner."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.prompts_per_image < 1:
            raise ValueError(f"prompts_per_image {self.prompts_per_image} must be >= 1")
        for name in ("background_prob", "part_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} {getattr(self, name)} outside [0, 1]")


def prompt_targets(
    scene: ShapeScene, count: int, cfg: PointSamTrainConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` (xy point, target mask) pairs: N×2 float32 pixel xy, N×H×W bool."""
    background = ~np.any(scene.instances, axis=0) if scene.instances else np.ones(scene.label_map.shape, bool)
    points, targets = [], []
    for _ in range(count):
        if not scene.instances or rng.random() < cfg.background_prob:
            target = background
        else:
            i = int(rng.integers(len(scene.instances)))
            parts = scene.parts[i]
            target = scene.instances[i]
            if len(parts) > 1 and rng.random() < cfg.part_prob:
                target = parts[int(rng.integers(len(parts)))]
        ys, xs = np.nonzero(target)
        j = int(rng.integers(len(ys)))
        points.append((xs[j] + 0.5, ys[j] + 0.5))
        targets.append(target)
    return np.asarray(points, dtype=np.float32), np.stack(targets)


def point_loss(
    logits: torch.Tensor, iou_pred: torch.Tensor, target: torch.Tensor, *, focal_weight: float = 20.0
) -> torch.Tensor:
    """logits N×3×S×S, iou_pred N×3, target N×S×S float in [0, 1] → best-output mask loss + IoU MSE."""
    from torchvision.ops import sigmoid_focal_loss

    t = target[:, None].expand_as(logits)
    focal = sigmoid_focal_loss(logits, t, reduction="none").mean((2, 3))
    prob = logits.sigmoid()
    dice = 1 - (2 * (prob * t).sum((2, 3)) + 1) / (prob.sum((2, 3)) + t.sum((2, 3)) + 1)
    per_output = focal_weight * focal + dice
    best = per_output.min(1).values.mean()
    with torch.no_grad():
        hard = logits > 0
        inter = (hard & (t > 0.5)).sum((2, 3)).float()
        union = (hard | (t > 0.5)).sum((2, 3)).float()
        iou = inter / union.clamp(min=1)
    return best + F.mse_loss(iou_pred, iou)


def _flipped(scene: ShapeScene, rng: np.random.Generator) -> ShapeScene:
    if rng.random() < 0.5:
        return scene

    # Axis 1 is the width of both H×W×3 images and H×W masks.
    def flip(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.flip(a, axis=1))

    return ShapeScene(
        image=flip(scene.image),
        label_map=flip(scene.label_map),
        instances=[flip(m) for m in scene.instances],
        instance_classes=scene.instance_classes,
        parts=[[flip(p) for p in parts] for parts in scene.parts],
    )


def train_step(
    sam, optimizer, cfg: PointSamTrainConfig, rng: np.random.Generator, pool: list[ShapeScene] | None = None
) -> float:
    """One optimisation step on a batch of scenes (from ``pool`` if given); returns the loss."""
    if pool:
        scenes = [_flipped(pool[int(i)], rng) for i in rng.integers(len(pool), size=cfg.batch_size)]
    else:
        scenes = [make_scene(rng, size=cfg.image_size) for _ in range(cfg.batch_size)]
    images = torch.as_tensor(np.stack([s.image for s in scenes])).permute(0, 3, 1, 2).float()
    embeddings = sam.image_encoder(sam.preprocess(images))
    image_pe = sam.prompt_encoder.get_dense_pe()
    losses = []
    for i, scene in enumerate(scenes):
        points, targets = prompt_targets(scene, cfg.prompts_per_image, cfg, rng)
        coords = torch.as_tensor(points)[:, None]
        labels = torch.ones(len(points), 1, dtype=torch.int)
        low, iou = _decode(sam, embeddings[i : i + 1], image_pe, (coords, labels), None, multimask=True)
        losses.append(_loss(low, iou, targets, cfg))
        if cfg.mask_prompts_per_image and scene.instances:
            prompts, masks, targets = mask_form_prompts(scene, cfg, rng)
            low, iou = _decode(sam, embeddings[i : i + 1], image_pe, prompts, masks, multimask=False)
            losses.append(_loss(low, iou, targets, cfg))
    loss = torch.stack(losses).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip:
        torch.nn.utils.clip_grad_norm_(sam.parameters(), cfg.grad_clip)
    optimizer.step()
    return float(loss.detach())


def _decode(sam, embedding, image_pe, points, masks, *, multimask: bool):
    sparse, dense = sam.prompt_encoder(points=points, boxes=None, masks=masks)
    return sam.mask_decoder(
        image_embeddings=embedding,
        image_pe=image_pe,
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=multimask,
    )


def _loss(
    low: torch.Tensor, iou: torch.Tensor, targets: np.ndarray, cfg: PointSamTrainConfig
) -> torch.Tensor:
    logits = F.interpolate(low, size=cfg.loss_size, mode="bilinear", align_corners=False)
    target = torch.as_tensor(targets, dtype=torch.float32)[:, None]
    target = F.interpolate(target, size=cfg.loss_size, mode="area")[:, 0]
    return point_loss(logits, iou, target, focal_weight=cfg.focal_weight)


def mask_form_prompts(scene: ShapeScene, cfg: PointSamTrainConfig, rng: np.random.Generator):
    """Text4Seg-refiner-style prompts: ((N×2P×2 coords, N×2P labels), N×1×M×M logits, N×H×W targets)."""
    coarse_cfg, size = CoarseConfig(), scene.label_map.shape
    mask_size = 4 * cfg.image_size // 16
    coords, labels, prompts, targets = [], [], [], []
    for _ in range(cfg.mask_prompts_per_image):
        target = scene.instances[int(rng.integers(len(scene.instances)))]
        grid = grid_from_mask(target, grid_size=(16, 16), rule="area", threshold=coarse_cfg.threshold)
        grid = damage_grid(grid, coarse_cfg, rng)
        if not grid.any():
            grid = grid_from_mask(target, grid_size=(16, 16), rule="area", threshold=1e-9)
        coarse = upsample_grid(grid, size=size)
        picks = []
        for region in (coarse, ~coarse):
            ys, xs = np.nonzero(region)
            j = rng.integers(len(ys), size=cfg.mask_prompt_points)
            picks.append(np.stack([xs[j] + 0.5, ys[j] + 0.5], 1))
        coords.append(np.concatenate(picks))
        labels.append([1] * cfg.mask_prompt_points + [0] * cfg.mask_prompt_points)
        prompts.append(coarse_to_mask_prompt(grid, original_size=size, mask_size=mask_size))
        targets.append(target)
    points = (
        torch.as_tensor(np.stack(coords), dtype=torch.float32),
        torch.as_tensor(labels, dtype=torch.int),
    )
    return points, torch.as_tensor(np.stack(prompts)), np.stack(targets)


def save_point_sam(sam, path: Path, *, step: int, cfg: PointSamTrainConfig) -> None:
    """Atomically write SAM's state_dict (official key layout) + step/config metadata."""
    from safetensors.torch import save_file

    tmp = path.with_suffix(".tmp")
    state = {k: v.detach().contiguous() for k, v in sam.state_dict().items()}
    save_file(state, str(tmp), metadata={"step": str(step), "config": json.dumps(cfg.to_dict())})
    tmp.replace(path)


def load_point_sam(path: str | Path, *, variant: str | None = None, image_size: int | None = None):
    """A ``Sam`` filled from a checkpoint written by :func:`save_point_sam` (architecture and input
    size from its metadata unless given) or from an official state_dict (give both)."""
    from safetensors import safe_open

    if variant is None or image_size is None:
        meta = {}
        if str(path).endswith(".safetensors"):
            check_safetensors(path)  # a pickle named .safetensors is refused unread, not a traceback
            with safe_open(str(path), framework="pt") as f:
                meta = json.loads((f.metadata() or {}).get("config", "{}"))
        variant = variant or meta.get("variant", "tiny")
        image_size = image_size or meta.get("image_size", 256)
    sam = sam_from_arch(SAM_ARCHS[variant], image_size)
    report = load_sam_checkpoint(sam, path)
    if report.missing:
        raise ValueError(
            f"{path}: checkpoint lacks {len(report.missing)} SAM keys, e.g. {report.missing[:3]}"
        )
    return sam.eval()


def train(cfg: PointSamTrainConfig, out: Path, *, log=print) -> Path:
    """Train (resuming from ``out/sam.safetensors`` if present) within ``cfg.minutes``."""
    from safetensors import safe_open

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "sam.safetensors"
    sam = sam_from_arch(SAM_ARCHS[cfg.variant], cfg.image_size)
    step = 0
    if ckpt.exists():
        load_sam_checkpoint(sam, ckpt)
        with safe_open(str(ckpt), framework="pt") as f:
            step = int((f.metadata() or {}).get("step", 0))
    sam.train()
    optimizer = torch.optim.AdamW(sam.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    pool_rng = np.random.default_rng(cfg.seed)
    pool = [make_scene(pool_rng, size=cfg.image_size) for _ in range(cfg.pool_size)]
    log(f"{len(pool)} scenes drawn; starting at step {step}")
    rng = np.random.default_rng(cfg.seed + 1 + step)
    start, recent = time.time(), []
    while step < cfg.steps and time.time() - start < 60 * cfg.minutes:
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * cfg.lr_factor(step)
        recent.append(train_step(sam, optimizer, cfg, rng, pool))
        step += 1
        if step % cfg.save_every == 0:
            save_point_sam(sam, ckpt, step=step, cfg=cfg)
        if step % cfg.log_every == 0:
            log(f"step {step} loss {np.mean(recent):.4f} ({time.time() - start:.0f} s)")
            recent = []
    save_point_sam(sam, ckpt, step=step, cfg=cfg)
    return ckpt


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/points/train_sam_tiny.yaml")
    parser.add_argument("--out", required=True)
    parser.add_argument("--threads", type=int, help="override threads")
    parser.add_argument(
        "--steps", "--max-steps", dest="steps", type=int, help="override steps (resume a run to a new total)"
    )
    parser.add_argument("--minutes", type=float, help="override the wall-clock budget")
    args = parser.parse_args(argv)
    given = {"threads": args.threads, "steps": args.steps, "minutes": args.minutes}
    overrides = {key: value for key, value in given.items() if value is not None}
    cfg = PointSamTrainConfig.from_yaml(args.config, overrides=overrides)
    train(cfg, Path(args.out), log=lambda m: print(m, flush=True))


if __name__ == "__main__":
    main()
