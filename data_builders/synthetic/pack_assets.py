"""Copy a representative subset of the corpus fonts and photos into a folder, for a machine without
the Debian and PyPI packages (the GPU machine: at most 64 MiB travel with the repository).

python -m data_builders.synthetic.pack_assets --out DIR [--max-mb 30 --splits train]

Photos (interleaved over their packages) take at most half of the budget, fonts (interleaved over
split groups, ordinary families first, up to four faces each, cut to Latin and unhinted with fontTools)
the rest.

Layout: DIR/fonts/<family>/<font files>, DIR/backgrounds/<source>__<name>.jpg (long side <= 1024, so a
file keeps its photo key and split), DIR/licenses/<package> (the Debian copyright files and PyPI
licence texts of what was copied), DIR/manifest.json. Use it with `SyntheticConfig(assets_dir=DIR)`:
families and photos get the same splits there as here. matplotlib's, scikit-image's and scikit-learn's
files are not copied: every machine that runs the project has them.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from itertools import zip_longest
from pathlib import Path

from data_builders.synthetic.font_catalog import font_catalog, split_group
from data_builders.synthetic.photos import DEBIAN_BACKGROUND_PACKAGES, load_scaled, photo_catalog

_FACE_ORDER = ("regular", "bold", "italic", "bold italic")
_MAX_FACES = 4
# What the generator draws (data_builders.synthetic.words) and more: Basic Latin and Latin-1.
_UNICODES = [*range(0x20, 0x7F), *range(0xA0, 0x100)]


def copy_face(source: Path, target: Path) -> None:
    """Write `source` cut down to Basic Latin and Latin-1, unhinted (a 1 MB pan-Unicode face becomes ~30 KB).
    All name records are kept, so the face's family name, and with it its split, does not change."""
    import logging

    from fontTools import subset

    logging.getLogger("fontTools").setLevel(logging.ERROR)  # "FFTM NOT subset; dropped" per face
    options = subset.Options()
    options.name_IDs = ["*"]
    options.name_languages = ["*"]
    options.notdef_outline = True
    options.hinting = False  # hints are half of many faces; FreeType renders unhinted faces well
    font = subset.load_font(str(source), options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=_UNICODES)
    subsetter.subset(font)
    subset.save_font(font, str(target), options)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "font"


def _interleaved(families) -> list:
    """Families ordered so any prefix is spread over split groups: ordinary families first."""
    out = []
    for decorative in (False, True):
        groups: dict[str, list] = {}
        for family in families:
            if family.decorative == decorative:
                groups.setdefault(split_group(family.name), []).append(family)
        rounds = zip_longest(*(groups[g] for g in sorted(groups)))
        out += [f for row in rounds for f in row if f is not None]
    return out


def _faces(family) -> list:
    """Up to four faces, the common styles first."""
    ranked = sorted(
        family.faces, key=lambda f: (_FACE_ORDER.index(f.style) if f.style in _FACE_ORDER else 9, f.path)
    )
    return ranked[:_MAX_FACES]


def _licence_file(source: str, path: Path) -> Path | None:
    if source.startswith("debian:"):
        candidate = Path("/usr/share/doc") / source.split(":", 1)[1] / "copyright"
        return candidate if candidate.exists() else None
    for parent in path.parents:
        found = sorted(
            p for p in parent.glob("*") if p.name.upper().startswith(("LICENSE", "OFL", "COPYING"))
        )
        if found:
            return found[0]
        if parent.name.endswith(".dist-info") or parent.name == "site-packages":
            break
    return None


def pack(out: Path, *, max_mb: float, splits: tuple[str, ...]) -> dict:
    """Write the folder; returns the manifest (counts and megabytes)."""
    from PIL import Image

    budget = int(max_mb * 1e6)
    used = 0
    licences: dict[str, Path] = {}
    photos = [
        p for p in photo_catalog() if p.split in splits and not p.key.startswith(("skimage:", "sklearn:"))
    ]
    by_source: dict[str, list] = {}
    for photo in photos:
        by_source.setdefault(photo.key.split(":", 1)[0], []).append(photo)
    (out / "backgrounds").mkdir(parents=True, exist_ok=True)
    packed_photos = []
    for photo in (p for row in zip_longest(*by_source.values()) for p in row if p is not None):
        source, name = photo.key.split(":", 1)
        target = out / "backgrounds" / f"{source}__{_safe(name)}.jpg"
        Image.fromarray(load_scaled(photo.path)).save(target, quality=90)
        if used + target.stat().st_size > budget // 2:  # photos take at most half the budget
            target.unlink()
            continue
        used += target.stat().st_size
        packed_photos.append(photo.key)
    families = [f for f in font_catalog() if f.split in splits and f.source != "matplotlib"]
    packed_families = []
    for family in _interleaved(families):
        if budget - used < 20_000:  # no family fits in less (a subset face is 10-60 KB)
            break
        folder = out / "fonts" / _safe(family.name)
        folder.mkdir(parents=True, exist_ok=True)
        targets = [folder / Path(face.path).name for face in _faces(family)]
        for face, target in zip(_faces(family), targets, strict=True):
            copy_face(Path(face.path), target)
        size = sum(t.stat().st_size for t in targets)
        if used + size > budget:
            shutil.rmtree(folder)
            continue
        used += size
        packed_families.append(family.name)
        licence = _licence_file(family.source, Path(family.faces[0].path))
        if licence is not None:
            licences.setdefault(family.source.split(":", 1)[-1], licence)
    for package, short in DEBIAN_BACKGROUND_PACKAGES.items():
        if any(k.startswith(f"{short}:") for k in packed_photos):
            licences.setdefault(package, Path("/usr/share/doc") / package / "copyright")
    (out / "licenses").mkdir(exist_ok=True)
    for name, path in sorted(licences.items()):
        if path.exists():
            shutil.copy2(path, out / "licenses" / _safe(name))
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    manifest = {"splits": list(splits), "families": packed_families, "photos": packed_photos,
                "families_available": len(families), "photos_available": len(photos), "megabytes": round(total / 1e6, 2)}  # fmt: skip
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m data_builders.synthetic.pack_assets", description=__doc__
    )
    parser.add_argument("--out", required=True, help="folder to write (must not exist or be empty)")
    parser.add_argument(
        "--max-mb", type=float, default=30.0, help="size budget in MB (photos first, then fonts)"
    )
    parser.add_argument("--splits", default="train", help="comma-separated corpus splits to pack")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} exists and is not empty")
    splits = tuple(s for s in args.splits.split(",") if s)
    manifest = pack(out, max_mb=args.max_mb, splits=splits)
    print(
        f"packed {len(manifest['families'])}/{manifest['families_available']} font families and "
        f"{len(manifest['photos'])}/{manifest['photos_available']} photos ({','.join(splits)}) "
        f"into {out}: {manifest['megabytes']:.1f} MB"
    )


if __name__ == "__main__":
    main()
