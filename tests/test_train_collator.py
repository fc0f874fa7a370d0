"""ChatCollator: loss only on the assistant's answer + eos, checked by decoding; loud failures."""

import pytest
import torch
from train_support import chat_rows

from text4seg.core.codec import decode_rrle

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from text4seg.mllm.tiny import TinyMllmConfig, build_tiny_llava, build_tiny_qwen2vl

    root = tmp_path_factory.mktemp("collator_models")
    return {
        "llava": build_tiny_llava(root / "llava"),
        "qwen2_vl": build_tiny_qwen2vl(
            root / "qwen", config=TinyMllmConfig.from_yaml("configs/mllm/tiny_qwen2vl.yaml")
        ),
    }


@pytest.fixture(scope="module")
def processors(models):
    from transformers import AutoProcessor

    return {kind: AutoProcessor.from_pretrained(path) for kind, path in models.items()}


def _rows(n=3, grid=4):
    columns = chat_rows(n, grid=grid)
    return [{k: columns[k][i] for k in columns} for i in range(n)]


@pytest.mark.parametrize("kind", ["llava", "qwen2_vl"])
def test_labels_cover_exactly_the_answer_and_eos(processors, kind):
    from text4seg.mllm.collator import ChatCollator

    processor = processors[kind]
    rows = _rows()
    batch = ChatCollator(processor=processor)(rows)
    tokenizer = processor.tokenizer
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    assert batch["pixel_values"].shape[0] > 0
    for i, row in enumerate(rows):
        answer = row["messages"][-1]["content"]
        kept = batch["labels"][i][batch["labels"][i] != -100].tolist()
        assert kept[-1] == tokenizer.eos_token_id
        assert tokenizer.decode(kept[:-1]) == answer
        # The labelled tokens are the sequence's own tokens, not a copy from elsewhere.
        positions = (batch["labels"][i] != -100).nonzero().flatten()
        assert batch["input_ids"][i, positions].tolist() == kept
        assert positions.diff().eq(1).all(), "labels must be one contiguous span"
        # Nothing of the prompt (image tokens, question) is trained on.
        first = int(positions[0])
        prompt = tokenizer.decode(batch["input_ids"][i, :first])
        assert prompt.rstrip().endswith("assistant")
        assert "Please segment only the text" in prompt
        block = answer.split("<seg>")[1].removesuffix("</seg>")
        assert len(decode_rrle(block)) == 4
    # Right padding: padded positions are masked out of attention and loss.
    pad = batch["attention_mask"] == 0
    assert (batch["labels"][pad] == -100).all()
    assert (batch["input_ids"][pad] == tokenizer.pad_token_id).all()


@pytest.mark.parametrize("kind", ["llava", "qwen2_vl"])
def test_the_real_model_takes_the_batch_and_its_loss_counts_answer_tokens(models, processors, kind):
    from transformers import AutoModelForImageTextToText

    from text4seg.mllm.collator import ChatCollator

    batch = ChatCollator(processor=processors[kind])(_rows(2))
    model = AutoModelForImageTextToText.from_pretrained(models[kind]).eval()
    with torch.no_grad():
        out = model(**batch)
    # The model's own loss equals cross-entropy over exactly the labelled (answer + eos) positions.
    logits = out.logits[:, :-1].float()
    targets = batch["labels"][:, 1:]
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    assert torch.isfinite(out.loss)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_loss_uses_only_answer_tokens(processors, tmp_path):
    """Changing the question must not change which tokens carry loss, only the answer does."""
    from text4seg.mllm.collator import ChatCollator

    collator = ChatCollator(processor=processors["llava"])
    row = _rows(1)[0]
    other = {
        **row,
        "messages": [{**row["messages"][0], "content": "<image>\nSegment the text."}, row["messages"][1]],
    }
    a, b = collator([row]), collator([other])
    assert (a["labels"] != -100).sum() == (b["labels"] != -100).sum()
    assert a["labels"][a["labels"] != -100].tolist() == b["labels"][b["labels"] != -100].tolist()


BROKEN_TEMPLATES = {
    # Rewrites the answer (a "cleanup" filter): the labels would teach a different text.
    "rewrites the answer": (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
        "{% if m['content'] is string %}{{ m['content'] | replace('*', 'x') }}"
        "{% else %}<image>\n{{ m['content'][1]['text'] }}{% endif %}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ),
    # Ends the assistant turn without the eos token: the model would never learn to stop.
    "no end of turn": (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
        "{% if m['content'] is string %}{{ m['content'] }}"
        "{% else %}<image>\n{{ m['content'][1]['text'] }}{% endif %}\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ),
    # The generation prompt differs from how the assistant turn is rendered (no newline): no prefix.
    "prompt mismatch": (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}"
        "{% if m['content'] is string %}{{ m['content'] }}"
        "{% else %}<image>\n{{ m['content'][1]['text'] }}{% endif %}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ),
    # Writes the first letter of every assistant turn itself ("H" + "ere is ..."): BPE merges it with
    # the answer's first word, so no token boundary separates prompt from answer.
    "merges across boundary": (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['role'] == 'assistant' %}H{% endif %}"
        "{% if m['content'] is string %}{{ m['content'] }}"
        "{% else %}<image>\n{{ m['content'][1]['text'] }}{% endif %}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\nH{% endif %}"
    ),
}


EXPECTED_ERRORS = {
    "rewrites the answer": "does not render prompt \\+ answer verbatim",
    "no end of turn": "without the eos token",
    "prompt mismatch": "does not render prompt \\+ answer verbatim",
    "merges across boundary": "tokens merge across",
}


@pytest.mark.parametrize("name", sorted(BROKEN_TEMPLATES))
def test_broken_template_fails_loudly_naming_the_sample(processors, name):
    from text4seg.mllm.collator import ChatCollator

    collator = ChatCollator(processor=processors["llava"], chat_template=BROKEN_TEMPLATES[name])
    rows = _rows(1)
    if name == "merges across boundary":
        answer = rows[0]["messages"][-1]["content"].split("\n", 1)[1]
        rows[0]["messages"][-1]["content"] = "ere is the mask of 'text':\n" + answer
    with pytest.raises(ValueError, match="synthetic/0.*" + EXPECTED_ERRORS[name]):
        collator(rows)


def test_text_glued_between_answer_and_eos_is_caught_by_decoding(processors):
    """The answer is rendered verbatim and token boundaries line up, but the template writes an extra
    "x" before the end of turn: only decoding the labels back exposes it."""
    from text4seg.mllm.collator import ChatCollator

    template = BROKEN_TEMPLATES["no end of turn"].replace(
        "{{ m['content'] }}", "{{ m['content'] }}x<|im_end|>"
    )
    rows = _rows(1)
    rows[0]["messages"][-1]["content"] = rows[0]["messages"][-1]["content"].removesuffix("</seg>") + "</seg"
    collator = ChatCollator(processor=processors["llava"], chat_template=template)
    with pytest.raises(ValueError, match="synthetic/0.*unmasked label tokens decode to"):
        collator(rows)


def test_too_long_sample_raises_instead_of_truncating(processors):
    from text4seg.mllm.collator import ChatCollator

    collator = ChatCollator(processor=processors["llava"], max_length=40)
    with pytest.raises(ValueError, match=r"synthetic/0.*> max_length 40"):
        collator(_rows(1))


def test_last_message_must_be_the_answer(processors):
    from text4seg.mllm.collator import ChatCollator

    row = _rows(1)[0]
    row["messages"] = row["messages"][:1]
    with pytest.raises(ValueError, match="last message must be the assistant"):
        ChatCollator(processor=processors["llava"])([row])


def test_conversation_builder_output_collates_with_exact_labels(processors, tmp_path):
    """The data engineer's real pipeline (synthetic scenes -> conversations -> Arrow) through
    load_train_dataset and the collator: every task's answer is labelled exactly."""
    import numpy as np

    from data_builders.conversations import (
        ConversationConfig,
        conversations_from_synthetic,
        samples_to_dataset,
    )
    from data_builders.synthetic import SyntheticConfig
    from data_builders.synthetic.build import build
    from text4seg.core.templates import get_template_set
    from text4seg.mllm.collator import ChatCollator
    from text4seg.mllm.train import load_train_dataset
    from text4seg.mllm.train_config import TrainConfig

    scenes = list(
        build(SyntheticConfig(size=64, p_no_text=0.0), n=2, out=tmp_path / "syn", seed=5, workers=1)
    )
    rng = np.random.default_rng(0)
    samples = [
        sample
        for scene in scenes
        for sample in conversations_from_synthetic(
            scene, cfg=ConversationConfig(), templates=get_template_set("default"), rng=rng
        )
    ]
    samples_to_dataset(samples).save_to_disk(str(tmp_path / "conv"))
    data = load_train_dataset(TrainConfig(model_path="m", data_path=str(tmp_path / "conv"), output_dir="o"))
    assert len(data) == len(samples) >= 2 and len(set(data["task"])) >= 2

    tokenizer = processors["llava"].tokenizer
    rows = list(data)
    batch = ChatCollator(processor=processors["llava"])(rows)
    for i, row in enumerate(rows):
        kept = batch["labels"][i][batch["labels"][i] != -100].tolist()
        assert tokenizer.decode(kept) == row["messages"][-1]["content"] + tokenizer.eos_token


def test_a_hint_column_becomes_the_fourth_channel_resized_like_the_image(processors):
    import numpy as np
    from PIL import Image

    from text4seg.mllm.collator import ChatCollator

    collator = ChatCollator(processor=processors["llava"])
    rows = _rows(3)
    plain = collator(rows)["pixel_values"]
    size = plain.shape[-2:]
    hint = np.zeros((rows[0]["image"].height, rows[0]["image"].width), np.uint8)
    hint[: hint.shape[0] // 2] = 255  # the top half
    hinted = [
        {**rows[0], "hint": Image.fromarray(hint)},
        {**rows[1], "hint": None},
        {**rows[2], "hint": None},
    ]
    batch = collator(hinted)["pixel_values"]
    assert batch.shape == (3, 4, *size) and torch.equal(batch[:, :3], plain)
    top, bottom = batch[0, 3, : size[0] // 2 - 1], batch[0, 3, size[0] // 2 + 1 :]
    assert top.min() == 1.0 and bottom.max() == 0.0 and not batch[1:, 3].any()
