"""Single-process checks of text4seg.mllm.distributed and resume lookup (multi-process: test_train_zero.py)."""

from dataclasses import replace

import pytest
import torch

from text4seg.mllm.distributed import (
    EXTRA_WEIGHTS_NAME,
    gathered_trainable_state_dict,
    load_extra_trainables,
    save_trainable,
    state_bytes,
)

torch.set_num_threads(1)


def test_state_bytes_counts_adam_exactly_once():
    model = torch.nn.Sequential(torch.nn.Linear(10, 20), torch.nn.Linear(20, 3))
    n = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters())
    for _ in range(2):
        model(torch.randn(4, 10)).sum().backward()
        held = state_bytes(model, optimizer)
        optimizer.step()
    assert held.params == held.grads == 4 * n
    # exp_avg + exp_avg_sq (4 bytes each) per weight, plus one 4-byte step counter per tensor.
    assert held.optimizer == 8 * n + 4 * len(list(model.parameters()))
    assert held.total == held.params + held.grads + held.optimizer


def test_state_bytes_counts_shared_storage_once():
    model = torch.nn.Linear(8, 8, bias=False)
    model.weight.grad = model.weight.data  # an alias, as ZeRO's views into flat buffers are
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    held = state_bytes(model, optimizer)
    assert (held.params, held.grads, held.optimizer) == (4 * 64, 0, 0)


@pytest.fixture(scope="module")
def peft_model(tmp_path_factory):
    from text4seg.mllm.loading import load_mllm
    from text4seg.mllm.lora import LoraSettings
    from text4seg.mllm.tiny import build_tiny_llava

    path = build_tiny_llava(tmp_path_factory.mktemp("dist") / "llava")
    torch.manual_seed(0)
    loaded = load_mllm(path, lora=LoraSettings(r=4, alpha=8, dropout=0.0, projector="train"))
    with torch.no_grad():
        for name, p in loaded.model.named_parameters():
            if "lora_B" in name:
                p.normal_()  # non-zero so that a lost adapter would change outputs
    return path, loaded


def test_gathered_state_holds_only_trainable_weights_as_copies(peft_model):
    _, loaded = peft_model
    state = gathered_trainable_state_dict(loaded.model)
    trainable = {n for n, p in loaded.model.named_parameters() if p.requires_grad}
    assert set(state) == trainable
    assert any("lora_A" in k for k in state) and any("multi_modal_projector" in k for k in state)
    name = next(iter(state))
    before = state[name].clone()
    dict(loaded.model.named_parameters())[name].data.add_(1.0)
    assert torch.equal(state[name], before), "the state dict must be a copy, not a view"
    dict(loaded.model.named_parameters())[name].data.sub_(1.0)


def test_save_trainable_round_trips_through_peft_and_extra_file(peft_model, tmp_path):
    from transformers import AutoModelForImageTextToText

    from text4seg.mllm.lora import load_adapter

    path, loaded = peft_model
    model = loaded.model
    # A trainable weight outside the adapter (neither LoRA nor modules_to_save) goes to the extra file.
    norm = model.base_model.model.model.language_model.norm.weight
    norm.requires_grad_(True)
    with torch.no_grad():
        norm.mul_(1.5)
    try:
        written = save_trainable(model, tmp_path, is_main_process=True)
    finally:
        norm.requires_grad_(False)
    assert sorted(p.name for p in written) == ["adapter_model.safetensors", EXTRA_WEIGHTS_NAME]
    assert save_trainable(model, tmp_path / "other", is_main_process=False) == []
    assert not (tmp_path / "other").exists()

    fresh = load_adapter(AutoModelForImageTextToText.from_pretrained(path), tmp_path).eval()
    assert load_extra_trainables(fresh, tmp_path) == ["base_model.model.model.language_model.norm.weight"]
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        expected, got = model.eval()(input_ids=ids).logits, fresh(input_ids=ids).logits
    assert torch.allclose(expected, got, atol=1e-6)


def test_last_complete_checkpoint_skips_partial_folders(tmp_path):
    from text4seg.mllm.train import last_complete_checkpoint, resolve_resume
    from text4seg.mllm.train_config import TrainConfig

    assert last_complete_checkpoint(tmp_path / "missing") is None
    for step, complete in ((2, True), (4, True), (6, False), (10, False)):
        (tmp_path / f"checkpoint-{step}").mkdir()
        if complete:
            (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    assert last_complete_checkpoint(tmp_path).endswith("checkpoint-4")
    config = TrainConfig(model_path="m", data_path="d", output_dir=str(tmp_path))
    assert resolve_resume(config).endswith("checkpoint-4")
    assert resolve_resume(replace(config, resume="never")) is None
    with pytest.raises(ValueError, match="not a complete checkpoint"):
        resolve_resume(replace(config, resume=str(tmp_path / "checkpoint-6")))
