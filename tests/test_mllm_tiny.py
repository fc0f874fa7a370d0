"""Tiny checkpoints: tokenizer vocabulary, save_pretrained layout, YAML configs."""

from pathlib import Path

import pytest
import torch

from text4seg.mllm.tiny import TinyMllmConfig, build_tiny_llava
from text4seg.mllm.tokenizer import SINGLE_TOKEN_PIECES, TokenizerConfig, train_tokenizer

torch.set_num_threads(1)
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "mllm"


def test_rrle_pieces_and_counts_are_single_tokens():
    tokenizer = train_tokenizer(TokenizerConfig(max_count=64))
    for piece in [*SINGLE_TOKEN_PIECES, *(str(n) for n in range(1, 65))]:
        assert len(tokenizer.tokenize(piece)) == 1, piece
    answer = "Sure, here is the segmentation mask for 'text':\n<seg>others *16\n others *4| text *12\n</seg>"
    ids = tokenizer.encode(answer, add_special_tokens=False)
    assert tokenizer.decode(ids) == answer
    # Each row costs (label, " *", count) per run + the row break.
    assert len(tokenizer.encode("others *16\n others *4| text *12\n", add_special_tokens=False)) == 12


def test_tokenizer_is_deterministic():
    a = train_tokenizer(TokenizerConfig(seed=3))
    b = train_tokenizer(TokenizerConfig(seed=3))
    assert a.get_vocab() == b.get_vocab()


def test_too_small_vocab_is_rejected():
    with pytest.raises(ValueError, match="vocab_size 300"):
        TokenizerConfig(vocab_size=300)


def test_config_invariants_name_the_numbers():
    with pytest.raises(ValueError, match="image_size 60 is not a multiple of patch_size 16"):
        TinyMllmConfig(image_size=60)
    with pytest.raises(ValueError, match="text_heads 4 not divisible by text_kv_heads 3"):
        TinyMllmConfig(text_kv_heads=3)


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_mllm_yaml_configs_parse(path):
    from text4seg.mllm.loading import MllmConfig
    from text4seg.mllm.lora import LoraSettings

    if path.name.startswith(("lora_", "qlora_")):  # how to load + fine-tune a checkpoint
        config = MllmConfig.from_yaml(path)
        assert isinstance(config.lora, LoraSettings) and config.lora.r >= 1
        return
    config = TinyMllmConfig.from_yaml(path)  # an architecture to build
    assert config.image_tokens == (config.image_size // config.patch_size) ** 2 + 1


def test_build_tiny_llava_writes_a_loadable_checkpoint(tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    out = build_tiny_llava(tmp_path / "llava")
    for name in ("config.json", "model.safetensors", "tokenizer.json", "processor_config.json"):
        assert (out / name).is_file(), name
    model = AutoModelForImageTextToText.from_pretrained(out)
    processor = AutoProcessor.from_pretrained(out)
    assert model.config.model_type == "llava"
    assert model.config.text_config.vocab_size == len(processor.tokenizer)
    assert model.config.image_token_index == processor.tokenizer.convert_tokens_to_ids("<image>")
