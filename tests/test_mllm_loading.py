"""One loading path: LLaVA-style and Qwen2-VL checkpoints written by transformers load and generate."""

import numpy as np
import pytest
import torch
from PIL import Image

from text4seg.mllm.architectures import ARCHITECTURES, architecture_of
from text4seg.mllm.loading import MllmConfig, load_mllm
from text4seg.mllm.tiny import TinyMllmConfig, build_tiny_llava, build_tiny_qwen2vl

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("mllm")
    # Misleading folder names: the architecture must come from config.json, not from the path.
    return {
        "llava": build_tiny_llava(root / "qwen2_vl_lookalike"),
        "qwen2_vl": build_tiny_qwen2vl(
            root / "llava_lookalike", config=TinyMllmConfig(image_size=56, patch_size=14)
        ),
    }


def _prompt(processor, image):
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Segment the text."}]}
    ]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return processor(images=image, text=text, return_tensors="pt")


@pytest.mark.parametrize("model_type", ["llava", "qwen2_vl"])
def test_checkpoint_loads_through_one_path_and_generates(checkpoints, model_type):
    loaded = load_mllm(checkpoints[model_type])
    assert loaded.model.config.model_type == model_type
    assert loaded.spec is ARCHITECTURES[model_type]
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 72, 3), dtype=np.uint8))
    inputs = _prompt(loaded.processor, image)
    image_id = loaded.model.config.image_token_id
    assert int((inputs["input_ids"] == image_id).sum()) > 0
    with torch.no_grad():
        out = loaded.model.generate(**inputs, max_new_tokens=6, do_sample=False)
    assert (
        out.shape[1] == inputs["input_ids"].shape[1] + 6
        or int(out[0, -1]) == loaded.processor.tokenizer.eos_token_id
    )
    # The image changes the answer's logits: the vision tower is wired in.
    with torch.no_grad():
        a = loaded.model(**inputs).logits[0, -1]
        inputs["pixel_values"] = inputs["pixel_values"] + 1.0
        b = loaded.model(**inputs).logits[0, -1]
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("model_type", ["llava", "qwen2_vl"])
def test_spec_parts_cover_the_linear_layers(checkpoints, model_type):
    loaded = load_mllm(checkpoints[model_type])
    spec = loaded.spec
    language = spec.module_names(loaded.model, "language_model")
    vision = spec.module_names(loaded.model, "vision_tower")
    projector = spec.module_names(loaded.model, "projector")
    assert len(language) == 2 * 7  # 2 layers × (q, k, v, o, gate, up, down)
    assert vision and projector
    assert not set(vision) & set(projector)


def test_unknown_model_type_is_refused():
    class Config:
        model_type = "mystery_vlm"

    with pytest.raises(ValueError, match="'mystery_vlm' has no entry"):
        architecture_of(Config())


def test_mllm_config_invariants():
    with pytest.raises(ValueError, match="quantization '3bit'"):
        MllmConfig(path="x", quantization="3bit")
    with pytest.raises(ValueError, match="either lora"):
        MllmConfig.from_dict({"path": "x", "lora": {"r": 4}, "adapter": "y"})
    assert MllmConfig.from_dict({"path": "x", "lora": {"r": 4}}).lora.r == 4


def test_qwen2vl_lora_keeps_the_vision_tower_frozen_and_trains_the_merger(checkpoints):
    from text4seg.mllm.lora import LoraSettings

    loaded = load_mllm(checkpoints["qwen2_vl"], lora=LoraSettings(r=2, alpha=4, dropout=0.0))
    trainable = [n for n, p in loaded.model.named_parameters() if p.requires_grad]
    assert sum("lora_" in n for n in trainable) == 2 * 7 * 2
    assert all(loaded.spec.part_of(n) in ("language_model", "projector") for n in trainable)
    assert any(loaded.spec.part_of(n) == "projector" for n in trainable)  # the merger, nested in `visual`


def test_8bit_language_model_runs_close_to_fp32(checkpoints):
    full = load_mllm(checkpoints["llava"])
    quantized = load_mllm(checkpoints["llava"], quantization="8bit")
    kinds = {type(m).__name__ for m in quantized.model.modules()}
    assert "Linear8bitLt" in kinds
    ids = torch.tensor([[5, 17, 40, 99, 7]])
    with torch.no_grad():
        a = full.model(input_ids=ids).logits
        b = quantized.model(input_ids=ids).logits
    assert not torch.equal(a, b)
    torch.testing.assert_close(b, a, rtol=0.0, atol=0.05)
