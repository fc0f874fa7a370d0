"""LoRA / QLoRA through peft: targets, trainability, save → load → merge round trips."""

import numpy as np
import pytest
import torch
from PIL import Image

from text4seg.mllm.loading import load_mllm, merge_qlora_adapter
from text4seg.mllm.lora import LoraSettings, merge_adapter, save_adapter
from text4seg.mllm.tiny import build_tiny_llava

torch.set_num_threads(1)
SETTINGS = LoraSettings(r=4, alpha=8, dropout=0.0)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return build_tiny_llava(tmp_path_factory.mktemp("lora") / "tiny")


def _batch(processor):
    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Segment the text."}]},
        {"role": "assistant", "content": "Sure:\n<seg>others *4\n text *4\n</seg>"},
    ]
    text = processor.apply_chat_template(messages, tokenize=False)
    batch = processor(images=image, text=text, return_tensors="pt")
    batch["labels"] = batch["input_ids"].clone()
    return batch


def _train_steps(model, batch, steps):
    """A no-grad forward first (it triggers the CPU 4-bit inference layout), then AdamW steps."""
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    before = {n: p.detach().clone() for n, p in trainable.items()}
    with torch.no_grad():
        model(**batch)
    model.train()
    optimizer = torch.optim.AdamW(trainable.values(), lr=1e-2, weight_decay=0.0)
    for _ in range(steps):
        optimizer.zero_grad()
        model(**batch).loss.backward()
        optimizer.step()
    model.eval()
    return [n for n in trainable if torch.equal(before[n], trainable[n])]


def _logits(model, batch):
    with torch.no_grad():
        return model(**{k: v for k, v in batch.items() if k != "labels"}).logits


def test_lora_targets_language_model_only(checkpoint):
    loaded = load_mllm(checkpoint, lora=SETTINGS)
    names = [n for n, p in loaded.model.named_parameters() if p.requires_grad]
    lora_names = [n for n in names if "lora_" in n]
    assert len(lora_names) == 2 * 7 * 2  # layers × linear layers × (A, B)
    assert all(".language_model." in n for n in lora_names)
    assert not any("vision_tower" in n for n in names)  # CLIP has q_proj/v_proj too
    assert any("multi_modal_projector.modules_to_save" in n for n in names)


@pytest.mark.parametrize("mode", ["lora", "freeze"])
def test_projector_modes(checkpoint, mode):
    loaded = load_mllm(checkpoint, lora=LoraSettings(r=4, alpha=8, dropout=0.0, projector=mode))
    projector = [
        n for n, p in loaded.model.named_parameters() if p.requires_grad and "multi_modal_projector" in n
    ]
    if mode == "lora":
        assert projector and all("lora_" in n for n in projector)
    else:
        assert projector == []


def test_lora_save_load_merge_round_trip(checkpoint, tmp_path):
    loaded = load_mllm(checkpoint, lora=SETTINGS)
    batch = _batch(loaded.processor)
    assert _train_steps(loaded.model, batch, steps=2) == []
    reference = _logits(loaded.model, batch)
    adapter = save_adapter(loaded.model, tmp_path / "adapter")
    assert (adapter / "adapter_model.safetensors").is_file()
    reloaded = load_mllm(checkpoint, adapter=adapter).model
    torch.testing.assert_close(_logits(reloaded, batch), reference, rtol=0, atol=0)
    merged = merge_adapter(reloaded)
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    torch.testing.assert_close(_logits(merged, batch), reference, rtol=1e-5, atol=1e-5)


def test_qlora_trains_and_round_trips(checkpoint, tmp_path):
    import bitsandbytes as bnb

    loaded = load_mllm(checkpoint, quantization="4bit", lora=SETTINGS)
    quantized = [m for m in loaded.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(quantized) == 2 * 7 and not any(m.support_avx512bf16_for_cpu for m in quantized)
    batch = _batch(loaded.processor)
    # Every LoRA A and B and the projector change: the 4-bit base passes gradients through.
    assert _train_steps(loaded.model, batch, steps=2) == []
    reference = _logits(loaded.model, batch)
    adapter = save_adapter(loaded.model, tmp_path / "qadapter")
    reloaded = load_mllm(checkpoint, quantization="4bit", adapter=adapter).model
    torch.testing.assert_close(_logits(reloaded, batch), reference, rtol=0, atol=0)
    with pytest.raises(ValueError, match="merge_qlora_adapter"):
        merge_adapter(reloaded)
    merged = merge_qlora_adapter(checkpoint, adapter)
    assert not any(isinstance(m, bnb.nn.Linear4bit) for m in merged.modules())
    torch.testing.assert_close(_logits(merged, batch), reference, rtol=1e-4, atol=1e-4)
