"""One loading path for image-text-to-text checkpoints in a local folder.

The architecture is whatever the checkpoint's own `config.json` says (`model_type`); per-architecture
details — which modules are the language model, the vision tower and the projector — come from the
`ARCHITECTURES` registry keyed by that string, never from the folder name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from text4seg.mllm.lora import LoraSettings

DTYPES = ("float32", "bfloat16", "float16")
QUANTIZATIONS = (None, "4bit", "8bit")


@dataclass(frozen=True, kw_only=True)
class ArchitectureSpec:
    """Where the parts of one multimodal architecture live, as dotted module prefixes."""

    language_model: str
    """The language model's decoder (LoRA targets its linear layers only)."""
    vision_tower: str
    """The vision encoder (always frozen); modules under `projector` are not part of it."""
    projector: str
    """The vision→language projector (trainable, LoRA'd or frozen per `LoraSettings`)."""
    lm_head: str = "lm_head"
    """Output projection (kept in full precision when the LM is quantized)."""

    def part_of(self, name: str) -> str | None:
        """Which part ("language_model", "vision_tower", "projector", "lm_head") a module/parameter
        name belongs to, with or without peft's `base_model.model.` prefix."""
        name = name.removeprefix("base_model.model.")
        # The projector is checked first: Qwen2-VL nests it inside the vision module.
        for part in ("projector", "vision_tower", "language_model", "lm_head"):
            prefix = getattr(self, part)
            if name == prefix or name.startswith(prefix + "."):
                return part
        return None

    def module_names(self, model, part: str) -> list[str]:
        """Names of the linear leaf modules (plain or bitsandbytes) that belong to `part`."""
        return [
            name
            for name, module in model.named_modules()
            if _is_linear(module) and self.part_of(name) == part
        ]


def _is_linear(module) -> bool:
    import torch

    return isinstance(module, torch.nn.Linear) or type(module).__name__ in ("Linear4bit", "Linear8bitLt")


ARCHITECTURES: dict[str, ArchitectureSpec] = {
    "llava": ArchitectureSpec(
        language_model="model.language_model",
        vision_tower="model.vision_tower",
        projector="model.multi_modal_projector",
    ),
    # Qwen2-VL keeps its projector (the patch merger) inside the vision module.
    "qwen2_vl": ArchitectureSpec(
        language_model="model.language_model",
        vision_tower="model.visual",
        projector="model.visual.merger",
    ),
}
ARCHITECTURES["qwen2_5_vl"] = ARCHITECTURES["qwen2_vl"]


def architecture_of(config) -> ArchitectureSpec:
    """The registry entry for a transformers config (by its `model_type`)."""
    try:
        return ARCHITECTURES[config.model_type]
    except KeyError:
        raise ValueError(
            f"model_type {config.model_type!r} has no entry in ARCHITECTURES {sorted(ARCHITECTURES)}"
        ) from None


@dataclass(kw_only=True)
class MllmConfig:
    """How to load the multimodal LLM."""

    path: str
    """Local folder written by `save_pretrained` (model + processor)."""
    dtype: str = "float32"
    """Weights dtype: float32 on CPU, bfloat16/float16 on GPU."""
    quantization: str | None = None
    """None, "4bit" (nf4 + double quant, for QLoRA) or "8bit"; the language model only."""
    lora: LoraSettings | None = None
    """New LoRA adapters to attach for training, or None."""
    adapter: str | None = None
    """Folder of a saved LoRA adapter to load on top (exclusive with `lora`)."""
    device_map: str = "cpu"
    """Passed to `from_pretrained` ("cpu", "auto", ...)."""

    def __post_init__(self) -> None:
        if isinstance(self.lora, dict):
            self.lora = LoraSettings(**self.lora)
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype {self.dtype!r} not in {DTYPES}")
        if self.quantization not in QUANTIZATIONS:
            raise ValueError(f"quantization {self.quantization!r} not in {QUANTIZATIONS}")
        if self.lora is not None and self.adapter is not None:
            raise ValueError("give either lora (new adapters) or adapter (saved ones), not both")

    @classmethod
    def from_yaml(cls, path: str | Path) -> MllmConfig:
        import yaml

        return cls(**yaml.safe_load(Path(path).read_text()))


@dataclass
class LoadedMllm:
    """A loaded model with what is needed to run and fine-tune it."""

    model: Any
    """`PreTrainedModel` (or `PeftModel` wrapping it when LoRA is attached), in eval mode."""
    processor: Any
    """The checkpoint's `ProcessorMixin` (tokenizer + image processor + chat template)."""
    spec: ArchitectureSpec
    """Registry entry chosen by `model.config.model_type`."""
    config: MllmConfig = field(repr=False)
    """What was asked for."""


def _quantization_config(kind: str, spec: ArchitectureSpec, dtype):
    from transformers import BitsAndBytesConfig

    # Only the language model is quantized; transformers matches these as module-name prefixes.
    skip = [spec.vision_tower, spec.projector, spec.lm_head]
    if kind == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=dtype,
        llm_int8_skip_modules=skip,
    )


def disable_cpu_bf16_inference_layout(model) -> int:
    """Keep bitsandbytes 4-bit weights trainable on CPUs with AVX512-BF16; returns modules touched.

    On such CPUs a no-grad forward repacks 4-bit weights into an inference-only layout, after which
    LoRA silently gets no gradient (see ../shared/ENVIRONMENT.md). The flag switches that path off.
    """
    touched = 0
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
            touched += 1
    return touched


def load_mllm(
    path: str | Path,
    *,
    dtype: str = "float32",
    quantization: str | None = None,
    lora: LoraSettings | None = None,
    adapter: str | Path | None = None,
    device_map: str = "cpu",
) -> LoadedMllm:
    """Load model + processor from `path` through `AutoModelForImageTextToText` / `AutoProcessor`."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    from text4seg.mllm.lora import attach_lora, load_adapter

    config = MllmConfig(
        path=str(path),
        dtype=dtype,
        quantization=quantization,
        lora=lora,
        adapter=None if adapter is None else str(adapter),
        device_map=device_map,
    )
    spec = architecture_of(AutoConfig.from_pretrained(path))
    torch_dtype = getattr(torch, dtype)
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "device_map": device_map}
    if quantization is not None:
        kwargs["quantization_config"] = _quantization_config(quantization, spec, torch_dtype)
    model = AutoModelForImageTextToText.from_pretrained(path, **kwargs)
    if quantization == "4bit":
        disable_cpu_bf16_inference_layout(model)
    processor = AutoProcessor.from_pretrained(path)
    if lora is not None:
        model = attach_lora(model, spec=spec, settings=lora, quantized=quantization is not None)
    elif adapter is not None:
        model = load_adapter(model, adapter)
    model.eval()
    return LoadedMllm(model=model, processor=processor, spec=spec, config=config)


def load_mllm_from_config(config: MllmConfig) -> LoadedMllm:
    """`load_mllm` with the fields of a `MllmConfig` (e.g. from YAML)."""
    return load_mllm(
        config.path,
        dtype=config.dtype,
        quantization=config.quantization,
        lora=config.lora,
        adapter=config.adapter,
        device_map=config.device_map,
    )
