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


def test_colour_and_hint_inputs_start_as_no_change_and_the_hint_is_a_fourth_channel():
    register()
    plain = TextVisionModel(TextVisionConfig(image_size=64, patch_size=16, hidden_size=24)).eval()
    grown_config = TextVisionConfig(
        image_size=64, patch_size=16, hidden_size=24, colour_features=True, reading_hint=True
    )
    grown = TextVisionModel(grown_config).eval()
    grown.load_state_dict(plain.state_dict(), strict=False)
    pixels = torch.rand(2, 3, 64, 64)
    hint = torch.zeros(2, 1, 64, 64)
    hint[0, :, :16, 16:48] = 1.0  # the top row's middle two patches of the first image
    with torch.no_grad():
        before = plain(pixel_values=pixels).last_hidden_state
        assert torch.allclose(grown(pixel_values=pixels).last_hidden_state, before, atol=1e-6)
        features = grown.patch_features(torch.cat([pixels, hint], dim=1))
        assert (
            features.shape == (2, 16, grown.feature_width) and grown.feature_width == plain.feature_width + 8
        )
        assert features[0, 1:3, -2:].eq(1.0).all() and features[0, 0, -2:].eq(0.0).all()
        assert features[1, :, -2:].eq(0.0).all()
        # The colours are RGB means in [0, 1]; a 3-channel image means an empty hint.
        colours = features[..., -8:-2]
        assert float(colours.min()) >= 0.0 and float(colours.max()) <= 1.0 + 1e-5
        no_hint = grown.patch_features(pixels)
        assert torch.equal(no_hint[..., :-2], features[..., :-2]) and not no_hint[..., -2:].any()
        # Once trained (here: any non-zero last layer), the hint moves exactly the hinted patches' tokens.
        torch.nn.init.normal_(grown.extra[2].weight)
        tokens = grown(pixel_values=torch.cat([pixels, hint], dim=1)).last_hidden_state[:, 1:]
        plain_tokens = grown(pixel_values=pixels).last_hidden_state[:, 1:]
    moved = (tokens - plain_tokens).abs().amax(dim=-1) > 1e-6
    assert moved[0].tolist() == [False, True, True, False] + [False] * 12 and not moved[1].any()
    with pytest.raises(ValueError, match="4 channels; the tower takes RGB$"):
        plain(pixel_values=torch.rand(1, 4, 64, 64))


def test_grow_tower_keeps_every_answer_and_switches_the_inputs_on(tiny_dir, tmp_path):
    from text4seg.mllm.text_vision import grow_tower

    grow_tower(tiny_dir, tmp_path / "grown", colour_features=True, reading_hint=True)
    before, after = load_mllm(tiny_dir), load_mllm(tmp_path / "grown")
    vision = after.model.config.vision_config
    assert vision.colour_features and vision.reading_hint
    inputs = before.processor(
        images=np.zeros((40, 70, 3), np.uint8) + 90, text="<image> text", return_tensors="pt"
    )
    with torch.no_grad():
        assert torch.allclose(before.model(**inputs).logits, after.model(**inputs).logits, atol=1e-5)
    assert sorted(p.name for p in (tmp_path / "grown").iterdir()) == sorted(
        p.name for p in tiny_dir.iterdir()
    )
    with pytest.raises(ValueError, match="unknown tower features"):
        grow_tower(tiny_dir, tmp_path / "bad", hint=True)


def test_regrid_tower_answers_on_the_new_grid_with_the_same_weights(tiny_dir, tmp_path):
    import json

    from safetensors.torch import load_file

    from text4seg.mllm.text_vision import regrid_tower

    (tiny_dir / "inference.json").write_text(json.dumps({"grid": [4, 4], "grid_threshold": 0.03}))
    try:
        regrid_tower(tiny_dir, tmp_path / "fine", patches=8, grid_threshold=0.1)
    finally:
        (tiny_dir / "inference.json").unlink()
    fine = load_mllm(tmp_path / "fine")
    assert fine.model.config.vision_config.patch_size == 8 and fine.model.config.image_seq_length == 65
    inputs = fine.processor(
        images=np.zeros((40, 70, 3), np.uint8) + 90, text="<image> text", return_tensors="pt"
    )
    assert int((inputs["input_ids"] == fine.model.config.image_token_index).sum()) == 65
    with torch.no_grad():
        assert fine.model(**inputs).logits.shape[1] == inputs["input_ids"].shape[1]
    assert json.loads((tmp_path / "fine" / "inference.json").read_text()) == {
        "grid": [8, 8],
        "grid_threshold": 0.1,
    }
    before = load_file(tiny_dir / "model.safetensors")
    after = load_file(tmp_path / "fine" / "model.safetensors")
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(ValueError, match="do not divide"):
        regrid_tower(tiny_dir, tmp_path / "bad", patches=5)
