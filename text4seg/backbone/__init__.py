"""Shared pretrained text backbone: DBNet text detectors shipped in PyPI wheels as trainable torch modules.

Imports nothing else from this repository, so the MLLM vision tower and the refiner can both build on it.
"""

from text4seg.backbone.model import (
    DEFAULT_DETECTOR,
    BackboneConfig,
    BackboneFeatures,
    TextBackbone,
    build_backbone,
    load_backbone,
    save_backbone,
    saved_backbone_config,
)
from text4seg.backbone.registry import DETECTORS, DetectorSpec
from text4seg.backbone.zero_shot import text_probability

__all__ = [
    "DEFAULT_DETECTOR",
    "DETECTORS",
    "BackboneConfig",
    "BackboneFeatures",
    "DetectorSpec",
    "TextBackbone",
    "build_backbone",
    "load_backbone",
    "save_backbone",
    "saved_backbone_config",
    "text_probability",
]
