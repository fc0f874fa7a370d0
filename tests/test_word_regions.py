"""Grids from word regions (convex hulls) keep the cells of small words that a grid from strokes drops."""

import numpy as np
import pytest

from data_builders.synthetic.config import SyntheticConfig
from data_builders.synthetic.instances import size_class
from text4seg.core.masks import grid_from_mask, word_regions


def _ring_word(shape=(64, 64)) -> np.ndarray:
    """A thin 'O' stroke: its hull fills the middle, its strokes cover little of the cell."""
    mask = np.zeros(shape, bool)
    mask[10:14, 4:12] = mask[20:24, 4:12] = True  # top and bottom bars
    mask[10:24, 4:6] = mask[10:24, 10:12] = True  # left and right bars
    return mask


def test_regions_are_the_union_of_each_words_hull_not_one_hull_over_all():
    first = _ring_word()
    second = np.zeros_like(first)
    second[40:44, 40:60] = True
    regions = word_regions([first, second], first.shape)
    assert regions[15, 8] and not first[15, 8]  # inside the 'O'
    assert not regions[30, 30]  # between the two words: not part of either hull
    assert (regions >= (first | second)).all()
    assert not word_regions([], (8, 8)).any()


def test_a_small_word_keeps_its_cell_under_regions_where_strokes_lose_it():
    stroke = _ring_word()
    cells = dict(grid_size=(2, 2), rule="area", threshold=0.1)
    # The strokes cover under 10% of the top-left 32x32 cell; the hull covers more.
    assert stroke[:32, :32].mean() < 0.1 <= word_regions([stroke], stroke.shape)[:32, :32].mean()
    assert grid_from_mask(stroke, **cells)[0][0] == 0
    assert grid_from_mask(word_regions([stroke], stroke.shape), **cells)[0][0] == 1


def test_size_classes_are_checked_and_micro_words_are_described_as_tiny():
    assert SyntheticConfig(size_classes=["micro", "tiny"]).size_classes == ("micro", "tiny")
    with pytest.raises(ValueError, match="size_classes"):
        SyntheticConfig(size_classes=["gigantic"])
    with pytest.raises(ValueError, match="size_classes"):
        SyntheticConfig(size_classes=[])
    assert size_class(0.02 * 512, 512) == "tiny"
