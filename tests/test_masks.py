"""Grid <-> mask conversions and SAM mask-prompt logits."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from text4seg.core.masks import (
    descriptor_from_index,
    descriptor_from_mask,
    grid_from_mask,
    grow_mask,
    index_from_descriptor,
    mask_prompt_logits,
    snap_cells,
    upsample_grid,
)


def test_nearest_samples_the_cell_centre():
    mask = np.zeros((32, 32), dtype=bool)
    mask[2, 2] = True  # centre of cell (0, 0) for a 8x8 grid over 32 px (cells of 4 px: centre 2)
    mask[5, 4] = True  # not a centre
    grid = grid_from_mask(mask, grid_size=(8, 8), rule="nearest")
    assert grid.dtype == bool and grid.shape == (8, 8)
    assert grid.sum() == 1 and grid[0, 0]


def test_area_rule_counts_pixel_fraction():
    mask = np.zeros((4, 8), dtype=bool)
    mask[:, :3] = True  # left cell (4x4) is 75% foreground, right cell 0%
    mask[:2, 4] = True  # right cell 2/16 = 12.5%
    assert grid_from_mask(mask, grid_size=(1, 2), rule="area", threshold=0.5).tolist() == [[True, False]]
    assert grid_from_mask(mask, grid_size=(1, 2), rule="area", threshold=0.8).tolist() == [[False, False]]
    assert grid_from_mask(mask, grid_size=(1, 2), rule="area", threshold=0.1).tolist() == [[True, True]]


def test_area_rule_on_label_maps_takes_the_dominant_label():
    labels = np.zeros((4, 4), dtype=np.int64)
    labels[:, :2] = 2
    labels[0, 1] = 1
    assert grid_from_mask(labels, grid_size=(1, 1), rule="area", threshold=0.25).tolist() == [[2]]
    assert grid_from_mask(labels, grid_size=(1, 1), rule="area", threshold=0.5).tolist() == [[0]]


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 24), st.integers(1, 24), st.integers(1, 5), st.integers(1, 5), st.data())
def test_upsampled_grid_downsamples_back_to_itself(gh, gw, sy, sx, data):
    grid = np.array(data.draw(st.lists(st.booleans(), min_size=gh * gw, max_size=gh * gw))).reshape(gh, gw)
    size = (gh * sy + data.draw(st.integers(0, sy - 1)), gw * sx + data.draw(st.integers(0, sx - 1)))
    image_mask = upsample_grid(grid, size=size)
    assert image_mask.shape == size and image_mask.dtype == bool
    assert (grid_from_mask(image_mask, grid_size=(gh, gw), rule="nearest") == grid).all()
    assert (grid_from_mask(image_mask, grid_size=(gh, gw), rule="area", threshold=0.5) == grid).all()


def test_descriptor_index_round_trip_and_errors():
    names = ["others", "text"]
    grid = descriptor_from_mask(np.eye(4, dtype=bool), label="text", grid_size=(4, 4))
    assert grid[1] == ["others", "text", "others", "others"]
    assert (index_from_descriptor(grid, names) == np.eye(4)).all()
    assert descriptor_from_index(index_from_descriptor(grid, names), names) == grid
    with pytest.raises(ValueError, match="not in names"):
        index_from_descriptor([["cat"]], names)
    with pytest.raises(ValueError, match="only 2 names"):
        descriptor_from_index(np.array([[2]]), names)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="non-empty H×W"):
        grid_from_mask(np.zeros((0, 4)))
    with pytest.raises(ValueError, match="grid rule"):
        grid_from_mask(np.zeros((4, 4)), rule="bilinear")
    with pytest.raises(ValueError, match="image size must be positive"):
        upsample_grid(np.zeros((2, 2)), size=(0, 3))


def test_mask_prompt_logits_are_plus_minus_6_9():
    logits = mask_prompt_logits(np.array([[1, 0]]))
    assert logits.dtype == np.float32
    np.testing.assert_allclose(logits, [[np.log(999), -np.log(999)]], rtol=1e-6)
    assert abs(float(logits[0, 0]) - 6.9068) < 1e-3


def test_grow_mask_takes_the_pixels_within_a_euclidean_distance():
    dot = np.zeros((9, 9), bool)
    dot[4, 4] = True
    grown = grow_mask(dot, 2)
    ys, xs = np.nonzero(grown)
    assert sorted(((ys - 4) ** 2 + (xs - 4) ** 2).tolist()) == [0, 1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 4]
    assert np.array_equal(grow_mask(dot, 0), dot) and grow_mask(dot, 0) is not dot
    assert not grow_mask(np.zeros((5, 5), bool), 3).any()
    with pytest.raises(ValueError, match=">= 0"):
        grow_mask(dot, -1)


def test_snap_cells_adds_the_hinted_words_next_to_the_answer():
    answer = np.zeros((8, 8), bool)
    answer[3, 2:5] = True  # one row above the word
    hint = np.zeros((8, 8), bool)
    hint[4, 1:4] = True  # the hinted word, one cell further left than the answer
    hint[6, 4] = True  # another hinted word, three rows below the answer
    hint[1, 6:8] = True  # and one two rows up, in other columns
    snapped = snap_cells(answer, hint, 1)
    assert np.array_equal(
        snapped,
        answer | (np.arange(8)[None, :] >= 1) & (np.arange(8)[None, :] <= 3) & (np.arange(8)[:, None] == 4),
    )
    assert np.array_equal(snap_cells(answer, hint, 0), answer)
    assert not snapped[6, 4] and snap_cells(answer, hint, 3)[6, 4] and not snap_cells(answer, hint, 3)[1, 6]
    assert not snap_cells(np.zeros((8, 8), bool), hint, 2).any()  # nothing answered: nothing gained
    with pytest.raises(ValueError, match="shape"):
        snap_cells(answer, hint[:4], 1)
    with pytest.raises(ValueError, match=">= 0"):
        snap_cells(answer, hint, -1)
