"""Refiner training with accelerate: resumable, tqdm progress, JSON-lines loss log.

Launch with ``scripts/train_refiner.sh`` (one process, or torchrun for several GPUs / nodes / CPU
processes over gloo), or ``python -m stsam_refiner.train --config configs/refiner/train_tiny.yaml``.

Output folder: ``refiner.safetensors`` (the project checkpoint, see ``stsam_refiner.build``),
``state/optimizer.pt`` + ``state/trainer.json`` (resume), ``log.jsonl`` (one line per logged step).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from stsam_refiner.build import build_refiner, load_refiner, save_refiner, warm_start
from stsam_refiner.config import RefinerConfig
from stsam_refiner.data import AugmentConfig, CoarseConfig, RefinerTrainSet, collate
from stsam_refiner.loss import refiner_loss
from text4seg.core.checkpoints import load_torch_checkpoint
from text4seg.core.training import CosineTrainingArguments


@dataclass(frozen=True, kw_only=True)
class TrainConfig(CosineTrainingArguments):
    """One refiner training run; ``seed`` drives model init, shuffling and coarse-mask damage."""

    model_config: str = "configs/refiner/tiny.yaml"
    """RefinerConfig YAML (ignored when resuming or starting from ``init_checkpoint``)."""
    data: str = ""
    """Arrow dataset folder (``datasets.load_from_disk``) with ``image`` and ``mask`` columns."""
    split: str | None = "train"
    """Keep rows whose ``split`` column equals this (None: all rows; no column: all rows)."""
    output_dir: str = "outputs/refiner"
    """Where checkpoints, optimizer state and the loss log go."""
    init_checkpoint: str | None = None
    """Project checkpoint to start from instead of a fresh model."""
    warm_start: str | None = None
    """Project checkpoint of another refiner config whose weights fill this ``model_config``'s model
    where they fit (``stsam_refiner.build.warm_start``); the rest starts fresh. A new schedule."""
    batch_size: int = 4
    """Images per step per process (ST-SAM: 4)."""
    save_every: int = 200
    """Steps between checkpoints (one is always written at the end)."""
    num_workers: int = 0
    """DataLoader worker processes."""
    bf16: bool = False
    """bfloat16 autocast for forward + loss on CPU (~1.3x faster per step with AVX512-BF16); weights stay fp32."""
    description_column: str | None = None
    """Column with per-image descriptions (the synthetic ``instances`` list is turned into prose)."""
    coarse: CoarseConfig = field(default_factory=CoarseConfig)
    """How coarse masks are made."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """Augmentation."""
    sharp_view: bool = False
    """With a text backbone that has its own view size V (``text_backbone.image_size``): cut the
    samples at V and give the backbone that sharp view, as inference does; off, the backbone sees
    SAM's S×S input upsampled to V."""
    device: str = "auto"
    """``cpu``, ``cuda`` or ``auto`` (CUDA when available, one GPU per process under torchrun); accelerate
    places the model and batches, and bf16 autocast runs on its device type."""


@dataclass
class TrainResult:
    """What a run did."""

    step: int
    """Last optimizer step reached."""
    losses: list[float]
    """Total loss of every step run by this call (this process)."""
    checkpoint: Path
    """The project checkpoint written at the end."""


def make_accelerator(device: str = "auto"):
    """accelerate's Accelerator on ``device`` (``TrainConfig.device``); on CPU with several processes, a
    gloo process group."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, InitProcessGroupKwargs

    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(
            f"device {device!r}: accelerate picks the GPU of each process; use cuda (or auto, cpu)"
        )
    # Some parameters sit out some steps (the no-description slot when every image has one).
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device 'cuda': torch {torch.__version__} sees no CUDA device here")
    if device != "cpu" and torch.cuda.is_available():
        return Accelerator(kwargs_handlers=[ddp])
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return Accelerator(cpu=True, kwargs_handlers=[ddp, InitProcessGroupKwargs(backend="gloo")])
    return Accelerator(cpu=True)


def load_rows(path: str, split: str | None):
    """The training rows of an Arrow dataset folder."""
    import datasets

    rows = datasets.load_from_disk(str(path))
    if split is not None and "split" in rows.column_names:
        rows = rows.filter(lambda s: s == split, input_columns="split")
    if len(rows) == 0:
        raise ValueError(f"{path}: no rows with split {split!r}")
    return rows


def _initial_model(cfg: TrainConfig, out: Path):
    if cfg.init_checkpoint and cfg.warm_start:
        raise ValueError("give init_checkpoint (same config) or warm_start (another config), not both")
    if (out / "refiner.safetensors").exists() and (out / "state" / "trainer.json").exists():
        model, _ = load_refiner(out / "refiner.safetensors")
        return model, json.loads((out / "state" / "trainer.json").read_text())
    if cfg.init_checkpoint:
        return load_refiner(cfg.init_checkpoint)[0], None
    model, _ = build_refiner(RefinerConfig.from_yaml(cfg.model_config))
    if cfg.warm_start:
        report = warm_start(model, cfg.warm_start)
        out.mkdir(parents=True, exist_ok=True)
        (out / "warm_start.json").write_text(json.dumps(asdict(report), indent=1))
        print(
            f"warm start from {cfg.warm_start}: {len(report.copied)} tensors copied, "
            f"{len(report.grown)} grown, {len(report.fresh)} fresh, {len(report.dropped)} dropped"
        )
    return model, None


def _save(accelerator, model, optimizer, out: Path, step: int) -> Path:
    path = out / "refiner.safetensors"
    if accelerator.is_main_process:
        save_refiner(accelerator.unwrap_model(model), path)
        (out / "state").mkdir(parents=True, exist_ok=True)
        torch.save(optimizer.state_dict(), out / "state" / "optimizer.pt")
        (out / "state" / "trainer.json").write_text(json.dumps({"step": step}))
    accelerator.wait_for_everyone()
    return path


def _make_loader(cfg: TrainConfig, model):
    backbone = model.cfg.text_backbone.image_size if model.text_backbone is not None else None
    dataset = RefinerTrainSet(
        rows=load_rows(cfg.data, cfg.split),
        image_size=model.image_size,
        coarse=cfg.coarse,
        augment=cfg.augment,
        description_column=cfg.description_column,
        seed=cfg.seed,
        view_size=backbone if cfg.sharp_view else None,
    )
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=cfg.batch_size, shuffle=True, collate_fn=collate, num_workers=cfg.num_workers
    )
    return dataset, loader


def _append_log(out: Path, record: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "log.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def train(cfg: TrainConfig) -> TrainResult:
    """Run (or resume) training up to ``cfg.steps``; returns the losses of this call."""
    from tqdm.auto import tqdm

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    accelerator = make_accelerator(cfg.device)
    out = Path(cfg.output_dir)
    model, resume = _initial_model(cfg, out)
    start = resume["step"] if resume else 0
    params = [p for p in model.parameters() if p.requires_grad]
    # The text backbone, when trained, gets its own lower learning rate (text_backbone.lr_scale).
    optimizer = torch.optim.AdamW(model.optimizer_groups(cfg.lr), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if resume:
        optimizer.load_state_dict(load_torch_checkpoint(out / "state" / "optimizer.pt"))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cfg.lr_factor, last_epoch=start - 1)
    dataset, loader = _make_loader(cfg, model)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    loss_cfg = accelerator.unwrap_model(model).cfg.loss
    preprocess = accelerator.unwrap_model(model).sam.preprocess
    losses: list[float] = []
    step, started = start, time.time()
    bar = tqdm(total=cfg.steps, initial=start, disable=not accelerator.is_local_main_process, desc="refiner")
    model.train()
    while step < cfg.steps:
        dataset.epoch = step // max(1, len(loader))
        for batch in loader:
            if step >= cfg.steps:
                break
            with torch.autocast(accelerator.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
                out_ = model(
                    preprocess(batch["images"]),
                    batch["mask_prompts"],
                    descriptions=batch["descriptions"],
                    backbone_view=batch["views"],
                )
                terms = refiner_loss(out_, batch["targets"], loss_cfg)
            accelerator.backward(terms.total)
            if cfg.grad_clip:
                accelerator.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            losses.append(float(terms.total.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
            if step % cfg.log_every == 0 and accelerator.is_main_process:
                record = {
                    "step": step,
                    "lr": scheduler.get_last_lr()[0],
                    "time": round(time.time() - started, 1),
                }
                _append_log(out, {**record, **terms.as_floats()})
            if step % cfg.save_every == 0:
                _save(accelerator, model, optimizer, out, step)
            if cfg.out_of_time(started):
                print(f"refiner: {cfg.max_minutes} min budget spent at step {step}/{cfg.steps}; saving")
                break
        if cfg.out_of_time(started):
            break
    bar.close()
    path = _save(accelerator, model, optimizer, out, step)
    return TrainResult(step=step, losses=losses, checkpoint=path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stsam_refiner.train", description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="TrainConfig YAML (configs/refiner/train_*.yaml)")
    parser.add_argument("--data", help="Arrow dataset folder (overrides the config)")
    parser.add_argument("--output-dir", help="output folder (overrides the config)")
    parser.add_argument("--model-config", help="RefinerConfig YAML (overrides the config)")
    parser.add_argument("--init-checkpoint", help="project checkpoint to start from")
    parser.add_argument(
        "--warm-start", help="checkpoint of another refiner config to start from where it fits"
    )
    parser.add_argument("--steps", type=int)
    parser.add_argument("--minutes", type=float, help="wall-time budget: save and stop when spent")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--save-every", type=int)
    parser.add_argument("--threads", type=int)
    parser.add_argument(
        "--device", choices=["auto", "cpu", "cuda"], help="overrides the config (default auto)"
    )
    parser.add_argument("--coarse-source", choices=["gt", "cached"])
    parser.add_argument("--description-column", help="per-image description column ('' for none)")
    args = parser.parse_args(argv)
    names = ("data", "output_dir", "model_config", "init_checkpoint", "warm_start", "steps", "batch_size",
             "lr", "save_every", "threads", "device")  # fmt: skip
    changes = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    if args.description_column is not None:
        changes["description_column"] = args.description_column or None
    if args.coarse_source:
        changes["coarse.source"] = args.coarse_source
    if args.minutes is not None:
        changes["max_minutes"] = args.minutes
    if args.config:
        cfg = TrainConfig.from_yaml(args.config, overrides=changes)
    else:
        cfg = TrainConfig().with_overrides(changes)
    if not cfg.data:
        parser.error("no training data: give --data or set data in the config")
    result = train(cfg)
    tail = result.losses[-10:]
    if os.environ.get("RANK", "0") == "0":
        print(json.dumps({"step": result.step, "checkpoint": str(result.checkpoint), "last_losses": tail}))


if __name__ == "__main__":
    main()
