"""Referring expressions pick exactly the instances they describe."""

import numpy as np

from data_builders.synthetic import Instance
from data_builders.synthetic.referring import candidate_expressions, no_target_expressions, sample_expressions


def inst(text, colour, position, area, *, plate="", curved=False):
    return Instance(
        text=text, box=(0, 0, 1, 1), colour=colour, size="medium", position=position, orientation="horizontal",
        angle=0.0, curved=curved, perspective=False, font="regular sans", font_family="DejaVuSans", plate=plate,
        outline=False, shadow=False, low_contrast=False, area=area,
    )  # fmt: skip


SCENE = [
    inst("EXIT", "red", "top left", 900, plate="white"),
    inst("OPEN", "blue", "center", 200, curved=True),
    inst("Cafe", "red", "bottom right", 100),
]


def by_sentence():
    return {e.sentence: (e.targets, e.kind) for e in candidate_expressions(SCENE)}


def test_unique_attributes_pick_one_instance():
    got = by_sentence()
    assert got["the word 'EXIT'"] == ((0,), "content")
    assert got["the word 'Cafe'"] == ((2,), "content")
    assert got["the blue word"] == ((1,), "colour")
    assert got["the text at the top left"] == ((0,), "position")
    assert got["the text in the center"] == ((1,), "position")
    assert got["the largest word"] == ((0,), "largest")
    assert got["the smallest word"] == ((2,), "smallest")
    assert got["the text on the white sign"] == ((0,), "plate")
    assert got["the curved text"] == ((1,), "curved")


def test_shared_attributes_give_several_targets_never_a_singular_phrase():
    got = by_sentence()
    assert got["the red words"] == ((0, 2), "colour_multi")
    assert "the red word" not in got
    assert got["all the text"] == ((0, 1, 2), "all")


def test_ambiguous_size_is_not_called_largest():
    close = [inst("A", "red", "top", 100), inst("B", "blue", "bottom", 120)]
    kinds = {e.kind for e in candidate_expressions(close)}
    assert "largest" not in kinds and "smallest" not in kinds


def test_no_target_expressions_match_nothing():
    rng = np.random.default_rng(0)
    negatives = no_target_expressions(SCENE, rng)
    assert negatives and all(e.targets == () for e in negatives)
    colours = {i.colour for i in SCENE}
    for e in negatives:
        if e.kind == "none_colour":
            assert e.sentence.split()[1] not in colours
        else:
            assert e.sentence.split("'")[1].lower() not in {i.text.lower() for i in SCENE}


def test_sampling_is_seeded_and_handles_empty_scenes():
    a = sample_expressions(SCENE, np.random.default_rng(3), count=3)
    b = sample_expressions(SCENE, np.random.default_rng(3), count=3)
    assert a == b and 1 <= len(a) <= 4
    empty = sample_expressions([], np.random.default_rng(0))
    assert empty and all(e.targets == () for e in empty)


def test_a_word_without_a_colour_name_silences_colour_expressions():
    """A low-contrast word in doubt (colour "") could be taken for any colour asked: its scene gets no
    colour, several-colour or absent-colour expression; the other kinds stay."""
    scene = [*SCENE, inst("SALE", "", "bottom left", 400)]
    kinds = {e.kind for e in candidate_expressions(scene)}
    assert not kinds & {"colour", "colour_multi"} and {"content", "position", "all"} <= kinds
    rng = np.random.default_rng(0)
    assert all(e.kind != "none_colour" for e in no_target_expressions(scene, rng))
    assert any(e.kind == "colour" for e in candidate_expressions(SCENE))  # the same scene without it
