"""What every trainer of the project shares: the optimizer-loop settings and the learning-rate schedule.

Trainer configs subclass :class:`TrainingArguments` (the MLLM LoRA trainer, whose steps and warm-up
follow transformers' ``TrainingArguments``) or :class:`CosineTrainingArguments` (the hand-written
loops: a fixed number of steps, linear warm-up, cosine decay to a floor), and redeclare a field only
to change its default. The YAML files stay flat: inherited fields are top-level keys like the rest.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

from text4seg.core.config import Config

_DEVICE = re.compile(r"cpu|auto|cuda(:\d+)?")
MIN_LR_RATIO = 0.1
"""Floor of the cosine decay as a fraction of the peak learning rate."""


def warmup_cosine(
    step: int, *, warmup_steps: int, total_steps: int, min_ratio: float = MIN_LR_RATIO
) -> float:
    """Learning-rate factor for 0-based optimizer ``step``: linear warm-up from 1/warmup_steps to 1,
    then cosine decay to ``min_ratio`` at ``total_steps`` (held there after).

    A pure function of the step, so a resumed run recomputes exactly the factors an uninterrupted
    one used (``LambdaLR(..., last_epoch=start - 1)`` or setting each group's lr per step).
    transformers' ``get_cosine_with_min_lr_schedule_with_warmup`` starts its warm-up at 0 instead,
    which would change every run trained so far.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


@dataclass(frozen=True, kw_only=True)
class TrainingArguments(Config):
    """Settings of the optimizer loop that every trainer has, with the same names and meaning."""

    batch_size: int = 8
    """Samples per process per optimizer step (per micro-step where gradients are accumulated)."""
    lr: float = 1e-4
    """Peak AdamW learning rate."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    grad_clip: float = 1.0
    """Gradient-norm clip (0: off)."""
    seed: int = 0
    """Seed of the run (weight init, data order, augmentation: each trainer says which)."""
    threads: int = 0
    """``torch.set_num_threads`` per process (0: leave torch's default)."""
    log_every: int = 10
    """Optimizer steps between log lines."""
    save_every: int = 100
    """Optimizer steps between resumable checkpoints (one is also written at the end)."""

    def __post_init__(self) -> None:
        for name in ("batch_size", "log_every", "save_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} {getattr(self, name)} must be >= 1")
        if self.lr <= 0:
            raise ValueError(f"lr {self.lr} must be > 0")
        for name in ("weight_decay", "grad_clip", "threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} {getattr(self, name)} must be >= 0")


@dataclass(frozen=True, kw_only=True)
class CosineTrainingArguments(TrainingArguments):
    """A fixed number of steps with linear warm-up and cosine decay to 10 % (:func:`warmup_cosine`)."""

    steps: int = 1000
    """Optimizer steps in total (a resumed run continues up to this number)."""
    warmup_steps: int = 50
    """Linear warm-up steps, then cosine decay to 10 % of ``lr`` at ``steps``."""
    max_minutes: float = 0.0
    """Wall-time budget of this call (0: none): past it the run saves a checkpoint and stops early,
    with the schedule unchanged, so a cut-off build still leaves a usable, resumable model."""
    device: str = "cpu"
    """Where the model and each batch live: ``cpu``, ``cuda``, ``cuda:N``, or ``auto`` (CUDA when
    available); bf16 autocast runs on this device's type."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_minutes < 0:
            raise ValueError(f"max_minutes {self.max_minutes} must be >= 0")
        if not _DEVICE.fullmatch(self.device):
            raise ValueError(f"device {self.device!r} is not cpu, cuda, cuda:N or auto")
        if self.steps < 1:
            raise ValueError(f"steps {self.steps} must be >= 1")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps {self.warmup_steps} must be >= 0")

    def out_of_time(self, started: float) -> bool:
        """True once ``max_minutes`` have passed since ``started`` (a ``time.time()`` value)."""
        return self.max_minutes > 0 and time.time() - started > 60 * self.max_minutes

    def torch_device(self):
        """``device`` as a ``torch.device`` (``auto`` resolved); ``ValueError`` when CUDA is asked
        for and this machine has none."""
        import torch

        name = ("cuda" if torch.cuda.is_available() else "cpu") if self.device == "auto" else self.device
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {self.device!r}: torch {torch.__version__} sees no CUDA device here")
        return torch.device(name)

    def lr_factor(self, step: int) -> float:
        """Learning-rate factor of 0-based optimizer ``step`` (multiply each group's peak lr by it)."""
        return warmup_cosine(step, warmup_steps=self.warmup_steps, total_steps=self.steps)
