"""The real-photo scorer against answers worked out by hand."""

import numpy as np
import pytest

from text4seg.core.photo_metrics import (
    PhotoMeter,
    cell_fractions,
    dilation_radius,
    polygon_grid,
    polygon_pixels,
    rasterize,
    score_photo,
)


def rect(x0, y0, x1, y1):
    """ICDAR-style flat quad with inclusive corners: covers (x1-x0+1)·(y1-y0+1) pixels."""
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def filled(shape, *boxes):
    """H×W bool with the given inclusive (x0, y0, x1, y1) boxes set."""
    m = np.zeros(shape, dtype=bool)
    for x0, y0, x1, y1 in boxes:
        m[y0 : y1 + 1, x0 : x1 + 1] = True
    return m


def test_polygon_corners_are_inclusive_and_thin_polygons_keep_their_vertices():
    assert rasterize([rect(5, 10, 15, 20)], (30, 30)).sum() == 11 * 11
    rows, cols = polygon_pixels([[2.2, 3.0], [2.4, 3.0], [2.3, 3.1]], (10, 10))  # holds no pixel point
    assert list(zip(rows, cols, strict=True)) == [(3, 2)]
    rows, cols = polygon_pixels(rect(50, 50, 60, 60), (10, 10))  # outside the image
    assert len(rows) == 0
    with pytest.raises(ValueError, match="3 vertices"):
        polygon_pixels([0, 0, 5, 5], (10, 10))


def test_word_exactly_covered():
    word = rect(10, 10, 29, 19)  # 20 × 10 = 200 pixels
    score = score_photo(filled((40, 60), (10, 10, 29, 19)), [word], [False])
    assert (score.words, score.words_found) == (1, 1)
    assert (score.predicted, score.predicted_near_text) == (200, 200)
    assert score.area == pytest.approx(200 / 2400)
    assert not score.empty


def test_five_percent_is_not_found_ten_percent_is():
    word = rect(10, 10, 29, 19)  # 200 pixels
    five = filled((40, 60), (10, 10, 19, 10))  # 10 pixels = 5 %
    ten = filled((40, 60), (10, 10, 19, 11))  # 20 pixels = 10 %
    assert score_photo(five, [word], [False]).words_found == 0
    assert score_photo(ten, [word], [False]).words_found == 1


def test_dont_care_word_is_ignored_on_both_sides():
    care, dc = rect(0, 0, 9, 9), rect(20, 0, 29, 9)  # 100 pixels each
    # Half the cared-for word (50 px), all of the don't-care word (100 px), 10 px off text.
    pred = filled((30, 60), (0, 0, 9, 4), (20, 0, 29, 9), (50, 20, 59, 20))
    score = score_photo(pred, [care, dc], [False, True])
    assert (score.words, score.words_found, score.dont_care) == (1, 1, 1)
    assert (score.predicted, score.predicted_near_text) == (60, 50)  # the 100 don't-care px drop out
    # Counted as a word instead, it would be found too and its pixels would count as on text.
    counted = score_photo(pred, [care, dc], [False, False])
    assert (counted.words, counted.predicted, counted.predicted_near_text) == (2, 160, 150)
    # Only a don't-care word, predicted: nothing to find, nothing to score, and not an empty photo.
    meter = PhotoMeter()
    meter.update(filled((30, 60), (20, 0, 29, 9)), [dc], [True])
    meter.update(np.zeros((30, 60), bool), [dc], [True])
    out = meter.summary()
    assert (out.words, out.word_recall, out.precision) == (0, None, None)
    assert (out.text_photos, out.photos_with_words, out.empty_photos, out.no_text_photos) == (2, 0, 0, 0)


def test_cared_for_word_wins_where_it_overlaps_a_dont_care_word():
    care, dc = rect(0, 0, 9, 9), rect(5, 0, 19, 9)
    score = score_photo(filled((20, 30), (0, 0, 9, 9)), [care, dc], [False, True])
    assert (score.predicted, score.predicted_near_text, score.words_found) == (100, 100, 1)


def test_dilation_radius_and_which_pixels_it_admits():
    assert dilation_radius((720, 1280)) == pytest.approx(0.0025 * np.hypot(720, 1280))  # ≈ 3.67 px
    assert dilation_radius((30, 40), 0.04) == pytest.approx(2.0)  # diagonal 50
    word = rect(10, 10, 19, 19)
    pred = np.zeros((30, 40), bool)
    pred[14, 21] = True  # 2 px right of the word's last column: inside radius 2
    pred[14, 22] = True  # 3 px: outside
    pred[21, 21] = True  # diagonal, √8 ≈ 2.83 px: outside
    score = score_photo(pred, [word], [False], dilation_fraction=0.04)
    assert (score.predicted, score.predicted_near_text) == (3, 1)
    assert score_photo(pred, [word], [False], dilation_fraction=0.0).predicted_near_text == 0


def test_grid_rule_ten_percent_of_a_cell_and_ignored_cells():
    shape, grid_size = (20, 20), (2, 2)  # cells of 10 × 10 = 100 pixels
    words = [rect(0, 0, 4, 1), rect(10, 0, 12, 2), rect(10, 10, 19, 14)]  # 10 px, 9 px, 50 px
    flags = [False, False, True]
    care = rasterize(words[:2], shape)
    dc = rasterize(words[2:], shape)
    text, ignored = polygon_grid(care, dc, grid_size)
    assert text.tolist() == [[True, False], [False, False]]  # 10 % is text, 9 % is not
    assert ignored.tolist() == [[False, False], [False, True]]  # would be text if the ### counted
    answer = np.array([[True, True], [False, True]])
    score = score_photo(np.zeros(shape, bool), words, flags, grid=answer)
    assert (score.grid_intersection, score.grid_union) == (1, 2)  # cell (1, 1) is out of both


def test_cell_split_matches_the_pipelines_upsampling():
    from text4seg.core.masks import upsample_grid

    rng = np.random.default_rng(0)
    for shape, grid_size in (((37, 53), (16, 16)), ((720, 1280), (24, 24)), ((5, 7), (3, 2))):
        grid = rng.random(grid_size) < 0.5
        up = upsample_grid(grid, size=shape)
        np.testing.assert_array_equal(cell_fractions(up, grid_size), grid.astype(float))


def test_meter_pools_counts_over_photos():
    shape = (20, 40)  # grid 2 × 4: cells of 10 × 10
    meter = PhotoMeter()
    # Photo A: two words, one found; 30 predicted px, 20 on text. Grid: I = 1, U = 3.
    a_words = [rect(0, 0, 9, 9), rect(20, 0, 29, 9)]
    a_pred = filled(shape, (0, 0, 9, 1), (30, 10, 39, 10))
    a_grid = np.zeros((2, 4), bool)
    a_grid[0, 0] = a_grid[1, 3] = True
    a = meter.update(a_pred, a_words, [False, False], grid=a_grid)
    assert (a.words_found, a.predicted, a.predicted_near_text) == (1, 30, 20)
    assert (a.grid_intersection, a.grid_union) == (1, 3)
    # Photo B: one word, found; 10 predicted px, all on it. Grid: I = 1, U = 4.
    b_pred = filled(shape, (0, 0, 9, 0))
    b_grid = np.ones((2, 4), bool)
    b_grid[1] = False
    b = meter.update(b_pred, [rect(0, 0, 9, 9)], [False], grid=b_grid)
    assert (b.grid_intersection, b.grid_union) == (1, 4)
    # Photo C: one word, nothing predicted, no grid.
    meter.update(np.zeros(shape, bool), [rect(0, 0, 9, 9)], [False])
    # Two no-text photos: one empty, one with a quarter of its pixels predicted.
    meter.update(np.zeros(shape, bool), [], [])
    meter.update(filled(shape, (0, 0, 9, 9), (10, 10, 19, 19)), [], [])
    out = meter.summary()
    assert (out.photos, out.text_photos, out.words, out.words_found) == (5, 3, 4, 2)
    assert out.word_recall == pytest.approx(2 / 4)
    assert out.precision == pytest.approx(30 / 40)  # pooled pixels, not the mean of 2/3 and 1
    assert out.grid_iou == pytest.approx(2 / 7)  # Σ I / Σ U, not the mean of 1/3 and 1/4
    assert out.grid_photos == 2
    assert (out.empty_photos, out.photos_with_words) == (1, 3)
    assert (out.no_text_photos, out.no_text_empty) == (2, 1)
    assert out.no_text_mean_area == pytest.approx((0 + 200 / 800) / 2)
    assert out.to_json()["words"] == 4


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="bool"):
        score_photo(np.zeros((4, 4), np.uint8), [], [])
    with pytest.raises(ValueError, match="2 polygons but 1"):
        score_photo(np.zeros((4, 4), bool), [rect(0, 0, 1, 1)] * 2, [False])
    with pytest.raises(ValueError, match="grid"):
        score_photo(np.zeros((4, 4), bool), [], [], grid=np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="recall_fraction"):
        PhotoMeter(recall_fraction=0.0)
