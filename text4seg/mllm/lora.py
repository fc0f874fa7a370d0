"""LoRA / QLoRA through peft on the language model only; adapter save, load and merge.

The target is a regex anchored on the architecture's language-model prefix: CLIP's vision tower also
has `q_proj`/`v_proj`, and a bare list of layer names would LoRA it too.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from text4seg.mllm.architectures import ArchitectureSpec

PROJECTOR_MODES = ("train", "lora", "freeze")
LM_LINEAR_LAYERS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True, kw_only=True)
class LoraSettings:
    """LoRA hyper-parameters (reference recipe: r 64, alpha 128, dropout 0.05, all LM linear layers)."""

    r: int = 64
    """Rank of each adapter."""
    alpha: int = 128
    """Scaling numerator (update is alpha / r · B·A)."""
    dropout: float = 0.05
    """Dropout on the adapter input."""
    layers: tuple[str, ...] = LM_LINEAR_LAYERS
    """Names of the language model's linear layers that get adapters."""
    projector: str = "train"
    """"train": projector fully trainable and saved with the adapter; "lora": adapters on its linear
    layers; "freeze": untouched."""

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ValueError(f"r {self.r} must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout {self.dropout} not in [0, 1)")
        if self.projector not in PROJECTOR_MODES:
            raise ValueError(f"projector {self.projector!r} not in {PROJECTOR_MODES}")
        if not self.layers:
            raise ValueError("layers is empty: LoRA needs at least one language-model linear layer")
        object.__setattr__(self, "layers", tuple(self.layers))


def lora_target_regex(model, *, spec: ArchitectureSpec, settings: LoraSettings) -> str:
    """Full-match regex over module names: the LM's chosen linear layers (+ projector linears if "lora")."""
    language = rf"{re.escape(spec.language_model)}\.(?:.*\.)?(?:{'|'.join(map(re.escape, settings.layers))})"
    if settings.projector != "lora":
        return language
    projector = "|".join(re.escape(name) for name in spec.module_names(model, "projector"))
    if not projector:
        raise ValueError(f"projector pattern {spec.projector!r} matched no linear layer")
    return rf"(?:{language})|(?:{projector})"


def _projector_module_names(model, spec: ArchitectureSpec) -> list[str]:
    """The projector module itself, for peft's `modules_to_save` (saved in full with the adapter)."""
    if spec.projector not in dict(model.named_modules()):
        raise ValueError(f"projector {spec.projector!r} is not a module of {type(model).__name__}")
    return [spec.projector]


def attach_lora(model, *, spec: ArchitectureSpec, settings: LoraSettings, quantized: bool = False):
    """Wrap `model` in a `PeftModel` with fresh adapters; only adapters (+ projector if "train") train."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if quantized:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=lora_target_regex(model, spec=spec, settings=settings),
        modules_to_save=_projector_module_names(model, spec) if settings.projector == "train" else None,
        bias="none",
    )
    peft_model = get_peft_model(model, config)
    leaked = [
        n for n, p in peft_model.named_parameters() if p.requires_grad and spec.part_of(n) == "vision_tower"
    ]
    if leaked:
        raise ValueError(f"{len(leaked)} vision-tower parameters are trainable, e.g. {leaked[0]}")
    return peft_model


def save_adapter(model, out_dir: str | Path) -> Path:
    """Write the adapter weights (+ trainable projector) and `adapter_config.json` as safetensors."""
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir, safe_serialization=True)
    return out_dir


def load_adapter(model, adapter_dir: str | Path, *, trainable: bool = False):
    """Attach a saved adapter to a freshly loaded base model."""
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=trainable)


def merge_adapter(peft_model):
    """Fold the adapters into a full-precision base and return the plain transformers model."""
    if getattr(peft_model, "is_loaded_in_4bit", False) or getattr(peft_model, "is_loaded_in_8bit", False):
        raise ValueError(
            "the base is quantized: merge with text4seg.mllm.loading.merge_qlora_adapter(base_path, adapter_dir)"
        )
    return peft_model.merge_and_unload()


READING_ADAPTER = "reading_adapter"
"""Name of the reading adapter and of its folder inside an MLLM checkpoint (peft saves an adapter that
is not "default" under a folder of its own name)."""


def attach_reading_adapter(model, *, spec: ArchitectureSpec, rank: int):
    """Wrap ``model`` (a tower grown with ``reading_hint``) in a `PeftModel` with the reading adapter:
    rank-``rank`` LoRA on every language-model linear layer and a trainable copy of the tower's hint
    branch (peft ``modules_to_save``). Only the adapter trains; with it switched off the model answers
    exactly as ``model`` (the grown branch starts as no change), which is how every query without a
    read word is asked (:func:`reading_adapter_on`)."""
    from peft import LoraConfig, get_peft_model

    branch = f"{spec.vision_tower}.extra"
    if branch not in dict(model.named_modules()):
        raise ValueError(
            "the reading adapter needs a tower with the reading hint "
            "(python -m text4seg.mllm.text_vision grow SRC OUT --reading-hint)"
        )
    settings = LoraSettings(r=rank, alpha=2 * rank, dropout=0.0, projector="freeze")
    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=lora_target_regex(model, spec=spec, settings=settings),
        modules_to_save=[branch],
        bias="none",
    )
    return get_peft_model(model, config, adapter_name=READING_ADAPTER)


def load_reading_adapter(model, checkpoint: str | Path, *, trainable: bool = False):
    """Attach ``checkpoint/reading_adapter`` to ``model`` (the checkpoint's own weights); switched off
    unless ``trainable`` (a training run resuming it)."""
    from peft import PeftModel

    folder = Path(checkpoint) / READING_ADAPTER
    if not (folder / "adapter_config.json").is_file():
        raise FileNotFoundError(
            f"{checkpoint}: inference.json names a reading adapter, but {folder} has none"
        )
    peft_model = PeftModel.from_pretrained(
        model, str(folder), adapter_name=READING_ADAPTER, is_trainable=trainable
    )
    if not trainable:
        peft_model.base_model.disable_adapter_layers()
    return peft_model


@contextmanager
def reading_adapter_on(model, on: bool):
    """Within the block the reading adapter is on when ``on`` (a query whose hint shows a read word);
    a model without one is left as it is."""
    if not on or READING_ADAPTER not in getattr(model, "peft_config", {}):
        yield model
        return
    model.base_model.enable_adapter_layers()
    try:
        yield model
    finally:
        model.base_model.disable_adapter_layers()
