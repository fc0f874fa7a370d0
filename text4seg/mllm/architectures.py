"""Where the parts of each multimodal architecture live: one registry keyed by ``config.model_type``.

Loading, LoRA targeting and the default model's own trainers find the language model, the vision
tower and the projector through :func:`architecture_of` — never through a folder name or a module
path written at the call site. No third-party import happens at module import.
"""

from __future__ import annotations

from dataclasses import dataclass


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
    projector_layers: tuple[str, str] | None = None
    """First and last linear layer of a projector MLP that sits outside the vision tower, relative to
    `projector` (the default model's trainer rescales them before its first step); None when the
    projector is not such an MLP."""

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

    def module(self, model, part: str):
        """The submodule of `model` that is `part` ("language_model", "vision_tower", "projector", "lm_head")."""
        return model.get_submodule(getattr(self, part))

    def module_names(self, model, part: str) -> list[str]:
        """Names of the linear leaf modules (plain or bitsandbytes) that belong to `part`."""
        return [
            name
            for name, module in model.named_modules()
            if _is_linear(module) and self.part_of(name) == part
        ]


def _is_linear(module) -> bool:
    import torch  # lazy: the registry is read by light commands that never load a model

    return isinstance(module, torch.nn.Linear) or type(module).__name__ in ("Linear4bit", "Linear8bitLt")


ARCHITECTURES: dict[str, ArchitectureSpec] = {
    "llava": ArchitectureSpec(
        language_model="model.language_model",
        vision_tower="model.vision_tower",
        projector="model.multi_modal_projector",
        projector_layers=("linear_1", "linear_2"),
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
