"""One loading path for image-text-to-text checkpoints in a local folder.

The architecture is whatever the checkpoint's own `config.json` says (`model_type`); per-architecture
details — which modules are the language model, the vision tower and the projector — come from the
`text4seg.mllm.architectures.ARCHITECTURES` registry keyed by that string, never from the folder name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from text4seg.core.checkpoints import check_pretrained_folder
from text4seg.core.config import Config
from text4seg.mllm.architectures import ArchitectureSpec, architecture_of
from text4seg.mllm.lora import LoraSettings, attach_lora, load_adapter, merge_adapter

DTYPES = ("float32", "bfloat16", "float16")
QUANTIZATIONS = (None, "4bit", "8bit")


@dataclass(frozen=True, kw_only=True)
class MllmConfig(Config):
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
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype {self.dtype!r} not in {DTYPES}")
        if self.quantization not in QUANTIZATIONS:
            raise ValueError(f"quantization {self.quantization!r} not in {QUANTIZATIONS}")
        if self.lora is not None and self.adapter is not None:
            raise ValueError("give either lora (new adapters) or adapter (saved ones), not both")


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

    from text4seg.mllm.text_vision import register  # lazy: pulls torch, transformers and the backbone

    register()  # the project's own vision tower must be known before its config is read

    config = MllmConfig(
        path=str(path),
        dtype=dtype,
        quantization=quantization,
        lora=lora,
        adapter=None if adapter is None else str(adapter),
        device_map=device_map,
    )
    for folder in (path, adapter):  # pickled weights that need code: a one-line refusal, nothing run
        if folder is not None:
            check_pretrained_folder(folder)
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


def merge_qlora_adapter(base_path: str | Path, adapter_dir: str | Path, *, dtype: str = "float32"):
    """Merge a QLoRA adapter into the dequantized base: the merged model computes what 4-bit + LoRA did.

    Folding into the original full-precision weights instead would add the quantization error the
    adapter was never trained to see.
    """
    import torch
    from transformers import AutoModelForImageTextToText

    from text4seg.mllm.text_vision import register  # lazy: pulls torch, transformers and the backbone

    register()

    quantized = load_mllm(base_path, dtype=dtype, quantization="4bit").model
    dequantized = _dequantized_weights(quantized)
    del quantized
    model = AutoModelForImageTextToText.from_pretrained(base_path, dtype=getattr(torch, dtype))
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, weight in dequantized.items():
            target = modules[name].weight
            if target.shape != weight.shape:
                raise ValueError(f"{name}: dequantized {tuple(weight.shape)} != base {tuple(target.shape)}")
            target.copy_(weight.to(target.dtype))
    return merge_adapter(load_adapter(model, adapter_dir))


def _dequantized_weights(model) -> dict:
    import bitsandbytes as bnb

    weights = {}
    for name, module in model.named_modules():
        if isinstance(module, bnb.nn.Linear4bit):
            weight = module.weight
            weights[name] = bnb.functional.dequantize_4bit(weight.data, weight.quant_state).reshape(
                module.out_features, module.in_features
            )
    if not weights:
        raise ValueError("no bitsandbytes Linear4bit module found: the model is not 4-bit quantized")
    return weights
