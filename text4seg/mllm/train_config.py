"""The MLLM training configuration: one dataclass, loadable from YAML, with ``key=value`` overrides.

The loop settings every trainer shares (batch size, learning rate, weight decay, clipping, seed,
threads, log and save intervals) come from :class:`text4seg.core.training.TrainingArguments`; steps
and warm-up follow transformers' ``TrainingArguments`` (epochs or ``max_steps``, a warm-up ratio,
a named scheduler), which :func:`text4seg.mllm.train.training_arguments` fills from this config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from text4seg.core.training import TrainingArguments
from text4seg.mllm.lora import LoraSettings

DEEPSPEED_CONFIGS = Path(__file__).resolve().parent / "deepspeed"
"""The package's DeepSpeed JSONs (``zero2.json``, ``zero3.json``; shipped in the wheel)."""
ZERO_STAGES = (0, 2, 3)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
QUANTIZATIONS = (None, "4bit")


@dataclass(frozen=True, kw_only=True)
class TrainConfig(TrainingArguments):
    """Everything one training run needs; every field can be overridden from the command line.

    ``seed`` seeds the weights of new adapters, data order and dropout.
    """

    model_path: str
    """Local folder of the base checkpoint (model + processor written by ``save_pretrained``)."""
    data_path: str
    """Arrow dataset from the conversation builder (``datasets.save_to_disk`` folder)."""
    output_dir: str
    """Where checkpoints (``checkpoint-<step>/``), the final adapter and ``loss_history.json`` go."""
    data_split: str = "train"
    """Split to train on when ``data_path`` holds a ``DatasetDict``."""
    zero_stage: int = 0
    """DeepSpeed ZeRO stage: 0 (no DeepSpeed; DDP when launched with several processes), 2 or 3."""
    deepspeed_config: str | None = None
    """DeepSpeed JSON; derived as the package's ``text4seg/mllm/deepspeed/zero<stage>.json`` when unset and stage > 0."""
    precision: str = "auto"
    """"auto" (bf16 on GPUs that support it, else fp16 on GPU, fp32 on CPU), "fp32", "bf16", "fp16"."""
    quantization: str | None = None
    """None or "4bit" (QLoRA: the language model in nf4, adapters in full precision)."""
    lora: LoraSettings = field(default_factory=LoraSettings)
    """Adapter rank, alpha, dropout, target layers and projector mode ("train" | "lora" | "freeze")."""
    max_length: int = 2048
    """Longest tokenized sample (image tokens included); longer samples raise instead of being cut."""
    batch_size: int = 4
    """Samples per process per micro-step; global batch = this × processes × accumulation."""
    lr: float = 2e-4
    """Peak AdamW learning rate."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    log_every: int = 1
    """Log the loss every this many optimizer steps."""
    save_every: int = 500
    """Write a resumable checkpoint every this many optimizer steps."""
    lr_scheduler: str = "cosine"
    """transformers scheduler name ("cosine", "linear", "constant", ...)."""
    warmup_ratio: float = 0.03
    """Fraction of the steps spent warming the learning rate up."""
    num_train_epochs: float = 5.0
    """Epochs over the data (ignored when ``max_steps`` > 0)."""
    max_steps: int = -1
    """Optimizer steps to run; -1 derives it from ``num_train_epochs``."""
    gradient_accumulation_steps: int = 1
    """Micro-steps per optimizer step."""
    gradient_checkpointing: bool = False
    """Recompute activations in backward to save memory (non-reentrant checkpointing)."""
    save_total_limit: int | None = 2
    """Keep only the newest this many checkpoints (None keeps all)."""
    resume: str = "auto"
    """"auto" (the newest complete checkpoint in ``output_dir``, if any), "never", or a checkpoint folder."""
    dataloader_num_workers: int = 0
    """Worker processes per data loader."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.zero_stage not in ZERO_STAGES:
            raise ValueError(f"zero_stage {self.zero_stage} not in {ZERO_STAGES}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r} not in {PRECISIONS}")
        if self.quantization not in QUANTIZATIONS:
            raise ValueError(f"quantization {self.quantization!r} not in {QUANTIZATIONS}")
        if self.quantization and self.zero_stage == 3:
            raise ValueError(
                "quantization '4bit' with zero_stage 3 is not supported: 4-bit weights cannot be sharded"
            )
        if self.gradient_accumulation_steps < 1:
            raise ValueError(f"gradient_accumulation_steps {self.gradient_accumulation_steps} must be >= 1")
        if self.max_steps < 1 and self.num_train_epochs <= 0:
            raise ValueError(
                f"max_steps {self.max_steps} and num_train_epochs {self.num_train_epochs}: no steps"
            )
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio {self.warmup_ratio} not in [0, 1)")
        if self.max_length < 2:
            raise ValueError(f"max_length {self.max_length} must be >= 2")
        if self.deepspeed_config is None and self.zero_stage:
            derived = str(DEEPSPEED_CONFIGS / f"zero{self.zero_stage}.json")
            object.__setattr__(self, "deepspeed_config", derived)
        if self.deepspeed_config is not None and not self.zero_stage:
            raise ValueError(f"deepspeed_config {self.deepspeed_config!r} given but zero_stage is 0")
