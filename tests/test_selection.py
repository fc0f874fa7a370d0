"""Which read words an attribute query picks (text4seg.core.selection)."""

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from text4seg.core.reading import SeenWord
from text4seg.core.selection import select_words, word_colours

# (text, top-left, font size, ink RGB, plate RGB or None)
_WORDS = (
    ("OPEN", (20, 16), 22, (215, 30, 35), None),  # red, top left
    ("HOTEL", (110, 110), 36, (30, 80, 210), None),  # blue, largest, middle
    ("bar", (60, 210), 14, (240, 240, 240), (40, 165, 60)),  # white on a green sign, bottom left
    ("EXIT", (180, 4), 18, (30, 80, 210), None),  # blue, top right, topmost
)


@pytest.fixture(scope="module")
def scene():
    """A 256 px grey-brown photo-like canvas with four words and their boxes (a reader's boxes are
    looser than the ink, as here)."""
    from matplotlib import font_manager

    rng = np.random.default_rng(0)
    base = np.full((256, 256, 3), (150, 135, 110), np.float32) + rng.normal(0, 4, (256, 256, 3))
    image = Image.fromarray(base.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    path = font_manager.findfont("DejaVu Sans:bold")
    words = []
    for text, (x, y), size, ink, plate in _WORDS:
        font = ImageFont.truetype(path, size)
        x0, y0, x1, y1 = draw.textbbox((x, y), text, font=font)
        box = (x0 - 5, y0 - 5, x1 + 5, y1 + 5)
        if plate is not None:
            draw.rectangle(box, fill=plate)
        draw.text((x, y), text, fill=ink, font=font)
        words.append(SeenWord(text=text, box=tuple(float(v) for v in box)))
    return np.asarray(image), words


def _texts(picked):
    return None if picked is None else sorted(w.text for w in picked)


def test_word_colours_name_the_ink_and_the_surface(scene):
    image, words = scene
    assert word_colours(image, words) == ["red", "blue", "white", "blue"]
    assert word_colours(image, words[2:3], surface=True) == ["green"]


@pytest.mark.parametrize(
    "expression, expected",
    [
        ("the red word", ["OPEN"]),
        ("all the blue text", ["EXIT", "HOTEL"]),
        ("the text on the green sign", ["bar"]),
        ("the green word", []),  # no green ink: nothing is picked, the query has no target
        ("the text at the top left", ["OPEN"]),
        ("the text in the center", ["HOTEL"]),
        ("the word located at the bottom left", ["bar"]),
        ("the topmost text", ["EXIT"]),
        ("the leftmost word", ["OPEN"]),
        ("the rightmost word", ["EXIT"]),
        ("the lowest text", ["bar"]),
        ("the word nearest the left edge", ["OPEN"]),
        ("the text closest to the top", ["EXIT"]),
        ("the right-most word", ["EXIT"]),
        ("the word furthest to the bottom", ["bar"]),
        ("the word nearest the top left corner", ["OPEN"]),  # two sides: the top-left ninth, a region
        ("the largest text", ["HOTEL"]),
        ("the smallest word", ["bar"]),
        ("the blue word at the top", ["EXIT"]),
        ("the smallest blue word", ["EXIT"]),
        ("every word", ["EXIT", "HOTEL", "OPEN", "bar"]),
        ("the curved text", None),  # nothing the selector knows: left to the model
        ("the word 'RED'", None),  # a quoted word is content, not a colour
    ],
)
def test_select_words(scene, expression, expected):
    image, words = scene
    assert _texts(select_words(words, expression, image)) == expected


def test_a_region_with_no_word_takes_the_nearest(scene):
    image, words = scene
    # nothing has its centre in the bottom-right ninth; HOTEL (the middle) is nearest to its centre
    assert _texts(select_words(words, "the text at the bottom right", image)) == ["HOTEL"]


def test_size_queries_measure_boxes_read_as_words(scene):
    # An unread box or a dash is the smallest box of the scene but not the smallest word; with only
    # such boxes, the smallest of them is still picked.
    image, words = scene
    dash = SeenWord(text="-", box=(200.0, 200.0, 206.0, 204.0))
    unread = SeenWord(text="", box=(10.0, 240.0, 14.0, 244.0))
    assert _texts(select_words([*words, dash, unread], "the smallest word", image)) == ["bar"]
    assert _texts(select_words([dash, unread], "the smallest word", image)) == [""]
    assert _texts(select_words([*words, dash], "the largest text", image)) == ["HOTEL"]


def test_no_words_read(scene):
    image, _ = scene
    assert select_words([], "the red word", image) == []
    assert select_words([], "the topmost text", image) == []


def test_ink_that_covers_most_of_its_box_is_still_named_by_the_surface_around_it():
    # Thick red letters filling 70 % of a loose box on a white sign: the box's median colour is the
    # ink, so only the box's edge tells the surface (before session 16 this was named white).
    image = np.full((40, 80, 3), 245, np.uint8)
    image[8:32, 6:74] = (215, 30, 35)
    word = SeenWord(text="OPEN", box=(2, 4, 78, 36))
    assert word_colours(image, [word]) == ["red"]
    assert word_colours(image, [word], surface=True) == ["white"]
