"""Training examples and a training loop for the TSPP head; checkpoints as safetensors.

An example is what the prompter sees at inference — the answer's per-class coarse maps (a
ground-truth descriptor grid damaged the way ``stsam_refiner.data`` damages refiner inputs, playing
an imperfect MLLM) and the image on the point grid — with SAM-MI's targets from the ground truth.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stsam_refiner.data import CoarseConfig
from stsam_refiner.points.config import PointsConfig, PrompterConfig, TargetConfig
from stsam_refiner.points.prompter import SparsePointPrompter, image_to_grid, prompter_loss, soft_class_maps
from stsam_refiner.points.shapes import make_scene
from stsam_refiner.points.targets import tspp_target
from text4seg.core.checkpoints import check_safetensors
from text4seg.core.masks import grid_from_mask
from text4seg.core.training import warmup_cosine

FORMAT = "stsam_refiner.points.prompter/1"


@dataclass
class PrompterExample:
    """One training example, class order = the answer's order."""

    coarse: np.ndarray
    """K×g×g float32 per-class coarse maps."""
    image: torch.Tensor
    """3×d×d float image on the point grid."""
    target: np.ndarray
    """d×d float64 TSPP target."""
    labels: np.ndarray
    """d×d int64 ground-truth entry per grid point (0 background, k + 1 class k)."""


def damage_index_grid(
    grid: np.ndarray, num_classes: int, cfg: CoarseConfig, rng: np.random.Generator
) -> np.ndarray:
    """Drop labelled cells, shift the grid, add false-positive cells of a random class (g×g int)."""
    out = np.where(rng.random(grid.shape) < cfg.drop_prob, 0, grid)
    if cfg.max_shift and rng.random() < cfg.shift_prob:
        dy, dx = rng.integers(-cfg.max_shift, cfg.max_shift + 1, size=2)
        out = np.roll(out, (int(dy), int(dx)), axis=(0, 1))
    if num_classes:
        add = (out == 0) & (rng.random(grid.shape) < cfg.add_prob)
        out = np.where(add, rng.integers(1, num_classes + 1, size=grid.shape), out)
    return out


def make_example(
    image: np.ndarray,
    class_masks: list[np.ndarray],
    *,
    coarse_cfg: CoarseConfig,
    target_cfg: TargetConfig,
    rng: np.random.Generator,
) -> PrompterExample:
    """Image (H×W×3 uint8) + the answer's GT masks (one H×W bool per class/instance) → example."""
    k, d = len(class_masks), target_cfg.grid_size
    index = np.zeros(image.shape[:2], dtype=np.int64)
    for j, mask in enumerate(class_masks):
        index[mask] = j + 1
    grid_args = {"grid_size": (coarse_cfg.grid, coarse_cfg.grid), "rule": coarse_cfg.rule}
    coarse_index = grid_from_mask(index, threshold=coarse_cfg.threshold, **grid_args)
    coarse_index = damage_index_grid(coarse_index, k, coarse_cfg, rng)
    return PrompterExample(
        coarse=soft_class_maps(coarse_index, k),
        image=image_to_grid(image, d),
        target=tspp_target(class_masks, target_cfg).prob,
        labels=grid_from_mask(index, grid_size=(d, d), rule="nearest"),
    )


def collate(examples: list[PrompterExample], max_classes: int) -> dict[str, torch.Tensor]:
    """Pad the class axis to the batch's largest class count (at most ``max_classes``) and stack."""
    b, g = len(examples), examples[0].coarse.shape[-1]
    width = max(len(ex.coarse) for ex in examples)
    coarse = torch.zeros(b, width, g, g)
    valid = torch.zeros(b, width, dtype=torch.bool)
    for i, ex in enumerate(examples):
        k = len(ex.coarse)
        if k > max_classes:
            raise ValueError(f"example {i} has {k} classes > max_classes {max_classes}")
        coarse[i, :k] = torch.as_tensor(ex.coarse)
        valid[i, :k] = True
    return {
        "coarse": coarse,
        "class_valid": valid,
        "image": torch.stack([ex.image for ex in examples]),
        "target": torch.as_tensor(np.stack([ex.target for ex in examples]), dtype=torch.float32),
        "labels": torch.as_tensor(np.stack([ex.labels for ex in examples])),
    }


def train_prompter(
    prompter: SparsePointPrompter,
    examples: list[PrompterExample],
    *,
    steps: int,
    batch_size: int = 16,
    lr: float = 3e-3,
    seed: int = 0,
) -> list[dict[str, float]]:
    """AdamW on random batches of ``examples``, cosine decay to 10 % without warm-up; returns per-step
    loss parts."""
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.AdamW(prompter.parameters(), lr=lr, weight_decay=0.01)
    history = []
    prompter.train()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr * warmup_cosine(step, warmup_steps=0, total_steps=steps)
        batch = collate(
            [examples[i] for i in rng.integers(len(examples), size=batch_size)], prompter.cfg.max_classes
        )
        out = prompter(batch["coarse"], batch["class_valid"], batch["image"])
        loss, parts = prompter_loss(out, batch["target"], batch["labels"], lambda_mse=prompter.cfg.lambda_mse)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history.append({"loss": float(loss.detach()), **parts})
    prompter.eval()
    return history


def save_prompter(prompter: SparsePointPrompter, path: str | Path) -> None:
    """Weights + config (JSON metadata) in one safetensors file."""
    from safetensors.torch import save_file

    meta = {
        "format": FORMAT,
        "config": json.dumps(prompter.cfg.__dict__),
        "grid_size": str(prompter.grid_size),
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in prompter.state_dict().items()}, str(path), metadata=meta)


def load_prompter(path: str | Path) -> SparsePointPrompter:
    """Rebuild from the stored config and load the weights (strict)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    # A pickle is refused unread, with the one-line message (never a traceback from safe_open).
    check_safetensors(
        path,
        convert=f"stsam_refiner.points.train_prompter.save_prompter(head, '{Path(path).stem}.safetensors')",
    )
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} checkpoint (format={meta.get('format')!r})")
    prompter = SparsePointPrompter(
        cfg=PrompterConfig(**json.loads(meta["config"])), grid_size=int(meta["grid_size"])
    )
    prompter.load_state_dict(load_file(str(path)))
    return prompter.eval()


def shape_examples(
    count: int, *, seed: int, target_cfg: TargetConfig, coarse_cfg: CoarseConfig, size: int = 256
) -> list[PrompterExample]:
    """Examples from toy shape scenes; each answer lists the scene's classes in a random order."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        scene = make_scene(rng, size=size)
        masks = [m for m in scene.class_masks if m.any()]
        order = rng.permutation(len(masks))
        out.append(
            make_example(
                scene.image, [masks[i] for i in order], coarse_cfg=coarse_cfg, target_cfg=target_cfg, rng=rng
            )
        )
    return out


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Train the TSPP head on toy shape scenes.")
    parser.add_argument("--config", default="configs/points/tspp.yaml", help="PointsConfig YAML")
    parser.add_argument("--out", required=True, help="checkpoint path (.safetensors)")
    parser.add_argument("--scenes", type=int, default=300)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=128, help="scene side in pixels (the SAM's input)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = PointsConfig.from_yaml(args.config)
    examples = shape_examples(
        args.scenes, seed=args.seed, target_cfg=cfg.targets, coarse_cfg=CoarseConfig(), size=args.size
    )
    torch.manual_seed(args.seed)  # the head's initial weights: the same command, the same checkpoint
    prompter = SparsePointPrompter(cfg=cfg.prompter, grid_size=cfg.targets.grid_size)
    history = train_prompter(prompter, examples, steps=args.steps, batch_size=args.batch_size, seed=args.seed)
    save_prompter(prompter, args.out)
    first, last = history[0], history[-1]
    print(json.dumps({"steps": args.steps, "first": first, "last": last, "out": str(args.out)}))


if __name__ == "__main__":
    main()
