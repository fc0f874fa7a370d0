"""Property tests for the descriptor codec: every format round-trips, R-RLE rows sum to the width."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from text4seg.core.codec import (
    BACKGROUND,
    FORMATS,
    DescriptorFormatError,
    decode_irle,
    decode_rrle,
    encode_full,
    encode_irle,
    encode_rrle,
    format_answer,
    validate_label,
)

# Labels as users write them: words with spaces, quotes, digits, punctuation — but never the
# format's reserved characters, and no leading/trailing whitespace.
_label_chars = st.characters(
    codec="utf-8", exclude_characters="|*\n\r<>", exclude_categories=("Cs", "Cc", "Zl", "Zp")
)
labels = st.text(_label_chars, min_size=1, max_size=12).map(str.strip).filter(bool) | st.sampled_from(
    ["others", "text", "text 1", "the 'EXIT' sign", 'the "red" word', "person"]
)


@st.composite
def grids(draw, max_side=64):
    height = draw(st.integers(1, max_side))
    width = draw(st.integers(1, max_side))
    vocab = draw(st.lists(labels, min_size=1, max_size=6, unique=True))
    # Cells come from a drawn seed (drawing 4096 cells one by one is what makes hypothesis slow).
    # Sorted cells make long runs like real masks; unsorted ones are the worst case for every format.
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    cells = [rng.randrange(len(vocab)) for _ in range(height * width)]
    if draw(st.booleans()):
        cells.sort()
    return [[vocab[cells[r * width + c]] for c in range(width)] for r in range(height)]


@settings(max_examples=300, deadline=None)
@given(grids())
def test_every_format_round_trips(grid):
    width = len(grid[0])
    for fmt in FORMATS.values():
        assert fmt.decode_grid(fmt.encode(grid), width=width) == grid, fmt.name


@settings(max_examples=300, deadline=None)
@given(grids())
def test_rrle_row_runs_sum_to_width(grid):
    rows = encode_rrle(grid)[:-1].split("\n ")
    assert len(rows) == len(grid)
    for row in rows:
        counts = [int(run.rsplit(" *", 1)[1]) for run in row.split("| ")]
        assert sum(counts) == len(grid[0])
        assert all(c >= 1 for c in counts)


@settings(max_examples=200, deadline=None)
@given(grids(max_side=16))
def test_rrle_runs_never_repeat_a_label_back_to_back(grid):
    for row in encode_rrle(grid)[:-1].split("\n "):
        names = [run.rsplit(" *", 1)[0] for run in row.split("| ")]
        assert all(a != b for a, b in zip(names, names[1:], strict=False))


def test_rrle_matches_text4seg_strings_exactly():
    grid = [["others"] * 16, ["dog"] * 4 + ["others"] * 12]
    assert encode_rrle(grid) == "others *16\n dog *4| others *12\n"
    answer = format_answer(encode_rrle(grid), sentence="Sure, here is the segmentation mask for 'dog':")
    assert (
        answer
        == "Sure, here is the segmentation mask for 'dog':\n<seg>others *16\n dog *4| others *12\n</seg>"
    )


def test_full_and_irle_strings():
    grid = [["others", "text"], ["text", "text"]]
    assert encode_full(grid) == "others| text\n text| text\n"
    assert encode_irle(grid) == "others *1| text *3\n"
    assert decode_irle("others *1| text *3\n", width=2) == grid


@pytest.mark.parametrize(
    "block",
    [
        "others *16",
        "others *16\nothers *16\n",
        "others*16\n",
        "others *0\n",
        "others *16\n dog *3\n",
        " *3\n",
    ],
)
def test_strict_decoder_rejects_deviations(block):
    with pytest.raises(DescriptorFormatError):
        decode_rrle(block)


def test_irle_rejects_a_width_that_does_not_divide():
    with pytest.raises(DescriptorFormatError, match="do not fill rows of width 4"):
        decode_irle("text *6\n", width=4)


@pytest.mark.parametrize("bad", ["", " text", "a|b", "a*b", "two\nlines", "<seg>"])
def test_reserved_labels_are_refused(bad):
    with pytest.raises(ValueError):
        validate_label(bad)
    with pytest.raises(ValueError):
        encode_rrle([[BACKGROUND, bad]])


def test_ragged_grid_is_refused_with_numbers():
    with pytest.raises(ValueError, match="row 1 has 1 labels, row 0 has 2"):
        encode_rrle([["a", "b"], ["a"]])


def test_format_answer_refuses_a_sentence_that_holds_the_block_markers():
    assert format_answer("text *2", sentence="Sure:") == "Sure:\n<seg>text *2</seg>"
    for sentence in ("the word '<seg>':", "it ends with </seg>"):
        with pytest.raises(ValueError, match="contains '</?seg>'"):
            format_answer("text *2", sentence=sentence)
