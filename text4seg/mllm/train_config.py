"""The MLLM training configuration: one dataclass, loadable from YAML, with ``key=value`` overrides."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from text4seg.mllm.lora import LoraSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
ZERO_STAGES = (0, 2, 3)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
QUANTIZATIONS = (None, "4bit")


@dataclass(kw_only=True)
class TrainConfig:
    """Everything one training run needs; every field can be overridden from the command line."""

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
    """DeepSpeed JSON; derived as ``configs/deepspeed/zero<stage>.json`` when unset and stage > 0."""
    precision: str = "auto"
    """"auto" (bf16 on GPUs that support it, else fp16 on GPU, fp32 on CPU), "fp32", "bf16", "fp16"."""
    quantization: str | None = None
    """None or "4bit" (QLoRA: the language model in nf4, adapters in full precision)."""
    lora: LoraSettings = field(default_factory=LoraSettings)
    """Adapter rank, alpha, dropout, target layers and projector mode ("train" | "lora" | "freeze")."""
    max_length: int = 2048
    """Longest tokenized sample (image tokens included); longer samples raise instead of being cut."""
    learning_rate: float = 2e-4
    """Peak AdamW learning rate."""
    lr_scheduler: str = "cosine"
    """transformers scheduler name ("cosine", "linear", "constant", ...)."""
    warmup_ratio: float = 0.03
    """Fraction of the steps spent warming the learning rate up."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm (0 disables)."""
    num_train_epochs: float = 5.0
    """Epochs over the data (ignored when ``max_steps`` > 0)."""
    max_steps: int = -1
    """Optimizer steps to run; -1 derives it from ``num_train_epochs``."""
    per_device_batch_size: int = 4
    """Samples per process per micro-step; global batch = this × processes × accumulation."""
    gradient_accumulation_steps: int = 1
    """Micro-steps per optimizer step."""
    gradient_checkpointing: bool = False
    """Recompute activations in backward to save memory (non-reentrant checkpointing)."""
    seed: int = 0
    """Seed for weights of new adapters, data order and dropout."""
    logging_steps: int = 1
    """Log the loss every this many optimizer steps."""
    save_steps: int = 500
    """Write a resumable checkpoint every this many optimizer steps."""
    save_total_limit: int | None = 2
    """Keep only the newest this many checkpoints (None keeps all)."""
    resume: str = "auto"
    """"auto" (the newest complete checkpoint in ``output_dir``, if any), "never", or a checkpoint folder."""
    dataloader_num_workers: int = 0
    """Worker processes per data loader."""
    torch_threads: int = 0
    """``torch.set_num_threads`` per process; 0 leaves torch's default."""

    def __post_init__(self) -> None:
        # YAML 1.1 reads "1e-3" (no dot) as a string; float fields take it as the number it means.
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "float" and isinstance(value, str | int) and not isinstance(value, bool):
                try:
                    setattr(self, f.name, float(value))
                except ValueError:
                    raise ValueError(f"{f.name} {value!r} is not a number") from None
        if isinstance(self.lora, dict):
            self.lora = LoraSettings(**self.lora)
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
        for name in ("per_device_batch_size", "gradient_accumulation_steps", "logging_steps", "save_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} {getattr(self, name)} must be >= 1")
        if self.max_steps < 1 and self.num_train_epochs <= 0:
            raise ValueError(
                f"max_steps {self.max_steps} and num_train_epochs {self.num_train_epochs}: no steps"
            )
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio {self.warmup_ratio} not in [0, 1)")
        if self.max_length < 2:
            raise ValueError(f"max_length {self.max_length} must be >= 2")
        if self.deepspeed_config is None and self.zero_stage:
            self.deepspeed_config = str(REPO_ROOT / "configs" / "deepspeed" / f"zero{self.zero_stage}.json")
        if self.deepspeed_config is not None and not self.zero_stage:
            raise ValueError(f"deepspeed_config {self.deepspeed_config!r} given but zero_stage is 0")

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
        """Read ``path`` and apply ``key=value`` overrides (YAML values; ``lora.r=8`` for nested keys)."""
        import yaml

        data = yaml.safe_load(Path(path).read_text()) or {}
        return cls.from_dict(apply_overrides(data, overrides))

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training config keys {unknown}; known: {sorted(known)}")
        return cls(**data)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["lora"]["layers"] = list(data["lora"]["layers"])
        return data


def apply_overrides(data: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """Return a copy of ``data`` with ``key=value`` strings applied (values parsed as YAML scalars)."""
    import copy

    import yaml

    data = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} is not key=value")
        *parents, leaf = key.split(".")
        node = data
        for parent in parents:
            node = node.setdefault(parent, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {parent!r} is not a mapping")
        node[leaf] = yaml.safe_load(raw)
    return data
