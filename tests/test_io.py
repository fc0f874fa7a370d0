"""Image loading: every mode becomes upright RGB; bad files give errors naming the file."""

import numpy as np
import pytest
from PIL import Image

from text4seg.core.io import ImageLoadError, as_rgb_array, load_image


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "CMYK", "I;16", "1", "F"])
def test_every_mode_loads_as_rgb(tmp_path, mode):
    base = Image.fromarray((np.arange(12 * 20) % 256).astype(np.uint8).reshape(12, 20)).convert("RGB")
    img = (
        base.convert(mode)
        if mode not in ("I;16", "F")
        else Image.fromarray(
            (np.arange(12 * 20).reshape(12, 20) * 200).astype(np.uint16 if mode == "I;16" else np.float32)
        )
    )
    path = tmp_path / f"img.{'tiff' if mode in ('CMYK', 'I;16', 'F') else 'png'}"
    img.save(path)
    arr = load_image(path)
    assert arr.shape == (12, 20, 3) and arr.dtype == np.uint8
    if mode == "I;16":  # 16-bit is rescaled to the full 8-bit range, not clipped
        assert arr.min() == 0 and arr.max() == 255


def test_transparent_pixels_become_white(tmp_path):
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    arr = load_image(tmp_path / "a.png")
    assert tuple(arr[0, 0]) == (255, 0, 0) and tuple(arr[3, 3]) == (255, 255, 255)


def test_exif_rotation_is_applied(tmp_path):
    img = Image.new("RGB", (30, 10), (0, 0, 0))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    img.save(tmp_path / "r.jpg", exif=exif)
    assert load_image(tmp_path / "r.jpg").shape == (30, 10, 3)


def test_bad_files_name_the_file(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    (tmp_path / "empty.jpg").write_bytes(b"")
    for name in ["junk.png", "empty.jpg", "missing.png"]:
        with pytest.raises(ImageLoadError, match=name):
            load_image(tmp_path / name)


def test_a_directory_is_reported_as_a_directory(tmp_path):
    (tmp_path / "photos.png").mkdir()
    with pytest.raises(ImageLoadError, match=r"photos\.png: is a directory, not an image file$"):
        load_image(tmp_path / "photos.png")


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    Image.new("L", (3000, 3000)).save(tmp_path / "big.png")
    with pytest.raises(ImageLoadError, match=r"big\.png.*decompression bomb"):
        load_image(tmp_path / "big.png", max_pixels=1_000_000)


def test_arrays_and_pil_images_are_accepted():
    assert as_rgb_array(np.zeros((5, 6), dtype=np.uint8)).shape == (5, 6, 3)
    assert as_rgb_array(np.zeros((5, 6, 4), dtype=np.uint8)).shape == (5, 6, 3)
    assert as_rgb_array(Image.new("L", (6, 5))).shape == (5, 6, 3)
    with pytest.raises(ImageLoadError, match="uint8"):
        as_rgb_array(np.zeros((5, 6, 3), dtype=np.float32))
