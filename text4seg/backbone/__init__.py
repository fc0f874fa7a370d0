"""Shared pretrained text backbone: DBNet text detectors shipped in PyPI wheels as trainable torch modules,
and a word reader (detector + CTC recognizer, run with onnxruntime) that reads the words of a photo.

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
from text4seg.backbone.reader import ReaderConfig, ReadWord, WordReader, read_words
from text4seg.backbone.registry import DETECTORS, RECOGNIZERS, DetectorSpec, RecognizerSpec
from text4seg.backbone.zero_shot import text_probability

__all__ = [
    "DEFAULT_DETECTOR",
    "DETECTORS",
    "RECOGNIZERS",
    "BackboneConfig",
    "BackboneFeatures",
    "DetectorSpec",
    "ReadWord",
    "ReaderConfig",
    "RecognizerSpec",
    "TextBackbone",
    "WordReader",
    "build_backbone",
    "load_backbone",
    "read_words",
    "save_backbone",
    "saved_backbone_config",
    "text_probability",
]
