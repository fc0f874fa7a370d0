"""Zoomed refinement: windows from groups of coarse cells, refined at the photo's own resolution."""

import numpy as np
import pytest
import torch
from refiner_support import small_refiner_config, text_encoder

from stsam_refiner.build import build_refiner
from stsam_refiner.predict import refine_image
from stsam_refiner.zoom import Window, refine_zoomed, view_side, window_side, zoom_windows

torch.set_num_threads(1)


def test_one_window_per_group_of_cells_grown_to_the_view_and_kept_inside_the_photo():
    grid = np.zeros((8, 8), bool)
    grid[0, 0] = grid[1, 1] = True  # diagonal neighbours: one group
    grid[5, 4:7] = True  # a second group
    windows = zoom_windows(grid, (720, 1280), side=256, margin=0.25)
    assert len(windows) == 2
    first, second = windows
    # cells rows 0-1 (0..180 px) and columns 0-1 (0..320 px), 1/4 cell margin, grown to 256 rows
    assert first == Window(0, 256, 0, 360)
    # row 5 spans 450..540 (+22 margin), grown about its centre to 256; columns 4-6 span 640..1120 (+40)
    assert second == Window(367, 623, 600, 1160)
    for w in windows:
        assert 0 <= w.y0 < w.y1 <= 720 and 0 <= w.x0 < w.x1 <= 1280
        assert w.y1 - w.y0 >= 256 and w.x1 - w.x0 >= 256


def test_windows_never_exceed_a_photo_smaller_than_the_view():
    grid = np.zeros((4, 4), bool)
    grid[3, 3] = True
    (window,) = zoom_windows(grid, (100, 300), side=256, margin=0.0)
    assert window == Window(0, 100, 44, 300)
    assert zoom_windows(np.zeros((4, 4), bool), (100, 300), side=256) == []
    with pytest.raises(ValueError, match="gh×gw"):
        zoom_windows(np.zeros(4, bool), (100, 300), side=256)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    model, _ = build_refiner(small_refiner_config(), text_encoder=text_encoder())
    return model.eval()


def test_window_side_zooms_twice_on_small_photos_and_to_native_pixels_on_large_ones(model):
    assert view_side(model) == 128
    assert window_side(model, (96, 128)) == 64  # half the photo: seen twice as large
    assert window_side(model, (300, 600)) == 128  # the view's side: the photo's own pixels
    assert window_side(model, (20, 20)) == 16


def test_a_grid_covering_the_photo_is_refined_whole_and_an_empty_grid_is_not_cut(model):
    image = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    grid = np.ones((8, 8), bool)
    whole = refine_image(model, image, coarse=grid, flips=("h",))
    np.testing.assert_array_equal(refine_zoomed(model, image, coarse=grid, flips=("h",)).logits, whole.logits)
    empty = np.zeros((8, 8), bool)
    np.testing.assert_array_equal(
        refine_zoomed(model, image, coarse=empty).logits, refine_image(model, image, coarse=empty).logits
    )


def test_a_large_photo_is_refined_per_window_at_its_own_resolution(model):
    image = np.random.default_rng(1).integers(0, 255, (300, 600, 3), dtype=np.uint8)
    grid = np.zeros((6, 12), bool)
    grid[1, 1:3] = True  # rows 50..100, columns 50..150
    grid[4, 9] = True  # rows 200..250, columns 450..500
    out = refine_zoomed(model, image, coarse=grid, margin=0.0)
    windows = zoom_windows(grid, image.shape[:2], side=128, margin=0.0)
    assert windows == [Window(11, 139, 36, 164), Window(161, 289, 411, 539)]
    full = np.repeat(np.repeat(grid, 50, axis=0), 50, axis=1)
    for w in windows:
        rows, cols = w.slices
        crop = refine_image(model, np.ascontiguousarray(image[rows, cols]), coarse=full[rows, cols])
        inside = full[rows, cols]  # the window's own cells: the crop's logits, as refined
        np.testing.assert_allclose(out.logits[rows, cols][inside], crop.logits[inside], rtol=1e-5, atol=1e-5)
    # outside the cells (margin 0) nothing, though the windows show more of the photo
    assert not out.mask[~full].any() and (out.logits[~full] == -1e4).all()
    # a margin lets the mask reach a quarter cell (12 px) past the cells, no further
    grown = refine_zoomed(model, image, coarse=grid, margin=0.25)
    reach = np.zeros_like(full)
    reach[38:112, 38:162] = reach[188:262, 438:512] = True
    assert (grown.logits[~reach] == -1e4).all() and (grown.logits[reach & ~full] > -1e4).all()
    # the whole-photo refinement differs: the windows are what the model saw
    whole = refine_image(model, image, coarse=grid)
    assert not np.allclose(whole.logits[windows[0].slices], out.logits[windows[0].slices], atol=1e-3)
