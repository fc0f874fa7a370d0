"""Stage 1 of the from-scratch default model: pretrain the vision tower as a per-cell text classifier.

A jointly trained tiny LLaVA goes image-blind (../shared/ENVIRONMENT.md): the language model learns
the answer format from the text alone long before the randomly initialised vision tower carries any
signal. Real LLaVA avoids this with a CLIP-pretrained tower; here the synthetic masks give a denser
substitute: every patch token of the LLaVA checkpoint's own CLIP vision tower learns, through a
linear :class:`PatchHead`, which of the descriptor grid cells it covers hold text.

    python -m text4seg.mllm.vision_pretrain --config configs/default/vision_pretrain.yaml

Output folder: ``model/`` (the LLaVA checkpoint with the pretrained tower, ``save_pretrained``),
``patch_head.safetensors``, ``state.pt`` (optimizer, for resume), ``log.jsonl``, ``result.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from data_builders.synthetic import load_synthetic
from data_builders.synthetic.writers import decode_rle
from text4seg.core.checkpoints import load_torch_checkpoint
from text4seg.core.inference import InferenceSettings, save_inference_settings
from text4seg.core.masks import grid_from_mask, word_regions
from text4seg.core.training import CosineTrainingArguments
from text4seg.mllm.architectures import architecture_of
from text4seg.mllm.loading import load_mllm
from text4seg.mllm.text_vision import frozen_patch_features, tower_parameter_groups

HEAD_NAME = "patch_head.safetensors"


@dataclass(frozen=True, kw_only=True)
class VisionPretrainConfig(CosineTrainingArguments):
    """One vision pretraining run; ``seed`` seeds the head, the split and the batch order."""

    model_path: str
    """LLaVA checkpoint folder (``build_tiny_llava`` output) whose vision tower is trained."""
    data: str
    """Synthetic Arrow dataset folder (``python -m data_builders.synthetic``)."""
    output_dir: str
    """Where the updated checkpoint, the head and the logs go."""
    grid: int = 16
    """Descriptor grid side the head predicts; must be a multiple of the patches per side."""
    grid_rule: str = "area"
    """Ground-truth grid rule (``text4seg.core.masks.grid_from_mask``)."""
    threshold: float = 0.1
    """Text coverage that makes a cell text under the area rule."""
    grid_regions: bool = False
    """Grid the words' regions (convex hulls of the instance masks) instead of their strokes, as the
    conversation builder's ``grid_regions`` does; the MLLM's answers and this head then agree."""
    steps: int = 1500
    """Optimizer steps."""
    batch_size: int = 32
    """Images per step."""
    lr: float = 1e-3
    """Peak AdamW learning rate (linear warm-up, cosine decay to 10%)."""
    backbone_lr: float = 0.0
    """Peak learning rate of a text_backbone tower's pretrained detector (0 keeps it frozen; a CLIP
    tower has none)."""
    pos_weight: float = 2.0
    """BCE weight of text cells (text covers ~10-20% of cells)."""
    val_images: int = 200
    """Images held out of the training rows to report cell IoU on (at most a fifth of the rows)."""
    max_images: int = 0
    """Use at most this many rows (0: all)."""
    save_every: int = 250
    """Steps between checkpoints."""
    log_every: int = 25
    """Steps between log lines."""
    bf16: bool = True
    """bfloat16 autocast for forward/backward (on ``device``'s type); weights stay fp32."""
    threads: int = 1
    """torch threads."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.grid < 1:
            raise ValueError(f"grid {self.grid} must be >= 1")
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold {self.threshold} not in (0, 1]")
        if self.pos_weight <= 0:
            raise ValueError(f"pos_weight {self.pos_weight} must be > 0")
        if self.val_images < 1:
            raise ValueError(f"val_images {self.val_images} must be >= 1 (the run reports its cell IoU)")


def make_patch_head(*, hidden: int, cells_per_patch: int):
    """LayerNorm + linear map from one patch feature to the logits of its k×k grid cells."""
    import torch.nn as nn

    return nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, cells_per_patch * cells_per_patch))


def patch_logits_to_grid(logits, *, patches_per_side: int, cells_per_patch: int):
    """(B, n·n, k·k) per-patch logits (row-major patches, CLIP's order) -> (B, n·k, n·k) grid logits."""
    n, k = patches_per_side, cells_per_patch
    batch = logits.shape[0]
    return logits.reshape(batch, n, n, k, k).permute(0, 1, 3, 2, 4).reshape(batch, n * k, n * k)


def patch_features(vision_tower, pixel_values):
    """Last-layer patch features (CLS dropped), the ones LLaVA's "full" strategy hands the projector."""
    out = vision_tower(pixel_values=pixel_values, output_hidden_states=True)
    return out.hidden_states[-1][:, 1:]


class PatchGridData:
    """Images as normalised float tensors and their ground-truth text grids, all held in memory.

    pixels: N×3×S×S float32 (the LLaVA image processor's normalisation), or, with ``pooled`` (a frozen
    text backbone's ``patch_features``), N×n²×(C+2) features computed once per image, which the tower
    takes in place of the pixels; grids: N×G×G float32 in {0, 1}.
    """

    def __init__(
        self, *, rows, processor, grid: int, rule: str, threshold: float, regions: bool = False, pooled=None
    ) -> None:
        import torch
        from tqdm.auto import tqdm

        images, grids = [], []
        for row in tqdm(rows, desc="vision pretrain: images and grids"):
            image = row["image"].convert("RGB")
            mask = np.asarray(row["mask"]) > 127
            if regions:
                mask = word_regions([decode_rle(text) for text in row["instance_masks"]], mask.shape)
            images.append(image)
            grids.append(grid_from_mask(mask, grid_size=(grid, grid), rule=rule, threshold=threshold))
        chunks = []
        what = "pooled detector features" if pooled is not None else "pixels"
        for i in tqdm(range(0, len(images), 64), desc=f"vision pretrain: {what}", unit="64 images"):
            pixels = processor.image_processor(images=images[i : i + 64], return_tensors="pt")["pixel_values"]
            if pooled is not None:
                with torch.no_grad():
                    pixels = pooled(pixels)
            chunks.append(pixels)
        self.pixels = torch.cat(chunks)
        self.grids = torch.from_numpy(np.stack(grids).astype(np.float32))

    def __len__(self) -> int:
        return len(self.grids)


def cell_iou(logits, targets) -> float:
    """Foreground IoU over all cells of a batch (prediction: logit > 0)."""
    pred, gt = logits > 0, targets > 0.5
    union = (pred | gt).sum().item()
    return 1.0 if union == 0 else (pred & gt).sum().item() / union


@dataclass(kw_only=True)
class PretrainResult:
    """What a vision pretraining run reached."""

    step: int
    """Optimizer steps done (resumed steps included)."""
    first_loss: float
    """Mean loss of this call's first logged window."""
    last_loss: float
    """Mean loss of this call's last logged window."""
    val_cell_iou: float
    """Cell-level text IoU of the head on the held-out rows."""
    seconds: float
    """Wall time of this call."""


class _Run:
    """Model, head, data and optimizer of one run (kept together so the loop functions stay short)."""

    def __init__(self, cfg: VisionPretrainConfig) -> None:
        import torch

        out = Path(cfg.output_dir)
        resume = (out / "state.pt").is_file() and (out / "model" / "config.json").is_file()
        self.device = cfg.torch_device()  # model and head there; images stay in host memory, sent per batch
        loaded = load_mllm(out / "model" if resume else Path(cfg.model_path))
        self.model, self.processor = loaded.model.to(self.device).train(), loaded.processor
        self.tower = architecture_of(self.model.config).module(self.model, "vision_tower")
        vision = self.tower.config
        self.n = vision.image_size // vision.patch_size
        if cfg.grid % self.n:
            raise ValueError(f"grid {cfg.grid} is not a multiple of {self.n} patches per side")
        self.k = cfg.grid // self.n
        torch.manual_seed(cfg.seed)
        self.head = make_patch_head(hidden=vision.hidden_size, cells_per_patch=self.k).to(self.device)
        rows = load_synthetic(cfg.data)
        if "split" in rows.column_names:
            rows = rows.filter(lambda s: s == "train", input_columns="split")
        if cfg.max_images:
            rows = rows.select(range(min(cfg.max_images, len(rows))))
        order = np.random.default_rng(cfg.seed).permutation(len(rows))
        data = {
            "processor": self.processor,
            "grid": cfg.grid,
            "rule": cfg.grid_rule,
            "threshold": cfg.threshold,
            "regions": cfg.grid_regions,
        }
        backbone, tower = tower_parameter_groups(self.tower)
        for p in backbone:
            p.requires_grad_(cfg.backbone_lr > 0)
        features = frozen_patch_features(self.tower)  # None: the pixels go through the tower every step
        data["pooled"] = None if features is None else (lambda pixels: features(pixels.to(self.device)).cpu())
        n_val = min(cfg.val_images, max(1, len(rows) // 5))  # small smoke-test corpora keep 80% for training
        self.val = PatchGridData(rows=rows.select(order[:n_val]), **data)
        self.train = PatchGridData(rows=rows.select(order[n_val:]), **data)
        groups = [{"params": tower + list(self.head.parameters()), "lr": cfg.lr}]
        if cfg.backbone_lr > 0:
            groups.append({"params": backbone, "lr": cfg.backbone_lr})
        self.params = [p for g in groups for p in g["params"]]
        self.optimizer = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
        self.settings = InferenceSettings(
            grid=(cfg.grid, cfg.grid), grid_rule=cfg.grid_rule, grid_threshold=cfg.threshold
        )
        self.start = 0
        if resume:
            from safetensors.torch import load_file

            self.head.load_state_dict(load_file(out / HEAD_NAME, device=str(self.device)))
            state = load_torch_checkpoint(out / "state.pt")
            self.optimizer.load_state_dict(state["optimizer"])
            self.start = int(state["step"])
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, cfg.lr_factor, last_epoch=self.start - 1
        )

    def grid_logits(self, pixels):
        features = patch_features(self.tower, pixels.to(self.device, non_blocking=True))
        return patch_logits_to_grid(self.head(features), patches_per_side=self.n, cells_per_patch=self.k)

    def evaluate(self, batch_size: int = 64) -> float:
        import torch

        self.tower.eval()
        with torch.no_grad():
            logits = torch.cat([self.grid_logits(self.val.pixels[i : i + batch_size])
                                for i in range(0, len(self.val), batch_size)])  # fmt: skip
        self.tower.train()
        return cell_iou(logits.cpu(), self.val.grids)


def save_stage(out: Path, run, step: int) -> None:
    """A resumable checkpoint of a default-model training stage (``run`` has ``model``, ``processor``,
    ``head``, ``optimizer`` and ``settings``): the LLaVA ``save_pretrained`` folder ``model/`` with its
    ``inference.json``, the per-patch head, and ``state.pt`` (optimizer state + step)."""
    import torch
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    run.model.save_pretrained(out / "model")
    run.processor.save_pretrained(out / "model")
    save_inference_settings(out / "model", run.settings)
    save_file({k: v.detach().cpu().contiguous() for k, v in run.head.state_dict().items()}, out / HEAD_NAME)
    torch.save({"optimizer": run.optimizer.state_dict(), "step": step}, out / "state.pt")


def pretrain(cfg: VisionPretrainConfig) -> PretrainResult:
    """Run (or resume) vision pretraining up to ``cfg.steps``."""
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    started = time.time()
    run = _Run(cfg)
    out = Path(cfg.output_dir)
    generator = torch.Generator().manual_seed(cfg.seed + run.start)
    pos_weight = torch.tensor(cfg.pos_weight, device=run.device)
    window, logged = [], []
    step = run.start
    run.tower.train()
    for step in tqdm(
        range(run.start + 1, cfg.steps + 1), desc="vision pretrain", initial=run.start, total=cfg.steps
    ):
        index = torch.randint(len(run.train), (cfg.batch_size,), generator=generator)
        with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            logits = run.grid_logits(run.train.pixels[index]).float()
        targets = run.train.grids[index].to(run.device, non_blocking=True)
        loss = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(run.params, cfg.grad_clip)
        run.optimizer.step()
        run.scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)
        window.append(float(loss.detach()))
        stop = cfg.out_of_time(started)
        if step % cfg.log_every == 0 or step == cfg.steps or stop:
            logged.append(sum(window) / len(window))
            record = {"step": step, "loss": logged[-1], "time": round(time.time() - started, 1)}
            if step % cfg.save_every == 0 or step == cfg.steps or stop:
                record["val_cell_iou"] = run.evaluate()
                save_stage(out, run, step)
            out.mkdir(parents=True, exist_ok=True)
            with open(out / "log.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            window = []
        if stop:
            print(f"vision pretrain: {cfg.max_minutes} min budget spent at step {step}/{cfg.steps}; saved")
            break
    if step == run.start:  # nothing left to run: still report the held-out IoU
        logged = [float("nan")]
    result = PretrainResult(
        step=step, first_loss=logged[0], last_loss=logged[-1], val_cell_iou=run.evaluate(),
        seconds=time.time() - started,
    )  # fmt: skip
    (out / "result.json").write_text(json.dumps({**asdict(result), "config": cfg.to_dict()}, indent=1))
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m text4seg.mllm.vision_pretrain", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--config", required=True, help="VisionPretrainConfig YAML (configs/default/)")
    parser.add_argument("--model-path")
    parser.add_argument("--data")
    parser.add_argument("--output-dir")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--minutes", type=float, help="wall-time budget: save and stop when spent")
    parser.add_argument("--device", help="cpu | cuda | cuda:N | auto (overrides the config)")
    args = parser.parse_args(argv)
    given = {
        "model_path": args.model_path,
        "data": args.data,
        "output_dir": args.output_dir,
        "steps": args.steps,
        "max_minutes": args.minutes,
        "device": args.device,
    }
    overrides = {key: value for key, value in given.items() if value is not None}
    cfg = VisionPretrainConfig.from_yaml(args.config, overrides=overrides)
    print(json.dumps(asdict(pretrain(cfg))))


if __name__ == "__main__":
    main()
