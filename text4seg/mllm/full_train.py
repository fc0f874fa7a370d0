"""Stage 2 of the from-scratch default model: train projector + language model (all weights, no LoRA).

LoRA adapts pretrained weights; the default model's language model starts from random weights, so
every weight is trained here, on the conversation builder's chat rows, with the next-token loss on
the answer (``ChatCollator``) plus an auxiliary per-cell text loss on the vision tower's patch
features (the stage-1 :func:`~text4seg.mllm.vision_pretrain.make_patch_head`), which keeps the
tower's dense signal alive while the language model learns to read it. Before the first step the
projector is rescaled so image embeddings arrive at the scale of text embeddings.

    python -m text4seg.mllm.full_train --config configs/default/mllm_train.yaml

Output folder: ``model/`` (plain ``save_pretrained`` checkpoint + processor), ``patch_head.safetensors``,
``state.pt`` (optimizer + step, for resume), ``log.jsonl``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data_builders.conversations import CONFIG_NAME
from text4seg.core.checkpoints import load_torch_checkpoint
from text4seg.core.codec import BACKGROUND
from text4seg.core.inference import InferenceSettings, load_inference_settings
from text4seg.core.parser import parse_answer
from text4seg.core.training import CosineTrainingArguments
from text4seg.mllm.architectures import architecture_of
from text4seg.mllm.collator import ChatCollator
from text4seg.mllm.loading import load_mllm
from text4seg.mllm.lora import attach_reading_adapter, load_reading_adapter
from text4seg.mllm.text_vision import PooledFeatureCache, frozen_patch_features, tower_parameter_groups
from text4seg.mllm.vision_pretrain import HEAD_NAME, make_patch_head, patch_logits_to_grid, save_stage

TASK_NAMES = ("scene_text", "referring", "describe")


@dataclass(frozen=True, kw_only=True)
class FullTrainConfig(CosineTrainingArguments):
    """One full-parameter MLLM training run; ``seed`` seeds the sampling order."""

    model_path: str
    """Stage-1 folder's ``model/`` (LLaVA with the pretrained vision tower)."""
    head_path: str
    """Stage-1 ``patch_head.safetensors``."""
    data: str
    """Conversation Arrow dataset (``python -m data_builders.conversations``)."""
    output_dir: str
    """Where the checkpoint, head, optimizer state and log go."""
    task_weights: dict[str, float] = field(
        default_factory=lambda: {"scene_text": 0.5, "referring": 0.35, "describe": 0.15}
    )
    """Sampling probability of each task's rows (normalised; tasks absent from the data are dropped)."""
    steps: int = 1500
    """Optimizer steps."""
    batch_size: int = 16
    """Rows per step."""
    lr: float = 1e-3
    """Peak AdamW learning rate of the projector and language model."""
    vision_lr: float = 2e-4
    """Learning rate of the vision tower and patch head (0 freezes them)."""
    backbone_lr: float = 0.0
    """Learning rate of a text_backbone tower's pretrained detector (0 keeps it frozen)."""
    aux_weight: float = 0.5
    """Weight of the per-cell text loss (scene-text rows only)."""
    foreground_label_weight: float = 1.0
    """Cross-entropy weight of the first token of each foreground run's label (1: plain next-token loss;
    > 1 counters the background prior of greedy decoding)."""
    max_length: int = 1024
    """Longest tokenised row (image tokens included)."""
    bf16: bool = True
    """bfloat16 autocast for forward/backward (about 2x faster on CPUs with AVX512-BF16); weights stay fp32."""
    threads: int = 1
    """torch threads."""
    calibrate: bool = True
    """Rescale the projector before the first step (a stage-1 model); False when ``model_path`` is an
    MLLM already trained here (its projector is calibrated and trained)."""
    reading_adapter_rank: int = 0
    """> 0: train only a reading adapter of this LoRA rank (``text4seg.mllm.lora.attach_reading_adapter``;
    ``model_path`` a tower grown with the reading hint), at ``lr``; the checkpoint is ``model_path``'s
    weights with the adapter in ``model/reading_adapter``, which the pipeline switches on only for
    queries with a read word. 0: train the model's own weights."""
    hinted_rows_only: bool = False
    """Train only on the rows whose reading hint shows a word (what a reading adapter is for)."""
    empty_hint_rows: bool = False
    """With ``hinted_rows_only``: also the rows whose query asked the reader and got an empty hint (the
    named word absent or missed, nothing of the named colour); the checkpoint's ``inference.json`` then
    says ``empty_hint_adapter``, so the pipeline switches the adapter on for those queries too."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.empty_hint_rows and not (self.hinted_rows_only and self.reading_adapter_rank):
            raise ValueError("empty_hint_rows adds rows to a reading adapter's hinted_rows_only: set both")
        if self.reading_adapter_rank < 0:
            raise ValueError(f"reading_adapter_rank {self.reading_adapter_rank} must be >= 0")
        if self.vision_lr < 0 or self.aux_weight < 0:
            raise ValueError(f"vision_lr {self.vision_lr} and aux_weight {self.aux_weight} must be >= 0")
        unknown = sorted(set(self.task_weights) - set(TASK_NAMES))
        if unknown or not any(w > 0 for w in self.task_weights.values()):
            raise ValueError(f"task_weights {self.task_weights}: unknown {unknown} or no positive weight")


def answer_text_grid(row: dict) -> np.ndarray | None:
    """grid_h×grid_w float {0,1} of the answer's non-background cells, or None for describe rows."""
    if row["task"] == "describe" or not row["grid_h"]:
        return None
    parsed = parse_answer(row["messages"][-1]["content"], height=row["grid_h"], width=row["grid_w"])
    return np.array([[label != BACKGROUND for label in line] for line in parsed.grid], np.float32)


def calibrate_projector(model, pixel_values) -> dict[str, float]:
    """Rescale the projector so image embeddings have the mean norm of the text embeddings.

    The CLIP tower's last hidden states are not normalised (norm ~70 in a trained tiny tower versus
    ~1 for the language model's embeddings), which drowns the text stream in the residual sum. The
    tower, the projector and its first and last linear layers come from the architecture registry.
    """
    import torch

    spec = architecture_of(model.config)
    if spec.projector_layers is None:
        raise ValueError(
            f"model_type {model.config.model_type!r}: calibration needs a projector MLP outside the vision "
            "tower (ArchitectureSpec.projector_layers)"
        )
    projector = spec.module(model, "projector")
    first, last = (projector.get_submodule(name) for name in spec.projector_layers)
    with torch.no_grad():
        features = spec.module(model, "vision_tower")(
            pixel_values=pixel_values, output_hidden_states=True
        ).hidden_states[-1]
        feature_norm = features.norm(dim=-1).mean().item()
        first.weight.mul_(math.sqrt(features.shape[-1]) / feature_norm)
        image_norm = projector(features).norm(dim=-1).mean().item()
        text_norm = model.get_input_embeddings().weight.norm(dim=-1).mean().item()
        last.weight.mul_(text_norm / image_norm)
        last.bias.mul_(text_norm / image_norm)
    return {"feature_norm": feature_norm, "image_norm_before": image_norm, "text_norm": text_norm}


def hinted_rows(rows, *, empty: bool = False):
    """The rows whose reading hint (the ``hint`` column) has a non-zero pixel; ``empty``: also those
    with an all-zero hint (rows without a hint have none: their query never asks the reader)."""
    if "hint" not in rows.column_names:
        raise ValueError("hinted_rows_only: the rows have no hint column (build them with reading: hint)")
    hints = rows.select_columns(["hint"])
    keep = [
        i
        for i, row in enumerate(hints)
        if row["hint"] is not None and (empty or np.asarray(row["hint"]).max() > 0)
    ]
    if not keep:
        raise ValueError("hinted_rows_only: no row has a non-empty hint")
    return rows.select(keep)


def task_batches(tasks: list[str], weights: dict[str, float], *, batch_size: int, seed: int):
    """Endless iterator of index batches: a task drawn by weight, then rows of that task uniformly.

    One task per batch keeps padding low: describe answers are prose, segmentation answers are grids.
    """
    by_task = {t: np.flatnonzero(np.asarray(tasks) == t) for t in TASK_NAMES}
    names = [t for t in TASK_NAMES if weights.get(t, 0) > 0 and len(by_task[t])]
    probs = np.array([weights[t] for t in names], np.float64)
    probs /= probs.sum()
    rng = np.random.default_rng(seed)
    while True:
        task = names[rng.choice(len(names), p=probs)]
        yield [int(i) for i in rng.choice(by_task[task], size=batch_size)]


def run_start_ids(tokenizer) -> dict[str, int]:
    """Token ids around descriptor runs: what precedes a run's label, and what is not a foreground label."""
    ids = {name: tokenizer.convert_tokens_to_ids(tokenizer.tokenize(piece)[0])
           for name, piece in (("open", "<seg>"), ("row", "\n "), ("sep", "| "), ("close", "</seg>"),
                               ("background", BACKGROUND))}  # fmt: skip
    return ids


def weighted_answer_loss(logits, labels, ids: dict[str, int], foreground_weight: float):
    """Next-token cross-entropy over answer tokens, with weight ``foreground_weight`` on the first token
    of every foreground run's label (the token after ``<seg>``, a row break or ``| `` that is neither
    the background label nor ``</seg>``): a class weight against the background prior, which otherwise
    makes greedy decoding answer all-background whenever the image evidence is less than certain."""
    import torch
    import torch.nn.functional as F

    logits, target = logits[:, :-1].float(), labels[:, 1:]
    valid = target != -100
    previous = labels[:, :-1]
    starts = (previous == ids["open"]) | (previous == ids["row"]) | (previous == ids["sep"])
    foreground = starts & valid & (target != ids["background"]) & (target != ids["close"])
    weight = torch.where(foreground, foreground_weight, 1.0) * valid
    token_loss = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), target.clamp(min=0).reshape(-1), reduction="none"
    )
    return (token_loss * weight.reshape(-1)).sum() / weight.sum().clamp(min=1.0)


def rows_grid(grids: set[tuple[int, int]], rows_config: dict, settings: InferenceSettings) -> dict:
    """The grid, rule and threshold the rows teach, as ``InferenceSettings`` fields: a checkpoint trained
    on them must be asked on that grid and its answers read by that rule. ``grids``: the rows' own
    (grid_h, grid_w) sizes; ``rows_config``: their ``conversation_config.json`` (the rule and threshold;
    may be empty). Rows of several grid sizes keep the settings' grid, which must be one of them."""
    out = {}
    if rows_config.get("grid_rule"):
        out["grid_rule"] = rows_config["grid_rule"]
        if rows_config["grid_rule"] == "area":
            out["grid_threshold"] = float(rows_config["area_threshold"])
    if len(grids) == 1:
        out["grid"] = next(iter(grids))
    elif grids and tuple(settings.grid) not in grids:
        raise ValueError(
            f"the rows teach grids {sorted(grids)}; the checkpoint answers on {tuple(settings.grid)}"
        )
    return out


class _Trainer:
    """Model, head, data and optimizer of one run."""

    def __init__(self, cfg: FullTrainConfig) -> None:
        import datasets
        from safetensors.torch import load_file

        out = Path(cfg.output_dir)
        self.resume = (out / "state.pt").is_file() and (out / "model" / "config.json").is_file()
        source = out / "model" if self.resume else Path(cfg.model_path)
        self.device = cfg.torch_device()  # model and head there; each batch is sent when drawn
        loaded = load_mllm(source)
        self.model, self.processor = loaded.model.to(self.device).train(), loaded.processor
        # The model answers as its source was taught to (grid, rule); saved with every checkpoint.
        self.settings = load_inference_settings(source) or InferenceSettings()
        # The rows decide how content queries are asked; the checkpoint must be asked the same way.
        conversation_config = Path(cfg.data) / CONFIG_NAME
        rows_config = json.loads(conversation_config.read_text()) if conversation_config.is_file() else {}
        if rows_config:
            self.settings = dataclasses.replace(
                self.settings,
                reading=rows_config.get("reading", "none"),
                colour_hint=rows_config.get("colour_hint", False),
                attribute_hint=rows_config.get("attribute_hint", False),
                scene_text_hint=rows_config.get("scene_text_hint", False),
            )
        spec = architecture_of(self.model.config)
        self.tower = spec.module(self.model, "vision_tower")
        self.adapter = cfg.reading_adapter_rank > 0
        if self.adapter:
            if self.settings.reading not in ("hint", "none"):
                raise ValueError(
                    f"a reading adapter answers the reading hint; the rows say reading: {self.settings.reading}"
                )
            self.settings = dataclasses.replace(
                self.settings, reading="hint", reading_adapter=True, empty_hint_adapter=cfg.empty_hint_rows
            )
            self.model = (
                load_reading_adapter(self.model, source, trainable=True)
                if self.resume
                else attach_reading_adapter(self.model, spec=spec, rank=cfg.reading_adapter_rank)
            ).train()
        vision = self.tower.config
        self.n = vision.image_size // vision.patch_size
        head_state = load_file(out / HEAD_NAME if self.resume else cfg.head_path)
        self.k = int(math.isqrt(head_state["1.weight"].shape[0]))
        self.head = make_patch_head(hidden=vision.hidden_size, cells_per_patch=self.k)
        self.head.load_state_dict(head_state)
        self.head.to(self.device)
        self.rows = datasets.load_from_disk(cfg.data)
        # The checkpoint answers on the grid its rows teach (saved with it in inference.json).
        taught = {
            (int(h), int(w)) for h, w in zip(self.rows["grid_h"], self.rows["grid_w"], strict=True) if h
        }
        self.settings = dataclasses.replace(self.settings, **rows_grid(taught, rows_config, self.settings))
        if cfg.hinted_rows_only:
            self.rows = hinted_rows(self.rows, empty=cfg.empty_hint_rows)
        self.collator = ChatCollator(processor=self.processor, max_length=cfg.max_length)
        self.run_starts = run_start_ids(self.processor.tokenizer)
        self.features = {}
        self.tower.register_forward_hook(self._keep_features)
        self.optimizer = self._optimizer(cfg)
        # A frozen detector gives each image the same pooled features every time: computed once per
        # image (by source_id) and fed to the tower in place of the pixels.
        pooled = frozen_patch_features(self.tower)
        self.pooled = None if pooled is None else PooledFeatureCache(pooled)
        self.start = 0
        if self.resume:
            state = load_torch_checkpoint(out / "state.pt")
            self.optimizer.load_state_dict(state["optimizer"])
            self.start = int(state["step"])

    def _keep_features(self, module, args, output) -> None:
        self.features["patches"] = output.hidden_states[-1][:, 1:]

    def _optimizer(self, cfg: FullTrainConfig):
        import torch

        if self.adapter:  # peft left only the adapter trainable
            self.params = [p for p in self.model.parameters() if p.requires_grad]
            return torch.optim.AdamW(
                [{"params": self.params, "lr": cfg.lr, "base_lr": cfg.lr}], weight_decay=cfg.weight_decay
            )
        backbone, tower = tower_parameter_groups(self.tower)
        vision = tower + list(self.head.parameters())
        tower_ids = {id(p) for p in vision + backbone}
        rest = [p for p in self.model.parameters() if id(p) not in tower_ids]
        for params, lr in ((vision, cfg.vision_lr), (backbone, cfg.backbone_lr)):
            for p in params:
                p.requires_grad_(lr > 0)
        groups = [{"params": rest, "lr": cfg.lr, "base_lr": cfg.lr}]
        for params, lr in ((vision, cfg.vision_lr), (backbone, cfg.backbone_lr)):
            if lr > 0 and params:
                groups.append({"params": params, "lr": lr, "base_lr": lr})
        self.params = [p for g in groups for p in g["params"]]
        return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)

    def batch(self, indices: list[int]):
        """Collated tensors for rows `indices`, plus aux targets (B×G×G) and their row weights (B), on the
        run's device."""
        import torch

        rows = [self.rows[i] for i in indices]
        batch = self.collator(rows)
        side = self.n * self.k
        targets = torch.zeros(len(rows), side, side)
        weights = torch.zeros(len(rows))
        for i, row in enumerate(rows):
            grid = answer_text_grid(row) if row["task"] == "scene_text" else None
            if grid is not None and grid.shape == (side, side):
                targets[i], weights[i] = torch.from_numpy(grid), 1.0
        batch = {
            k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()
        }
        if self.pooled is not None:
            batch["pixel_values"] = self.pooled_features(rows, batch["pixel_values"])
        return batch, targets.to(self.device), weights.to(self.device)

    def pooled_features(self, rows: list[dict], pixel_values):
        """The batch's pooled tower features: the image's part from the cache (by ``source_id``); a
        reading hint (a fourth channel, which differs between the rows of one image) pooled afresh."""
        import torch

        pooled = self.pooled([row["source_id"] for row in rows], pixel_values[:, :3])
        if getattr(self.tower.config, "reading_hint", False):
            hint = self.tower.hint_features(pixel_values).flatten(2).transpose(1, 2)
            pooled = torch.cat([pooled[..., : -hint.shape[-1]], hint.to(pooled.dtype)], dim=-1)
        return pooled

    def loss(self, batch, targets, weights, cfg: FullTrainConfig):
        import torch.nn.functional as F

        labels = batch.pop("labels")
        out = self.model(**batch)
        lm = weighted_answer_loss(out.logits, labels, self.run_starts, cfg.foreground_label_weight)
        logits = self.head(self.features.pop("patches"))
        grid = patch_logits_to_grid(logits, patches_per_side=self.n, cells_per_patch=self.k)
        per_row = F.binary_cross_entropy_with_logits(grid, targets, reduction="none").mean(dim=(1, 2))
        aux = (per_row * weights).sum() / weights.sum().clamp(min=1.0)
        return lm + cfg.aux_weight * aux, lm.detach(), aux.detach()


def train_full(cfg: FullTrainConfig) -> dict:
    """Run (or resume) stage 2 up to ``cfg.steps``; returns the last logged record."""
    import torch
    from tqdm.auto import tqdm

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    started, out = time.time(), Path(cfg.output_dir)
    run = _Trainer(cfg)
    out.mkdir(parents=True, exist_ok=True)
    if run.adapter and not run.resume:
        # The checkpoint's own weights are model_path's, unchanged; save_stage's save_pretrained of the
        # peft model writes the adapter beside them (model/reading_adapter).
        shutil.copytree(cfg.model_path, out / "model", dirs_exist_ok=True)
    if not run.resume and cfg.calibrate:
        probe, _, _ = run.batch(list(range(min(8, len(run.rows)))))
        calibration = calibrate_projector(run.model, probe["pixel_values"])
        (out / "calibration.json").write_text(json.dumps(calibration))
    batches = task_batches(
        run.rows["task"], cfg.task_weights, batch_size=cfg.batch_size, seed=cfg.seed + run.start
    )
    run.model.train()
    window: list[tuple[float, float]] = []
    record: dict = {}
    for step in tqdm(range(run.start + 1, cfg.steps + 1), desc="mllm", initial=run.start, total=cfg.steps):
        for group in run.optimizer.param_groups:
            group["lr"] = group["base_lr"] * cfg.lr_factor(step - 1)
        batch, targets, weights = run.batch(next(batches))
        with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            total, lm, aux = run.loss(batch, targets, weights, cfg)
        total.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(run.params, cfg.grad_clip)
        run.optimizer.step()
        run.optimizer.zero_grad(set_to_none=True)
        window.append((float(lm), float(aux)))
        stop = cfg.out_of_time(started)
        if step % cfg.log_every == 0 or step == cfg.steps or stop:
            lm_mean, aux_mean = (float(np.mean(v)) for v in zip(*window, strict=True))
            record = {
                "step": step,
                "lm_loss": lm_mean,
                "aux_loss": aux_mean,
                "time": round(time.time() - started, 1),
            }
            if step % cfg.save_every == 0 or step == cfg.steps or stop:
                save_stage(out, run, step)
            with open(out / "log.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            window = []
        if stop:
            print(f"mllm: {cfg.max_minutes} min budget spent at step {step}/{cfg.steps}; saved")
            break
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m text4seg.mllm.full_train", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--config", required=True, help="FullTrainConfig YAML (configs/default/mllm_train.yaml)"
    )
    parser.add_argument("--model-path")
    parser.add_argument("--head-path")
    parser.add_argument("--data")
    parser.add_argument("--output-dir")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--minutes", type=float, help="wall-time budget: save and stop when spent")
    parser.add_argument("--device", help="cpu | cuda | cuda:N | auto (overrides the config)")
    args = parser.parse_args(argv)
    given = {"model_path": args.model_path, "head_path": args.head_path, "data": args.data,
             "output_dir": args.output_dir, "steps": args.steps, "max_minutes": args.minutes,
             "device": args.device}  # fmt: skip
    overrides = {key: value for key, value in given.items() if value is not None}
    cfg = FullTrainConfig.from_yaml(args.config, overrides=overrides)
    print(json.dumps({**train_full(cfg), "config": cfg.to_dict()}))


if __name__ == "__main__":
    main()
