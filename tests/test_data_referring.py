"""Referring expressions pick exactly the instances they describe."""

import numpy as np

from data_builders.synthetic import Instance
from data_builders.synthetic.phrasings import pool
from data_builders.synthetic.referring import (
    ReferringExpression,
    candidate_expressions,
    no_target_expressions,
    rephrase,
    sample_expressions,
)
from text4seg.core.reading import SeenWord
from text4seg.core.selection import select_words


def inst(text, colour, position, area, *, plate="", curved=False, box=(0, 0, 1, 1)):
    return Instance(
        text=text, box=box, colour=colour, size="medium", position=position, orientation="horizontal",
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


def test_extremes_are_said_only_when_no_other_box_shares_that_row_or_column():
    # x0, y0, x1, y1 on a 200 px canvas: TOP lies wholly above the others; LEFT and MID share rows, so
    # nothing is "bottommost"; RIGHT shares columns with nothing on its right
    scene = [
        inst("TOP", "red", "top", 300, box=(60, 10, 120, 30)),
        inst("LEFT", "blue", "center", 300, box=(10, 90, 50, 130)),
        inst("MID", "green", "center", 300, box=(70, 100, 130, 140)),
        inst("RIGHT", "pink", "center", 300, box=(150, 60, 190, 80)),
    ]
    extremes = {e.slot: e.targets for e in candidate_expressions(scene) if e.kind == "extreme"}
    assert extremes == {"top": (0,), "left": (1,), "right": (3,)}
    # every phrasing, train and held out, is read by the inference-side selector as the same word
    words = [SeenWord(text=x.text, box=tuple(float(v) for v in x.box)) for x in scene]
    image = np.zeros((200, 200, 3), np.uint8)
    for side, targets in extremes.items():
        expression = ReferringExpression(sentence="", targets=targets, kind="extreme", slot=side)
        for split in ("train", "heldout"):
            rng = np.random.default_rng(0)
            said = {rephrase([expression], split=split, rng=rng)[0].sentence for _ in range(60)}
            assert len(said) == len(pool("extreme", split))  # every template drawn
            for sentence in said:
                assert [w.text for w in select_words(words, sentence, image)] == [scene[targets[0]].text], (
                    sentence
                )


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
