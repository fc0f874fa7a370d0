"""Constrained decoding: the grammar accepts exactly well-formed answers, and an untrained model
decoding under it writes answers the parser reads without a single repair."""

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import LogitsProcessorList

from text4seg.core.codec import encode_rrle, format_answer
from text4seg.core.parser import parse_answer
from text4seg.mllm.constrained import GrammarMasks, RrleLogitsProcessor, TokenTable, masks_for
from text4seg.mllm.grammar import SENTENCE, GrammarConfig, accepts, grammar_for
from text4seg.mllm.tiny import build_tiny_llava
from text4seg.mllm.tokenizer import train_tokenizer

torch.set_num_threads(1)
LABELS = ("others", "text", "red sign")


@st.composite
def grids(draw):
    height, width = draw(st.integers(1, 6)), draw(st.integers(1, 12))
    cells = st.sampled_from(LABELS)
    return [[draw(cells) for _ in range(width)] for _ in range(height)]


@settings(max_examples=60, deadline=None)
@given(grids(), st.sampled_from(["Sure, here is the mask for 'text':", ""]))
def test_grammar_accepts_every_encoded_answer(grid, sentence):
    grammar = grammar_for(len(grid), len(grid[0]), LABELS)
    answer = format_answer(encode_rrle(grid), sentence=sentence)
    assert accepts(grammar, answer)


@settings(max_examples=60, deadline=None)
@given(grids(), st.data())
def test_completion_of_any_prefix_is_accepted(grid, data):
    grammar = grammar_for(len(grid), len(grid[0]), LABELS)
    answer = format_answer(encode_rrle(grid), sentence="Here:")
    cut = data.draw(st.integers(0, len(answer)))
    state = grammar.feed(grammar.initial_state(), answer[:cut].encode())
    assert state is not None
    assert accepts(grammar, answer[:cut] + grammar.completion(state).decode())


@pytest.mark.parametrize(
    "block",
    [
        "others *4\n others *4\n",  # 2 rows, 3 asked
        "others *4\n others *3\n others *4\n",  # counts sum to 3
        "others *4\nothers *4\n others *4\n",  # row break without its space
        "others *2| others *2\n others *4\n others *4\n",  # runs not merged
        "others *4\n dog *4\n others *4\n",  # label not allowed
        "others *04\n others *4\n others *4\n",  # leading zero
        "others*4\n others *4\n others *4\n",  # missing space before *
    ],
)
def test_grammar_rejects_malformed_blocks(block):
    grammar = grammar_for(3, 4, ("others", "text"))
    assert not accepts(grammar, format_answer(block, sentence="Sure:"))
    assert accepts(grammar, format_answer("others *4\n text *1| others *3\n others *4\n", sentence="Sure:"))


def test_forced_sentence_and_config_checks():
    grammar = grammar_for(1, 2, ("text",), sentence="Mask:")
    assert accepts(grammar, "Mask:\n<seg>text *2\n</seg>")
    assert not accepts(grammar, "Other:\n<seg>text *2\n</seg>")
    with pytest.raises(ValueError, match="grid 0×4"):
        GrammarConfig(height=0, width=4)
    with pytest.raises(ValueError, match="reserved"):
        GrammarConfig(height=2, width=2, labels=("a|b",))


def test_token_table_bytes_match_the_tokenizer():
    tokenizer = train_tokenizer()
    table = TokenTable(tokenizer=tokenizer)
    checked = 0
    for index, data in enumerate(table.token_bytes):
        if data is None:
            assert index in tokenizer.all_special_ids
            continue
        try:
            text = data.decode()
        except UnicodeDecodeError:  # a piece of a multi-byte character
            continue
        assert text == tokenizer.decode([index])
        checked += 1
    assert checked > 300


@pytest.fixture(scope="module")
def random_model(tmp_path_factory):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = build_tiny_llava(tmp_path_factory.mktemp("constrained") / "tiny")
    return AutoModelForImageTextToText.from_pretrained(path).eval(), AutoProcessor.from_pretrained(path)


def _inputs(processor, seed, batch=1):
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(batch)]
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Segment the text."}]}
    ]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return processor(images=images, text=[prompt] * batch, return_tensors="pt", padding=True)


def _generate(model, processor, inputs, masks, max_new_tokens, **kwargs):
    processors = LogitsProcessorList()
    if masks is not None:
        processors.append(RrleLogitsProcessor(masks=masks, max_new_tokens=max_new_tokens))
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, logits_processor=processors, **kwargs)
    start = inputs["input_ids"].shape[1]
    return [processor.tokenizer.decode(row[start:], skip_special_tokens=True) for row in out]


@pytest.mark.parametrize(
    ("grid", "sample", "budget"),
    [((16, 16), False, 300), ((16, 16), True, 300), ((8, 8), True, 120), ((8, 12), False, 64)],
)
def test_untrained_model_answers_always_parse(random_model, grid, sample, budget):
    model, processor = random_model
    masks = masks_for(processor.tokenizer, height=grid[0], width=grid[1], labels=["text"])
    for seed in range(3):
        torch.manual_seed(seed)
        (answer,) = _generate(model, processor, _inputs(processor, seed), masks, budget, do_sample=sample)
        parsed = parse_answer(answer, height=grid[0], width=grid[1], known_labels=["text"])
        assert parsed.repairs == [] and not parsed.failed, (answer, parsed.repairs)
        assert accepts(masks.grammar, answer)


def test_unconstrained_random_answers_do_not_parse(random_model):
    # The comparison the switch exists for: the same model without the grammar writes no descriptor.
    model, processor = random_model
    (answer,) = _generate(model, processor, _inputs(processor, 0), None, 120, do_sample=False)
    assert parse_answer(answer, height=8, width=8, known_labels=["text"]).repairs


def test_batched_left_padded_generation_parses(random_model):
    model, processor = random_model
    masks = masks_for(processor.tokenizer, height=8, width=8, labels=["text"])
    torch.manual_seed(0)
    answers = _generate(model, processor, _inputs(processor, 5, batch=3), masks, 150, do_sample=True)
    assert len(answers) == 3
    for answer in answers:
        assert parse_answer(answer, height=8, width=8, known_labels=["text"]).repairs == []


def test_too_small_budget_is_refused(random_model):
    _, processor = random_model
    masks = masks_for(processor.tokenizer, height=16, width=16, labels=["text"])
    with pytest.raises(ValueError, match="max_new_tokens 40 <"):
        RrleLogitsProcessor(masks=masks, max_new_tokens=40)


def test_masks_are_cached_per_state(random_model):
    _, processor = random_model
    masks = GrammarMasks(
        grammar=grammar_for(16, 16, ("text",)), table=TokenTable(tokenizer=processor.tokenizer), eos_ids=[2]
    )
    first = masks.allowed(("label", 10, 16, None, b""))
    assert masks.allowed(("label", 7, 16, None, b"")) is first  # rows far from the end share a mask
    tokenizer = processor.tokenizer
    allowed = {tokenizer.decode([i]) for i in first}
    assert {"others", "text"} <= allowed and "16" not in allowed
    assert masks.allowed(SENTENCE) and tokenizer.eos_token_id not in masks.allowed(SENTENCE)


def test_completion_tokens_from_inside_a_multibyte_character():
    tokenizer = train_tokenizer()
    masks = masks_for(tokenizer, height=2, width=3, labels=["café"], sentence="Voilà 'café':")
    grammar = masks.grammar
    answer = "Voilà 'café':\n<seg>café *2| others *1\n others *3\n</seg>".encode()
    for cut in range(len(answer)):
        state = grammar.feed(grammar.initial_state(), answer[:cut])
        ids = masks.completion_ids(state)
        assert ids[-1] == tokenizer.eos_token_id
        written = b"".join(masks.table.token_bytes[i] for i in ids[:-1])
        assert written == grammar.completion(state)
        for token in ids[:-1]:
            state = masks.advance(state, token)
        assert grammar.is_complete(state)


def test_long_free_sentence_is_cut_at_its_token_limit(random_model):
    model, processor = random_model
    masks = masks_for(processor.tokenizer, height=4, width=4, labels=["text"])
    inputs = _inputs(processor, 2)
    processors = LogitsProcessorList(
        [RrleLogitsProcessor(masks=masks, max_new_tokens=80, max_sentence_tokens=3)]
    )
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=80, do_sample=False, logits_processor=processors)
    new = out[0, inputs["input_ids"].shape[1] :].tolist()
    written = b"".join(masks.table.token_bytes[i] or b"" for i in new)
    sentence_tokens = next(k for k in range(len(new)) if masks.table.token_bytes[new[k]].startswith(b"\n"))
    assert sentence_tokens <= 3
    grammar = masks.grammar
    assert grammar.is_complete(grammar.feed(grammar.initial_state(), written))


def _sentencepiece_style_tokenizer():
    """A Llama-like tokenizer: `▁` for spaces, byte-fallback `<0xNN>` tokens in the vocabulary, merges
    that cut across R-RLE structure (e.g. `others▁*1` + `6`)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, trainers
    from transformers import PreTrainedTokenizerFast

    from text4seg.mllm.tokenizer import TokenizerConfig, training_corpus

    backend = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>"))
    backend.normalizer = normalizers.Replace(" ", "\u2581")
    trainer = trainers.BpeTrainer(
        vocab_size=500, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False
    )
    backend.train_from_iterator(training_corpus(TokenizerConfig(num_answers=200)), trainer=trainer)
    model = json.loads(backend.to_str())["model"]
    vocab = model["vocab"]
    for byte in range(256):  # byte tokens are ordinary vocabulary entries in SentencePiece models
        vocab.setdefault(f"<0x{byte:02X}>", len(vocab))
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    rebuilt = Tokenizer(models.BPE(vocab=vocab, merges=merges, byte_fallback=True, unk_token="<unk>"))
    rebuilt.normalizer = backend.normalizer
    rebuilt.add_special_tokens(["<unk>", "<s>", "</s>"])
    rebuilt.decoder = decoders.Sequence(
        [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=rebuilt, eos_token="</s>", unk_token="<unk>", bos_token="<s>"
    )


def test_sentencepiece_vocabulary_with_random_logits():
    tokenizer = _sentencepiece_style_tokenizer()
    table = TokenTable(tokenizer=tokenizer)
    newline = tokenizer.convert_tokens_to_ids("<0x0A>")
    assert table.token_bytes[newline] == b"\n"
    spaced = [(t, i) for t, i in tokenizer.get_vocab().items() if "\u2581" in t and not t.startswith("<0x")]
    assert spaced and all(table.token_bytes[i] == t.replace("\u2581", " ").encode() for t, i in spaced)
    masks = masks_for(tokenizer, height=6, width=10, labels=["text", "été"])
    vocab_size = len(tokenizer)
    generator = torch.Generator().manual_seed(0)
    forced_trials = 0
    for trial in range(12):
        # From the tightest budget the processor accepts up to a roomy one.
        budget = len(masks.completion_ids(masks.grammar.initial_state())) + masks.slack + 15 * (trial % 4)
        processor = RrleLogitsProcessor(masks=masks, max_new_tokens=budget, max_sentence_tokens=4)
        ids = torch.zeros(1, 3, dtype=torch.long)
        for _ in range(budget):
            scores = processor(ids, torch.randn(1, vocab_size, generator=generator))
            token = int(scores.argmax())
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
            if token == tokenizer.eos_token_id:
                break
        assert token == tokenizer.eos_token_id, f"trial {trial}: no eos within {budget} tokens"
        answer = tokenizer.decode(ids[0, 3:], skip_special_tokens=True)
        parsed = parse_answer(answer, height=6, width=10, known_labels=["text", "été"])
        assert parsed.repairs == [], (answer, parsed.repairs)
        forced_trials += processor.forced_tokens > 0
    assert forced_trials > 0  # random logits run into the budget: the forced completion was exercised
