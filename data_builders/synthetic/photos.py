"""Real photo backgrounds for the corpus: Debian wallpaper packages, scikit-image, scikit-learn, or a folder.

Each source photo has a key ("plasma:Autumn", "mate:Dune", "skimage:coffee") and is split into
train / select / test by a stable hash of that key, so crops of one photo never cross splits. Every
photo below was looked at; the ones with lettering, numerals or logos are listed in `EXCLUDED` and
never used (text in a background would be labelled background and teach the model to ignore text).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import numpy as np

SPLITS = ("train", "select", "test")
DEBIAN_BACKGROUND_PACKAGES = {
    "plasma-workspace-wallpapers": "plasma",
    "mate-backgrounds": "mate",
    "lomiri-wallpapers-16.04": "lomiri",
}
EXCLUDED = {
    "mate:GreenTraditional": "the words 'The traditional desktop environment'",
    "mate:Float-into-MATE": "MATE logos",
    "lomiri:Wine_by_Jakkub_Mede": "lettering on the wine label",
    "lomiri:greentock_by_Peter_Nerlich": "clock numerals",
}
# scikit-image and scikit-learn photos without text (astronaut, rocket, motorcycle, coins and clock
# carry lettering). They are the no-text photos of the real-photo development set
# (benchmarks/real_photos.py NO_TEXT), so they are pinned to "test": a model is never trained on them.
PACKAGE_PHOTOS = (
    ("skimage", "data/brick.png"), ("skimage", "data/camera.png"), ("skimage", "data/chelsea.png"),
    ("skimage", "data/coffee.png"), ("skimage", "data/grass.png"), ("skimage", "data/gravel.png"),
    ("skimage", "data/hubble_deep_field.jpg"), ("skimage", "data/ihc.png"), ("skimage", "data/moon.png"),
    ("skimage", "data/retina.jpg"), ("sklearn", "datasets/images/china.jpg"),
    ("sklearn", "datasets/images/flower.jpg"),
)  # fmt: skip
_PINNED_PREFIXES = {"skimage:": "test", "sklearn:": "test"}
_SPLIT_EDGES = (700, 850)  # per mille: ~70 / 15 / 15
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
MAX_SIDE = 1024
"""Photos are kept in memory with their long side at most this many pixels."""
_DPKG_INFO = Path("/var/lib/dpkg/info")


@dataclass(frozen=True, kw_only=True)
class Photo:
    """One source photo of the corpus."""

    key: str
    """"<source>:<name>", e.g. "plasma:Autumn" (what `background_kind` records after "photo:")."""
    path: str
    """The file read (the largest copy when a package ships several sizes)."""
    split: str
    """"train", "select" or "test" (see `photo_split`)."""


def photo_split(key: str) -> str:
    """ "train", "select" or "test" for a photo key: pinned, else a stable SHA-256 of the key."""
    for prefix, split in _PINNED_PREFIXES.items():
        if key.startswith(prefix):
            return split
    bucket = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 1000
    return "train" if bucket < _SPLIT_EDGES[0] else "select" if bucket < _SPLIT_EDGES[1] else "test"


def _debian_key(short: str, path: Path) -> str | None:
    """Key of a wallpaper file, or None for previews. Sizes of one picture share a key."""
    if path.stem == "screenshot":
        return None
    if short == "plasma":  # /usr/share/wallpapers/<Name>/contents/images[_dark]/<W>x<H>.<ext>
        return f"plasma:{path.parents[2].name}"
    name = re.sub(r"_\d+x\d+$", "", path.stem)
    return f"{short}:{name}"


def debian_photo_files() -> tuple[dict[str, Path], list[str]]:
    """({key: largest file}, missing packages), from dpkg's file lists (no subprocess)."""
    best: dict[str, Path] = {}
    missing = []
    for package, short in DEBIAN_BACKGROUND_PACKAGES.items():
        listing = _DPKG_INFO / f"{package}.list"
        if not listing.exists():
            missing.append(package)
            continue
        for line in sorted(listing.read_text().splitlines()):
            path = Path(line)
            if path.suffix.lower() not in _IMAGE_SUFFIXES or not path.is_file() or "images_dark" in line:
                continue
            key = _debian_key(short, path)
            if key is None or key in EXCLUDED:
                continue
            if key not in best or path.stat().st_size > best[key].stat().st_size:
                best[key] = path
    return best, missing


def _package_root(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def _has_transparency(path: Path) -> bool:
    from PIL import Image

    with Image.open(path) as im:
        if im.mode not in ("RGBA", "LA", "PA") and "transparency" not in im.info:
            return False
        im.draft("RGBA", (256, 256))
        alpha = np.asarray(im.convert("RGBA").resize((64, 64)))[..., 3]
    return bool(alpha.min() < 250)


def assets_key(path: Path) -> str:
    """Key of a packed file: pack_assets names files "<source>__<name>.jpg" so the split is kept."""
    source, sep, name = path.stem.partition("__")
    return f"{source}:{name}" if sep else f"assets:{path.stem}"


@lru_cache(maxsize=4)
def photo_catalog(assets_dir: str = "") -> tuple[Photo, ...]:
    """Every usable photo, sorted by key. With `assets_dir`, its backgrounds/ folder replaces the
    Debian packages; the scikit-image and scikit-learn photos are used either way."""
    found: dict[str, Path] = {}
    for module, relative in PACKAGE_PHOTOS:
        root = _package_root(module)
        if root is not None and (root / relative).is_file():
            found[f"{module}:{Path(relative).stem}"] = root / relative
    if assets_dir:
        folder = Path(assets_dir) / "backgrounds"
        if not folder.is_dir():
            raise ValueError(f"assets_dir {assets_dir!r} has no backgrounds/ folder")
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in _IMAGE_SUFFIXES and assets_key(path) not in EXCLUDED:
                found.setdefault(assets_key(path), path)
    else:
        debian, _ = debian_photo_files()
        found.update({k: p for k, p in debian.items() if not _has_transparency(p)})
    return tuple(Photo(key=k, path=str(p), split=photo_split(k)) for k, p in sorted(found.items()))


@lru_cache(maxsize=3)
def corpus_photos(split: str, assets_dir: str = "") -> tuple[Photo, ...]:
    """The photos of one split; raises when it is empty (no wallpaper packages and no assets)."""
    if split not in SPLITS:
        raise ValueError(f"background split {split!r} not in {SPLITS}")
    photos = tuple(p for p in photo_catalog(assets_dir) if p.split == split)
    if not photos:
        raise ValueError(f"no photos in background split {split!r} (assets_dir={assets_dir!r})")
    return photos


def scale_photo(path: str | Path) -> np.ndarray:
    """HxWx3 uint8 RGB of the file with its long side at most MAX_SIDE."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # 5120x2880 wallpapers trip PIL's decompression-bomb guard
    with Image.open(path) as im:
        im.draft("RGB", (MAX_SIDE, MAX_SIDE))  # JPEG: decode at a reduced scale directly
        rgb = im.convert("RGB")
        rgb.thumbnail((MAX_SIDE, MAX_SIDE), Image.LANCZOS)
        return np.asarray(rgb)


@cache
def load_scaled(path: str) -> np.ndarray:
    """`scale_photo`, kept in memory per process and on disk as .npy under $XDG_CACHE_HOME/text4seg/
    (decoding a 5K wallpaper takes ~0.4 s; the cached copy ~1 ms), keyed by path, size and mtime."""
    stat = Path(path).stat()
    key = hashlib.sha256(f"{path}|{stat.st_size}|{stat.st_mtime_ns}|{MAX_SIDE}".encode()).hexdigest()[:20]
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "text4seg" / "photos"
    cached = root / f"{key}.npy"
    if cached.exists():
        return np.load(cached)
    pixels = scale_photo(path)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f"{key}.{os.getpid()}.tmp.npy"
    np.save(tmp, pixels)
    tmp.replace(cached)  # atomic: parallel workers never read half a file
    return pixels


def corpus_photo_crop(
    rng: np.random.Generator, size: int, photos: tuple[Photo, ...]
) -> tuple[np.ndarray, str]:
    """A random square crop (30-100% of the short side) of a random photo, resized to size x size."""
    from PIL import Image

    photo = photos[rng.integers(len(photos))]
    pixels = load_scaled(photo.path)
    h, w = pixels.shape[:2]
    side = max(8, int(min(h, w) * rng.uniform(0.3, 1.0)))
    y0 = int(rng.integers(0, h - side + 1))
    x0 = int(rng.integers(0, w - side + 1))
    crop = Image.fromarray(pixels[y0 : y0 + side, x0 : x0 + side]).resize((size, size), Image.BILINEAR)
    out = np.asarray(crop).astype(np.float32)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    out = (out - 128.0) * rng.uniform(0.75, 1.15) + 128.0 + rng.uniform(-25, 25)
    return np.clip(out, 0, 255).astype(np.uint8), f"photo:{photo.key}"


def missing_packages_warning() -> str | None:
    _, missing = debian_photo_files()
    if not missing:
        return None
    return f"Debian wallpaper packages missing, the corpus uses the rest: {', '.join(missing)}"
