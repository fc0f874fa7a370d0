"""Fine-tune the MLLM on R-RLE chat data with the HF Trainer: LoRA/QLoRA, DeepSpeed ZeRO-2/3, resume.

Run it from a launcher (``scripts/train_mllm.sh``) or directly::

    python -m text4seg.mllm.train --config configs/train/tiny_llava.yaml output_dir=runs/x lora.r=8

One process trains alone; ``torchrun`` / ``deepspeed`` launchers start one per device and this module
joins them (gloo on CPU, NCCL on GPU). ``zero_stage`` picks ``text4seg/mllm/deepspeed/zero<stage>.json``,
whose "auto" fields the Trainer fills from the training arguments. Only the trainable weights are
saved (peft adapter + projector), gathered ZeRO-3-safely by :mod:`text4seg.mllm.distributed`.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path

from text4seg.mllm.collator import ChatCollator
from text4seg.mllm.distributed import init_process_state, save_trainable
from text4seg.mllm.loading import load_mllm
from text4seg.mllm.lora import attach_lora
from text4seg.mllm.train_config import TrainConfig

LOSS_HISTORY_NAME = "loss_history.json"
CONFIG_NAME = "train_config.yaml"


@dataclass(kw_only=True)
class TrainResult:
    """What a finished run produced."""

    output_dir: Path
    """Folder holding the final adapter (``adapter_model.safetensors``) and the processor."""
    global_step: int
    """Optimizer steps done in total (including steps before a resume)."""
    losses: list[tuple[int, float]]
    """(step, training loss) pairs as logged, averaged over processes and the logging window."""
    resumed_from: str | None
    """Checkpoint folder the run continued from, or None."""


def _precision_flags(precision: str) -> dict:
    import torch

    if precision == "auto":
        if not torch.cuda.is_available():
            precision = "fp32"
        else:
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def training_arguments(config: TrainConfig):
    """The transformers ``TrainingArguments`` for ``config`` (call after :func:`init_process_state`)."""
    import torch
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=config.output_dir,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.lr,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_ratio,
        weight_decay=config.weight_decay,
        max_grad_norm=config.grad_clip,
        num_train_epochs=config.num_train_epochs,
        max_steps=config.max_steps,
        optim="adamw_torch",
        activation_checkpointing=config.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if config.gradient_checkpointing else None,
        seed=config.seed,
        data_seed=config.seed,
        logging_steps=config.log_every,
        save_strategy="steps",
        save_steps=config.save_every,
        save_total_limit=config.save_total_limit,
        deepspeed=config.deepspeed_config,
        # The collator needs the raw image and messages columns.
        remove_unused_columns=False,
        dataloader_num_workers=config.dataloader_num_workers,
        dataloader_pin_memory=torch.cuda.is_available(),
        use_cpu=not torch.cuda.is_available(),
        accelerator_config={"use_configured_state": True},
        report_to="none",
        disable_tqdm=True,
        **_precision_flags(config.precision),
    )


def last_complete_checkpoint(output_dir: str | Path) -> str | None:
    """Newest ``checkpoint-<step>`` with its ``trainer_state.json`` (written last), or None.

    A process killed while writing a checkpoint leaves a folder without that file; it is skipped.
    """
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    steps = []
    for child in folder.glob("checkpoint-*"):
        suffix = child.name.removeprefix("checkpoint-")
        if suffix.isdigit() and (child / "trainer_state.json").is_file():
            steps.append((int(suffix), child))
    return str(max(steps)[1]) if steps else None


def resolve_resume(config: TrainConfig) -> str | None:
    """The checkpoint to resume from according to ``config.resume``."""
    if config.resume == "never":
        return None
    if config.resume == "auto":
        return last_complete_checkpoint(config.output_dir)
    if not (Path(config.resume) / "trainer_state.json").is_file():
        raise ValueError(f"resume {config.resume!r} is not a complete checkpoint (no trainer_state.json)")
    return config.resume


def load_train_dataset(config: TrainConfig):
    """The conversation builder's Arrow dataset (a ``Dataset`` or one split of a ``DatasetDict``)."""
    from datasets import DatasetDict, load_from_disk

    data = load_from_disk(config.data_path)
    if isinstance(data, DatasetDict):
        if config.data_split not in data:
            raise ValueError(f"split {config.data_split!r} not in {sorted(data)} at {config.data_path}")
        data = data[config.data_split]
    missing = {"image", "messages"} - set(data.column_names)
    if missing:
        raise ValueError(f"{config.data_path} lacks columns {sorted(missing)}; has {data.column_names}")
    return data


def _trainer_class():
    """A Trainer whose checkpoints hold only the trainable weights, saved ZeRO-3-safely."""
    from transformers import Trainer

    class MllmTrainer(Trainer):
        def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
            output_dir = output_dir or self.args.output_dir
            # Every rank joins the gather inside save_trainable; only the main process writes.
            save_trainable(self.model, output_dir, is_main_process=self.args.should_save)
            if self.args.should_save and self.processing_class is not None:
                self.processing_class.save_pretrained(output_dir)

    return MllmTrainer


def _device_map(config: TrainConfig):
    """bitsandbytes needs the 4-bit weights placed at load time; otherwise the Trainer places the model
    (and under ZeRO-3 a device_map would defeat the sharded load)."""
    import torch

    if config.quantization is None:
        return None
    return {"": int(os.environ.get("LOCAL_RANK", "0"))} if torch.cuda.is_available() else "cpu"


def build_trainer(config: TrainConfig, *, callbacks=()):
    """Process group, model with adapters, dataset, collator and Trainer for ``config``."""
    import torch

    if config.threads:
        torch.set_num_threads(config.threads)
    init_process_state(deepspeed=config.zero_stage > 0)
    # TrainingArguments before the model: under ZeRO-3 from_pretrained then loads weights sharded.
    args = training_arguments(config)
    loaded = load_mllm(config.model_path, quantization=config.quantization, device_map=_device_map(config))
    # Seed right before the adapters are drawn: ZeRO-3's sharded load consumes random numbers that a
    # plain load does not, and the runs must start from the same adapters to be comparable.
    torch.manual_seed(config.seed)
    loaded.model = attach_lora(
        loaded.model, spec=loaded.spec, settings=config.lora, quantized=config.quantization is not None
    )
    loaded.model.train()
    collator = ChatCollator(processor=loaded.processor, max_length=config.max_length)
    trainer = _trainer_class()(
        model=loaded.model,
        args=args,
        train_dataset=load_train_dataset(config),
        data_collator=collator,
        processing_class=loaded.processor,
        callbacks=list(callbacks),
    )
    return trainer


def _write_run_files(trainer, config: TrainConfig) -> list[tuple[int, float]]:
    import yaml

    losses = [(int(e["step"]), float(e["loss"])) for e in trainer.state.log_history if "loss" in e]
    if trainer.args.should_save:
        out = Path(config.output_dir)
        (out / LOSS_HISTORY_NAME).write_text(json.dumps([{"step": s, "loss": v} for s, v in losses]))
        (out / CONFIG_NAME).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    return losses


def train(config: TrainConfig, *, callbacks=()) -> TrainResult:
    """Run (or resume) training and save the final trainable weights to ``config.output_dir``."""
    trainer = build_trainer(config, callbacks=callbacks)
    resume = resolve_resume(config)
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(config.output_dir)
    losses = _write_run_files(trainer, config)
    trainer.accelerator.wait_for_everyone()
    return TrainResult(
        output_dir=Path(config.output_dir),
        global_step=trainer.state.global_step,
        losses=losses,
        resumed_from=resume,
    )


def parse_args(argv=None) -> TrainConfig:
    parser = argparse.ArgumentParser(
        prog="python -m text4seg.mllm.train",
        description="Fine-tune the MLLM on R-RLE chat data (LoRA/QLoRA, DeepSpeed ZeRO-2/3, resume).",
    )
    parser.add_argument("--config", required=True, help="training YAML (see configs/train/)")
    parser.add_argument(
        "overrides", nargs="*", help="key=value overrides, e.g. zero_stage=3 lora.r=8 resume=never"
    )
    # Launchers add --local_rank / --local-rank; the rank is read from the environment instead.
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    return TrainConfig.from_yaml(args.config, overrides=args.overrides)


def _backend() -> str | None:
    """The process group's backend (``nccl``, ``gloo``), None when the run had none."""
    import torch.distributed as dist

    return dist.get_backend() if dist.is_available() and dist.is_initialized() else None


def main(argv=None, *, callbacks=()) -> TrainResult:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    result = train(parse_args(argv), callbacks=callbacks)
    if int(os.environ.get("RANK", "0")) == 0:
        last = result.losses[-1] if result.losses else None
        summary = {"global_step": result.global_step, "last_loss": last, "resumed_from": result.resumed_from}
        print(json.dumps({**summary, "output_dir": str(result.output_dir), "backend": _backend()}))
    return result


if __name__ == "__main__":
    main()
