"""Colour names of referring expressions and the pixels that have them (text4seg.core.colours)."""

import numpy as np

from text4seg.core.colours import NAMES, colour_hint, colour_names, pixel_names


def test_pixels_are_named_by_hue_saturation_and_value_not_by_one_palette():
    named = {
        "white": [(245, 245, 245), (210, 215, 220)],
        "black": [(15, 15, 15), (40, 10, 20)],
        "grey": [(128, 128, 128), (90, 95, 100)],
        "red": [(215, 30, 35), (250, 60, 40)],
        "orange": [(245, 135, 20), (230, 110, 60)],
        "yellow": [(250, 220, 30), (200, 190, 60)],
        "green": [(40, 165, 60), (120, 200, 50)],
        "cyan": [(40, 200, 220), (60, 220, 200)],
        "blue": [(30, 80, 210), (90, 120, 240)],
        "purple": [(130, 50, 170), (150, 90, 230)],
        "pink": [(240, 120, 180), (250, 150, 150)],
        "brown": [(120, 75, 35), (110, 30, 20)],
    }
    image = np.array([[rgb for rgbs in named.values() for rgb in rgbs]], np.uint8)
    got = [NAMES[i] for i in pixel_names(image)[0]]
    assert got == [name for name, rgbs in named.items() for _ in rgbs]


def test_expressions_name_colours_through_synonyms_and_never_inside_quotes():
    assert colour_names("all the Gray or violet words") == ["grey", "purple"]
    assert colour_names("the word 'RED'") == [] and colour_names("the text that says “blue”") == []
    assert colour_names("the topmost text") == [] and colour_names("the beige word") == []
    assert colour_names("the red word, the red one") == ["red"]


def test_the_hint_marks_exactly_the_pixels_of_the_named_colour():
    image = np.full((20, 40, 3), 245, np.uint8)
    image[2:8, 3:15] = (215, 30, 35)  # a red word
    image[10:16, 20:35] = (30, 80, 210)  # a blue one
    red = colour_hint(image, "the red word")
    assert red.dtype == np.uint8 and set(np.unique(red)) == {0, 255}
    assert (red > 0).sum() == 6 * 12 and red[2:8, 3:15].all()
    both = colour_hint(image, "the red and the blue words") > 0
    assert both.sum() == 6 * 12 + 6 * 15
    assert colour_hint(image, "the word 'RED'") is None and colour_hint(image, "the largest word") is None
