"""The contact sheet draws each image next to its mask overlay."""

from pathlib import Path

import numpy as np

from data_builders.contact_sheet import OVERLAY, contact_sheet, main, overlay

FIXTURES = Path(__file__).parent / "fixtures"


def test_overlay_tints_only_mask_pixels():
    image = np.full((4, 5, 3), 100, np.uint8)
    mask = np.zeros((4, 5), bool)
    mask[1, 2] = True
    out = overlay(image, mask, alpha=1.0)
    assert out.shape == (4, 10, 3)
    assert np.array_equal(out[:, :5], image)  # left half: untouched image
    assert np.array_equal(out[1, 7], OVERLAY.astype(np.uint8)) and np.array_equal(out[0, 5], image[0, 0])


def test_sheet_size_and_cli_on_a_reader_fixture(tmp_path):
    items = [(np.zeros((8, 8, 3), np.uint8), np.ones((8, 8), bool), "a")] * 5
    sheet = contact_sheet(items, cols=2, tile=32)
    caption = int(9 * 1.5)  # caption font is max(9, tile // 14) px, its strip 1.5x that
    assert sheet.size == (2 * (64 + 4), 3 * (32 + caption + 4))
    out = tmp_path / "sheet.png"
    main(
        [
            "--reader",
            "textseg",
            "--root",
            str(FIXTURES / "textseg"),
            "--split",
            "train",
            "--out",
            str(out),
            "--tile",
            "32",
        ]
    )
    from PIL import Image

    with Image.open(out) as im:
        assert im.width == 4 * (64 + 4)
        pixels = np.asarray(im.convert("RGB")).reshape(-1, 3)
    assert ((pixels[:, 1] > 150) & (pixels[:, 0] < 150)).any()  # some green mask tint was drawn
