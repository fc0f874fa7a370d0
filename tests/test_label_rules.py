"""One label rule (``text4seg.core.codec.clean_label``): what training answers are labelled with is
what inference allows the answer to say."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from data_builders.conversations import ConversationConfig, conversations_from_record
from data_builders.records import Record
from text4seg.core.codec import (
    BACKGROUND,
    EMPTY_LABEL,
    RESERVED_IN_LABEL,
    clean_label,
    decode_rrle,
    validate_label,
)
from text4seg.core.query import interpret_query
from text4seg.core.templates import get_template_set

MESSY = ["the red | word", "EXIT *2 sign", "two\nlines", "a\r\nb", "  spaced   out  "]
TEMPLATES = get_template_set("default")


PIECES = [*RESERVED_IN_LABEL, " ", "\t", "\u2028", "a", "<", ">", "/", "s", "e", "g"]


@given(st.one_of(st.text(), st.lists(st.sampled_from(PIECES)).map("".join)))
def test_clean_label_always_gives_a_valid_label_and_is_idempotent(text):
    label = clean_label(text)
    assert validate_label(label) == label
    assert clean_label(label) == label


def test_clean_label_examples():
    assert clean_label("the red | word") == "the red word"
    assert clean_label("<seg>tag</seg>") == "tag"
    assert clean_label(" * | ") == EMPTY_LABEL


def _answer_labels(sample) -> set[str]:
    block = sample.messages[-1]["content"].split("<seg>", 1)[1].removesuffix("</seg>")
    return {label for row in decode_rrle(block) for label in row} - {BACKGROUND}


@pytest.mark.parametrize("expression", MESSY)
def test_referring_training_label_is_the_label_inference_allows(expression):
    mask = np.zeros((32, 32), bool)
    mask[8:24, 8:24] = True
    record = Record(
        image=np.zeros((32, 32, 3), np.uint8), mask=mask, text=expression, task="referring",
        split="train", source_id="t/train/0",
    )  # fmt: skip
    cfg = ConversationConfig(grid_sizes=(4,))
    (sample,) = conversations_from_record(record, cfg=cfg, templates=TEMPLATES, rng=np.random.default_rng(0))
    query = interpret_query(expression, task="referring")
    assert _answer_labels(sample) == set(query.labels) == {clean_label(expression)}


def test_semantic_training_labels_are_the_labels_inference_allows():
    label_map = np.full((32, 32), -1, np.int32)
    label_map[:16] = 0
    label_map[16:] = 1
    names = ("traffic | light", "sign*board")
    record = Record(
        image=np.zeros((32, 32, 3), np.uint8), mask=None, label_map=label_map, class_names=names,
        text="|".join(names), task="semantic", split="train", source_id="t/train/1",
    )  # fmt: skip
    cfg = ConversationConfig(grid_sizes=(4,))
    (sample,) = conversations_from_record(record, cfg=cfg, templates=TEMPLATES, rng=np.random.default_rng(0))
    query = interpret_query(sample.target, task="semantic")
    assert _answer_labels(sample) == set(query.labels) == {"traffic light", "sign board"}
