"""Reading user images safely: any mode, any size, EXIF rotation, clear errors that name the file."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

MAX_PIXELS = 64_000_000
"""Largest image accepted (width × height); larger ones are refused as possible decompression bombs."""


class ImageLoadError(ValueError):
    """An image that cannot be used; the message names the file and the reason."""


def _to_rgb(img):
    """Convert any PIL mode to 8-bit RGB (16-bit and float images are rescaled, not clipped)."""
    from PIL import Image

    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(scaled.round().astype(np.uint8), mode="L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Composite on white: a transparent background is drawn as paper, not as black.
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(canvas, rgba)
    return img.convert("RGB")


def load_image(path: str | Path, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image file as an H×W×3 uint8 RGB array, upright per its EXIF orientation.

    Raises :class:`ImageLoadError` naming ``path`` for a missing, unreadable, empty or oversized file
    and for a directory.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if path.is_dir():
        raise ImageLoadError(f"{path}: is a directory, not an image file")
    if not path.is_file():
        raise ImageLoadError(f"{path}: no such image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise ImageLoadError(
                        f"{path}: {width}×{height} = {width * height:,} pixels exceeds the limit of "
                        f"{max_pixels:,} (possible decompression bomb)"
                    )
                if width == 0 or height == 0:
                    raise ImageLoadError(f"{path}: image has zero size ({width}×{height})")
                img.load()
                upright = ImageOps.exif_transpose(img)
                rgb = _to_rgb(upright)
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageLoadError(f"{path}: refused as a possible decompression bomb ({err})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageLoadError(f"{path}: not a readable image ({type(err).__name__}: {err})") from None
    return np.asarray(rgb, dtype=np.uint8).copy()


def as_rgb_array(image) -> np.ndarray:
    """Accept a path, a PIL image or an array (H×W, H×W×3, H×W×4) and return H×W×3 uint8 RGB."""
    if isinstance(image, str | Path):
        return load_image(image)
    if hasattr(image, "mode") and hasattr(image, "convert"):  # PIL image
        from PIL import ImageOps

        return np.asarray(_to_rgb(ImageOps.exif_transpose(image)), dtype=np.uint8).copy()
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4) or 0 in arr.shape:
        raise ImageLoadError(f"image array must be H×W, H×W×3 or H×W×4 and non-empty, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ImageLoadError(f"image array must be uint8, got {arr.dtype}")
    return np.ascontiguousarray(arr[..., :3])
