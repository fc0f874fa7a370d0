"""Tiny random-weight checkpoints of real transformers multimodal classes, written with `save_pretrained`.

They serve the tests and are the starting point of the embedded default model: a LLaVA-style model
(CLIP vision tower + MLP projector + Qwen2 language model) and a Qwen2-VL model, each with the
tokenizer trained in `text4seg.mllm.tokenizer` and a processor, loadable with
`AutoModelForImageTextToText` / `AutoProcessor` from the output folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from text4seg.core.config import Config
from text4seg.mllm.tokenizer import TokenizerConfig, train_tokenizer

VISION_TOWERS = ("clip", "text_backbone")


@dataclass(frozen=True, kw_only=True)
class TinyMllmConfig(Config):
    """Sizes of a tiny multimodal model (defaults: ~0.2M parameters, fast enough for unit tests)."""

    image_size: int = 64
    """Square input side in pixels (images are stretched to it, as Text4Seg does)."""
    patch_size: int = 16
    """Vision patch side; LLaVA gets (image_size / patch_size)^2 image tokens."""
    vision_hidden: int = 32
    """CLIP vision width."""
    vision_layers: int = 2
    """CLIP vision depth."""
    vision_heads: int = 2
    """CLIP vision attention heads (must divide vision_hidden)."""
    text_hidden: int = 64
    """Qwen2 language-model width."""
    text_layers: int = 2
    """Qwen2 depth."""
    text_heads: int = 4
    """Qwen2 query heads (must divide text_hidden)."""
    text_kv_heads: int = 2
    """Qwen2 key/value heads (must divide text_heads)."""
    intermediate_factor: int = 2
    """MLP width as a multiple of the layer width, for both towers."""
    max_positions: int = 2048
    """Longest prompt + answer the language model accepts."""
    seed: int = 0
    """Seed for the random weights."""
    vision: str = "clip"
    """Vision tower: "clip" (a random-init CLIP ViT) or "text_backbone" (the pretrained PP-OCR text
    detector pooled per patch, ``text4seg.mllm.text_vision``; images reach it in [0, 1], unnormalised)."""
    detector: str = "ppocrv5"
    """Detector of the "text_backbone" tower (a key of ``text4seg.backbone.DETECTORS``)."""
    pretrained_backbone: bool = True
    """"text_backbone" only: start from the detector's weights (False: its graph re-initialised)."""
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    """How the BPE tokenizer is trained."""

    def __post_init__(self) -> None:
        if self.vision not in VISION_TOWERS:
            raise ValueError(f"vision {self.vision!r} not in {VISION_TOWERS}")
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}"
            )
        for width, heads, name in (
            (self.vision_hidden, self.vision_heads, "vision"),
            (self.text_hidden, self.text_heads, "text"),
        ):
            if width % heads:
                raise ValueError(f"{name} width {width} is not divisible by {heads} heads")
        if self.text_heads % self.text_kv_heads:
            raise ValueError(
                f"text_heads {self.text_heads} not divisible by text_kv_heads {self.text_kv_heads}"
            )
        if (self.text_hidden // self.text_heads) % 2:
            raise ValueError(f"text head dim {self.text_hidden // self.text_heads} must be even for rotary")

    @property
    def image_tokens(self) -> int:
        """Image placeholder tokens per image in the LLaVA layout: every patch plus CLIP's CLS ("full")."""
        return (self.image_size // self.patch_size) ** 2 + 1


def _vision_config(config: TinyMllmConfig):
    """The LLaVA vision config ``config.vision`` names."""
    if config.vision == "text_backbone":
        from text4seg.mllm.text_vision import TextVisionConfig, register  # lazy: pulls torch and the backbone

        register()
        return TextVisionConfig(
            detector=config.detector,
            image_size=config.image_size,
            patch_size=config.patch_size,
            hidden_size=config.vision_hidden,
            pretrained_backbone=config.pretrained_backbone,
        )
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(
        hidden_size=config.vision_hidden,
        intermediate_size=config.vision_hidden * config.intermediate_factor,
        num_hidden_layers=config.vision_layers,
        num_attention_heads=config.vision_heads,
        image_size=config.image_size,
        patch_size=config.patch_size,
        projection_dim=config.vision_hidden,
    )


def _qwen2_text_config(config: TinyMllmConfig, tokenizer, **extra):
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=config.text_hidden,
        intermediate_size=config.text_hidden * config.intermediate_factor,
        num_hidden_layers=config.text_layers,
        num_attention_heads=config.text_heads,
        num_key_value_heads=config.text_kv_heads,
        max_position_embeddings=config.max_positions,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=False,
        **extra,
    )


def _save(model, processor, out_dir: Path, config: TinyMllmConfig) -> Path:
    import yaml

    out_dir.mkdir(parents=True, exist_ok=True)
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    model.generation_config.eos_token_id = processor.tokenizer.eos_token_id
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    (out_dir / "tiny_config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    return out_dir


def build_tiny_llava(out_dir: str | Path, *, config: TinyMllmConfig | None = None) -> Path:
    """Write a random-weight LLaVA (CLIP vision + Qwen2 LM) with its processor to `out_dir`; returns it."""
    import torch
    from transformers import (
        CLIPImageProcessor,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    config = config or TinyMllmConfig()
    tokenizer = train_tokenizer(config.tokenizer)
    vision = _vision_config(config)
    # "full" keeps CLS as well as every patch: the processor writes (side / patch)^2 + 1 image tokens.
    model_config = LlavaConfig(
        vision_config=vision,
        text_config=_qwen2_text_config(config, tokenizer),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=config.image_tokens,
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
    )
    torch.manual_seed(config.seed)
    model = LlavaForConditionalGeneration(model_config).eval()
    image_processor = CLIPImageProcessor(
        size={"height": config.image_size, "width": config.image_size},
        crop_size={"height": config.image_size, "width": config.image_size},
        do_center_crop=False,
        # The text backbone normalises inside (BGR, ImageNet statistics): it takes RGB in [0, 1].
        do_normalize=config.vision != "text_backbone",
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=config.patch_size,
        vision_feature_select_strategy="full",
        num_additional_image_tokens=1,
        chat_template=tokenizer.chat_template,
    )
    return _save(model, processor, Path(out_dir), config)


_QWEN2VL_TOKENS = {
    "vision_start_token": "<|vision_start|>",
    "vision_end_token": "<|vision_end|>",
    "image_token": "<|image_pad|>",
    "video_token": "<|video_pad|>",
}


def build_tiny_qwen2vl(out_dir: str | Path, *, config: TinyMllmConfig | None = None) -> Path:
    """Write a random-weight Qwen2-VL with its processor to `out_dir`; returns it.

    Qwen2-VL merges 2×2 patches, so an image of `image_size` pixels gives (image_size / patch / 2)^2 tokens.
    """
    import torch
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    config = config or TinyMllmConfig(image_size=56, patch_size=14)
    tokenizer = train_tokenizer(
        config.tokenizer,
        extra_special_tokens=_QWEN2VL_TOKENS,
        image_placeholder="<|vision_start|><|image_pad|><|vision_end|>",
    )
    head_dim = config.text_hidden // config.text_heads
    # Multimodal rotary sections (time, height, width) must add up to half the head dim.
    sections = [head_dim // 2 - 2 * (head_dim // 6), head_dim // 6, head_dim // 6]
    text = _qwen2_text_config(config, tokenizer).to_dict()
    text.update(
        model_type="qwen2_vl_text", rope_parameters={"rope_type": "default", "mrope_section": sections}
    )
    ids = {name: tokenizer.convert_tokens_to_ids(tok) for name, tok in _QWEN2VL_TOKENS.items()}
    model_config = Qwen2VLConfig(
        text_config=text,
        vision_config={
            "depth": config.vision_layers,
            "embed_dim": config.vision_hidden,
            "hidden_size": config.text_hidden,
            "num_heads": config.vision_heads,
            "mlp_ratio": config.intermediate_factor,
            "patch_size": config.patch_size,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        image_token_id=ids["image_token"],
        video_token_id=ids["video_token"],
        vision_start_token_id=ids["vision_start_token"],
        vision_end_token_id=ids["vision_end_token"],
    )
    torch.manual_seed(config.seed)
    model = Qwen2VLForConditionalGeneration(model_config).eval()
    pixels = config.image_size * config.image_size
    sizing = {"size": {"shortest_edge": pixels, "longest_edge": pixels}, "patch_size": config.patch_size}
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(**sizing),
        video_processor=Qwen2VLVideoProcessor(**sizing),
        tokenizer=tokenizer,
        chat_template=tokenizer.chat_template,
    )
    return _save(model, processor, Path(out_dir), config)
