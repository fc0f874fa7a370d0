"""All distributed and ZeRO code of MLLM training: process-group setup, gather, save, memory accounting.

Why one module: ZeRO-3 partitions every parameter across ranks (``param.data`` is an empty
placeholder, the rank's slice lives in ``param.ds_tensor``), so any code that reads weights outside
the engine's forward pass must gather them first, on every rank at once. Keeping that code here
means one place to get it right (peft's ZeRO-3 save bugs came from code that forgot to).

- :func:`init_process_state` makes the HF Trainer + accelerate + DeepSpeed work on CPU over gloo.
- :func:`gathered_trainable_state_dict` collects the trainable weights (LoRA, projector) whole.
- :func:`save_trainable` writes them as a peft adapter (+ a safetensors file for trainable
  weights that are not part of the adapter), loadable without DeepSpeed.
- :func:`state_bytes` counts the bytes a rank holds for parameters, gradients and optimizer state.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

EXTRA_WEIGHTS_NAME = "non_lora_trainables.safetensors"
"""Trainable weights outside the peft adapter (e.g. a projector trained without modules_to_save)."""


def world_size() -> int:
    """Number of processes the launcher started (1 when run directly)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_process_state(*, deepspeed: bool):
    """Create accelerate's process state before ``TrainingArguments`` so the Trainer uses it.

    On a machine without GPUs accelerate finds no backend and counts a single process, and DeepSpeed
    then rejects the batch size (micro × accumulation × world). Creating ``PartialState`` with gloo
    first, plus ``accelerator_config={"use_configured_state": True}`` in the training arguments, makes
    every process join one gloo group. On GPUs accelerate's default (NCCL) is kept. Without
    DeepSpeed, several processes train with DDP over gloo.
    """
    import torch
    from accelerate import PartialState

    if deepspeed:
        os.environ["ACCELERATE_USE_DEEPSPEED"] = "true"
    if torch.cuda.is_available():
        return PartialState()
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    if deepspeed:
        return PartialState(backend="gloo")
    # cpu=True is what makes accelerate call several CPU processes MULTI_CPU (and wrap the model in
    # DDP); without it each rank would train alone, unsynchronized, on its slice of the data.
    return PartialState(cpu=True, backend="gloo") if world_size() > 1 else PartialState(cpu=True)


def is_partitioned(param) -> bool:
    """True for a ZeRO-3 parameter (its data lives in shards on every rank)."""
    return hasattr(param, "ds_id")


def gathered_trainable_state_dict(model) -> dict:
    """Full CPU copies of every trainable parameter, keyed like ``model.state_dict()``.

    Collective under ZeRO-3: every rank must call it (each one gets the same dict back).
    Without ZeRO-3 it is a plain copy.
    """
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    partitioned = [p for _, p in named if is_partitioned(p)]
    if not partitioned:
        return {name: p.detach().to("cpu", copy=True) for name, p in named}
    import deepspeed

    # modifier_rank=None: read-only gather, nothing is written back to the shards afterwards.
    with deepspeed.zero.GatheredParameters(partitioned, modifier_rank=None):
        state = {name: p.detach().to("cpu", copy=True) for name, p in named}
    empty = [name for name, t in state.items() if t.numel() == 0]
    if empty:
        raise ValueError(f"{len(empty)} parameters are still empty after the ZeRO-3 gather, e.g. {empty[0]}")
    return state


def _adapter_key(name: str) -> bool:
    return "lora_" in name or ".modules_to_save." in name


def save_trainable(model, output_dir: str | Path, *, is_main_process: bool) -> list[Path]:
    """Save a (peft) model's trainable weights from any ZeRO stage; returns the files written.

    Collective: every rank calls it, only the main process writes. A peft model writes
    ``adapter_config.json`` + ``adapter_model.safetensors`` (LoRA and ``modules_to_save``); trainable
    weights outside the adapter are written to :data:`EXTRA_WEIGHTS_NAME` with their full names.
    """
    from safetensors.torch import save_file

    state = gathered_trainable_state_dict(model)
    if not is_main_process:
        return []
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if hasattr(model, "peft_config"):
        model.save_pretrained(out, state_dict=state, safe_serialization=True)
        written.append(out / "adapter_model.safetensors")
        state = {k: v for k, v in state.items() if not _adapter_key(k)}
    if state:
        save_file(state, str(out / EXTRA_WEIGHTS_NAME), metadata={"format": "pt"})
        written.append(out / EXTRA_WEIGHTS_NAME)
    return written


def load_extra_trainables(model, checkpoint_dir: str | Path) -> list[str]:
    """Load :data:`EXTRA_WEIGHTS_NAME` (if present) into ``model``; returns the names loaded."""
    from safetensors.torch import load_file

    path = Path(checkpoint_dir) / EXTRA_WEIGHTS_NAME
    if not path.exists():
        return []
    state = load_file(str(path))
    params = dict(model.named_parameters())
    missing = [k for k in state if k not in params]
    if missing:
        raise ValueError(f"{len(missing)} saved trainables have no parameter in the model, e.g. {missing[0]}")
    for name, tensor in state.items():
        if params[name].shape != tensor.shape:
            raise ValueError(
                f"{name}: saved shape {tuple(tensor.shape)} != model {tuple(params[name].shape)}"
            )
        params[name].data.copy_(tensor)
    return list(state)


# --- memory accounting ---------------------------------------------------------------------------


@dataclass(kw_only=True)
class StateBytes:
    """Bytes one rank holds, each storage counted once (views and aliases share their storage)."""

    params: int
    """Model parameter storages on this rank (a ZeRO-3 rank holds only its shards)."""
    grads: int
    """Gradient storages (``param.grad``, ZeRO's gradient partitions and reduce buckets)."""
    optimizer: int
    """Optimizer state (Adam moments, step counters) plus separate fp32 master copies of the weights."""

    @property
    def total(self) -> int:
        return self.params + self.grads + self.optimizer


def _tensors_in(value, seen: set[int], depth: int = 0) -> Iterable:
    """``(tensor, is_grad)`` for tensors inside nested lists/tuples/dicts (not arbitrary objects)."""
    import torch

    if id(value) in seen or depth > 4:
        return
    seen.add(id(value))
    if isinstance(value, torch.Tensor):
        yield value, False
        if value.grad is not None:
            yield value.grad, True
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors_in(item, seen, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _tensors_in(item, seen, depth + 1)


def state_bytes(model, optimizer) -> StateBytes:
    """Count parameter, gradient and optimizer-state bytes held by this rank.

    ``optimizer`` is a torch optimizer or a DeepSpeed ZeRO optimizer. Storages are deduplicated by
    address, so ZeRO-3's fp32 "master" partition that aliases the parameter shards is counted once.
    Order of attribution: model parameters and shards, then the inner optimizer's state, then any
    other tensor the ZeRO optimizer holds (by attribute name: ``*grad*`` -> grads, else master copies
    -> optimizer). Call it after ``backward`` and before ``step`` of a step after the first, when
    gradients and optimizer state coexist (the steady-state peak).
    """
    counted: dict[int, str] = {}
    totals = {"params": 0, "grads": 0, "optimizer": 0}

    def add(tensor, kind: str) -> None:
        storage = tensor.untyped_storage()
        if storage.nbytes() and storage.data_ptr() not in counted:
            counted[storage.data_ptr()] = kind
            totals[kind] += storage.nbytes()

    for param in model.parameters():
        add(param.data, "params")
        if hasattr(param, "ds_tensor"):
            add(param.ds_tensor, "params")
    inner = getattr(optimizer, "optimizer", optimizer)
    for tensor, _ in _tensors_in(dict(inner.state), set()):
        add(tensor, "optimizer")
    for param in model.parameters():
        if param.grad is not None:
            add(param.grad, "grads")
    if inner is not optimizer:
        for name, value in vars(optimizer).items():
            kind = "grads" if "grad" in name else "optimizer"
            for tensor, is_grad in _tensors_in(value, set()):
                add(tensor, "grads" if is_grad else kind)
    return StateBytes(**totals)
