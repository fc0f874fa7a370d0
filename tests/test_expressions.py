"""Expression kinds (``text4seg.core.expressions``): examples of each kind, the phrasings of the
held-out referring set and of the synthetic generator, and the rule's properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from data_builders.synthetic.colours import NAMES as SYNTHETIC_COLOURS
from text4seg.core.expressions import (
    COLOUR_WORDS,
    EXPRESSION_KINDS,
    MULTI_WORDS,
    POSITION_WORDS,
    SAMPLE_KINDS,
    SIZE_WORDS,
    expression_kinds,
    sample_kinds,
)


@pytest.mark.parametrize(("text", "kinds"), [
    # the held-out set's phrasings (issue 16)
    ("the text that says 'OPEN'", ("content",)),
    ("the pink text", ("colour",)),
    ("the topmost text", ("position",)),
    ("the leftmost word", ("position",)),
    ("the largest text", ("size",)),
    ("all the blue words", ("colour", "multi-target")),
    ("the green word", ("colour",)),
    # the synthetic generator's templates
    ("the word 'EXIT'", ("content",)),
    ("the red words", ("colour", "multi-target")),
    ("the text at the top left", ("position",)),
    ("the text in the center", ("position",)),
    ("the smallest word", ("size",)),
    ("all the text", ("multi-target",)),
    ("the text on the red sign", ("colour",)),
    ("the curved text", ()),
    # content in other forms, and content words not read as other kinds
    ("the word OPEN", ("content",)),
    ("the sign that reads STOP", ("content",)),
    ("the text that says “SALE”", ("content",)),
    ("the word 'don't'", ("content",)),
    ("the word 'RED'", ("content",)),
    ("the text that says top", ("content",)),
    ("the word 'BIG' at the bottom", ("position", "content")),
    ("the sign that says 'EXIT' left of the door", ("position", "content")),
    # RefCOCO-style, and what is deliberately not a kind
    ("man in the grey shirt on the right", ("colour", "position")),
    ("second biggest sign from the left", ("position", "size")),
    ("both signs", ("multi-target",)),
    ("the man's hat", ()),
    ("the upper-case word", ()),
    ("the tallest word of all", ("size",)),
    ("", ()),
])  # fmt: skip
def test_examples_of_each_kind(text, kinds):
    assert expression_kinds(text) == kinds


def test_case_does_not_matter_outside_quotes():
    assert expression_kinds("THE PINK TEXT AT THE TOP") == ("colour", "position")


@pytest.mark.parametrize(("text", "pixels", "n_targets", "kinds"), [
    ("the green word", 0, None, ("colour", "no-target")),  # none is green: an all-background answer
    ("all the blue words", 0, None, ("colour", "no-target", "multi-target")),
    ("all the blue words", 40, 3, ("colour", "multi-target")),
    ("the dog", 0, 0, ("no-target", "other")),
    ("two people", 50, 2, ("multi-target", "other")),  # the dataset's count makes it multi-target
    ("the red word", 50, 1, ("colour",)),
    ("the curved text", 50, None, ("other",)),
])  # fmt: skip
def test_sample_kinds_add_what_the_ground_truth_knows(text, pixels, n_targets, kinds):
    assert sample_kinds(text, target_pixels=pixels, n_targets=n_targets) == kinds


def test_sample_kinds_refuse_negative_counts():
    with pytest.raises(ValueError, match="target_pixels -1"):
        sample_kinds("the red word", target_pixels=-1)
    with pytest.raises(ValueError, match="n_targets -2"):
        sample_kinds("the red word", target_pixels=3, n_targets=-2)


def test_every_synthetic_colour_is_a_colour_word():
    assert set(SYNTHETIC_COLOURS) <= COLOUR_WORDS


_NEUTRAL = ("the", "text", "word", "sign", "on", "in", "with", "a", "that", "is", "image", "plate")
_TRIGGERS = {
    "colour": sorted(COLOUR_WORDS),
    "position": sorted(POSITION_WORDS - {"upper", "lower"}),  # "upper case" is not a position
    "size": sorted(SIZE_WORDS),
    "multi-target": sorted(MULTI_WORDS),
}
_PLAIN_WORDS = st.sampled_from(_NEUTRAL + tuple(w for words in _TRIGGERS.values() for w in words))


@given(st.lists(_PLAIN_WORDS, max_size=8))
def test_plain_words_have_the_union_of_their_words_kinds(words):
    """Without quotes, content verbs or capitals, a sentence's kinds are those of its words."""
    sentence = " ".join(words)
    expected = {kind for kind, triggers in _TRIGGERS.items() if set(words) & set(triggers)}
    assert expression_kinds(sentence) == tuple(k for k in EXPRESSION_KINDS if k in expected)


@given(
    st.text(alphabet=st.characters(whitelist_categories=("L", "N", "Zs")), min_size=1, max_size=20),
    st.lists(_PLAIN_WORDS, max_size=4),
)
def test_a_quoted_word_is_content_and_nothing_else_from_it(quoted, tail):
    """Whatever the quotes hold ("RED", "TOP", "ALL WORDS") only makes the expression a content one."""
    sentence = " ".join(["the word", f"'{quoted}'", *tail])
    assert expression_kinds(sentence) == tuple(
        kind for kind in EXPRESSION_KINDS if kind == "content" or kind in expression_kinds(" ".join(tail))
    )


@given(st.text(max_size=40))
def test_any_text_gets_ordered_known_kinds_deterministically(text):
    kinds = expression_kinds(text)
    assert kinds == expression_kinds(text)
    assert list(kinds) == [k for k in EXPRESSION_KINDS if k in kinds]
    for pixels in (0, 5):
        sample = sample_kinds(text, target_pixels=pixels)
        assert list(sample) == [k for k in SAMPLE_KINDS if k in sample] and sample
        assert ("no-target" in sample) == (pixels == 0)
        assert ("other" in sample) == (not kinds)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("the word 'OPEN'", ["OPEN"]),
        ('the text that says "EXIT"', ["EXIT"]),
        ("the text that says SALE", ["SALE"]),
        ("the word CAFE", ["CAFE"]),
        ("the words 'A1' and 'B2'", ["A1", "B2"]),
        ("the red word", []),
        ("the man's hat", []),
    ],
)
def test_named_words_are_what_a_content_query_names(text, names):
    from text4seg.core.expressions import named_words

    assert named_words(text) == names
