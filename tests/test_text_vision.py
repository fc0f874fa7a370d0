"""The LLaVA vision tower on the pretrained text backbone: builds, saves, reloads exactly, answers."""

import numpy as np
import pytest
import torch

from text4seg.mllm.loading import load_mllm
from text4seg.mllm.text_vision import TextVisionConfig, TextVisionModel, register
from text4seg.mllm.tiny import TinyMllmConfig, build_tiny_llava

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    config = TinyMllmConfig(vision="text_backbone", image_size=64, patch_size=16)
    return build_tiny_llava(tmp_path_factory.mktemp("text_vision") / "mllm", config=config)


def test_tower_pools_the_backbone_per_patch_with_a_leading_summary_token():
    register()
    tower = TextVisionModel(TextVisionConfig(image_size=64, patch_size=16, hidden_size=24)).eval()
    pixels = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        out = tower(pixel_values=pixels, output_hidden_states=True)
    assert out.last_hidden_state.shape == (2, 17, 24) and out.hidden_states[-1] is out.last_hidden_state
    assert torch.allclose(out.last_hidden_state[:, 0], out.last_hidden_state[:, 1:].mean(dim=1), atol=1e-6)
    # The detector's own text probability is part of every patch's input features.
    with torch.no_grad():
        features = tower.patch_features(pixels)
    assert features.shape == (2, 16, tower.backbone.quarter_channels + 2)
    assert float(features[..., -2:].min()) >= 0.0 and float(features[..., -2:].max()) <= 1.0
    with pytest.raises(ValueError, match=r"expects 64×64"):
        tower(pixel_values=torch.rand(1, 3, 32, 32))


def test_checkpoint_round_trip_is_exact_and_the_processor_keeps_pixels_in_0_1(tiny_dir):
    loaded = load_mllm(tiny_dir)
    assert loaded.model.config.vision_config.model_type == "text4seg_text_vision"
    image = np.random.default_rng(0).integers(0, 256, (40, 70, 3), dtype=np.uint8)
    inputs = loaded.processor(images=image, text="<image> text", return_tensors="pt")
    assert 0.0 <= float(inputs["pixel_values"].min()) and float(inputs["pixel_values"].max()) <= 1.0
    assert int((inputs["input_ids"] == loaded.model.config.image_token_index).sum()) == 17
    with torch.no_grad():
        first = loaded.model(**inputs).logits
        again = load_mllm(tiny_dir).model(**inputs).logits
    assert torch.equal(first, again)


def test_the_pretrained_detector_weights_are_in_the_tower(tiny_dir):
    from text4seg.backbone import BackboneConfig, build_backbone

    tower = load_mllm(tiny_dir).model.model.vision_tower
    reference = build_backbone(BackboneConfig(detector="ppocrv5"))
    ours, theirs = tower.backbone.state_dict(), reference.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_precomputed_patch_features_give_the_same_tokens_and_a_wrong_shape_is_named():
    from text4seg.mllm.text_vision import frozen_patch_features

    register()
    tower = TextVisionModel(TextVisionConfig(image_size=64, patch_size=16, hidden_size=24)).eval()
    pixels = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        direct = tower(pixel_values=pixels).last_hidden_state
        cached = tower(pixel_values=tower.patch_features(pixels)).last_hidden_state
    assert torch.equal(direct, cached)
    with pytest.raises(ValueError, match=r"precomputed patch features are \(9, "):
        tower(pixel_values=torch.rand(1, 9, tower.backbone.quarter_channels + 2))
    # Features may be cached only while the detector takes no gradient.
    assert frozen_patch_features(tower) is None
    tower.backbone.requires_grad_(False)
    assert frozen_patch_features(tower) == tower.patch_features


def test_feature_cache_computes_each_image_once_and_refuses_two_images_under_one_key():
    from text4seg.mllm.text_vision import PooledFeatureCache

    calls = []

    def compute(pixels):
        calls.append(len(pixels))
        return pixels.mean(dim=(2, 3))[:, None, :].repeat(1, 4, 1)

    cache = PooledFeatureCache(compute)
    a, b = torch.rand(1, 3, 34, 34), torch.rand(1, 3, 34, 34)
    first = cache(["a", "b", "a"], torch.cat([a, b, a]))
    assert first.shape == (3, 4, 3) and torch.equal(first[0], first[2]) and len(cache) == 2
    again = cache(["b", "a"], torch.cat([b, a]))
    assert calls == [3] and torch.equal(again[0], first[1])  # nothing recomputed
    with pytest.raises(ValueError, match="two different images share the key 'a'"):
        cache(["a"], b)
