"""Regenerating the general text-prompt sentences with a local causal LM."""

import pytest
import torch

from stsam_refiner.prompt_gen import generate_sentences, parse_sentences, write_prompts_yaml
from stsam_refiner.text_encoders import minilm_default_path
from stsam_refiner.text_prompt import load_sentences

torch.set_num_threads(1)


def test_parse_strips_bullets_numbers_and_duplicates():
    text = (
        "Here are some attributes:\n"
        "1. High contrast between strokes and background\n"
        "- Uniform stroke width along each character.\n"
        "* uniform stroke width along each character.\n"
        "2) Letters aligned along a common baseline!\n"
        "ok\n"
    )
    assert parse_sentences(text) == [
        "Here are some attributes:.",
        "High contrast between strokes and background.",
        "Uniform stroke width along each character.",
        "Letters aligned along a common baseline!",
    ]
    assert len(parse_sentences(text, limit=2)) == 2


def test_written_yaml_is_what_the_refiner_reads(tmp_path):
    path = tmp_path / "prompts.yaml"
    write_prompts_yaml(
        path, ["Text has sharp edges.", "Strokes keep one width."], question="Q?", source="test"
    )
    assert load_sentences(path) == ["Text has sharp edges.", "Strokes keep one width."]
    with pytest.raises(ValueError, match="no usable sentences"):
        write_prompts_yaml(path, [], question="Q?", source="test")


def test_generation_with_a_local_causal_lm(tmp_path):
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_default_path()))
    torch.manual_seed(0)
    model = GPT2LMHeadModel(
        GPT2Config(vocab_size=len(tokenizer), n_embd=16, n_layer=1, n_head=2, n_positions=256)
    )
    model.save_pretrained(tmp_path / "lm")
    tokenizer.save_pretrained(tmp_path / "lm")
    result = generate_sentences(tmp_path / "lm", n=5, max_new_tokens=24)
    assert result.raw.strip()  # a random model still says something
    assert result.sentences == parse_sentences(result.raw, limit=5)
