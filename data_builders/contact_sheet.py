"""A contact sheet: a grid of images with their masks overlaid, so a person can look at the data.

python -m data_builders.contact_sheet --data DIR --out docs/contact_sheet.png [--n 16 --cols 4 --tile 192 --quantize]
python -m data_builders.contact_sheet --reader totaltext --root ROOT --split test --out sheet.png
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from data_builders.readers import build_reader
from data_builders.synthetic import load_synthetic
from data_builders.synthetic.fonts import font_set, load_font

OVERLAY = np.array([0, 255, 80], np.float32)  # mask pixels are tinted green
IGNORE = np.array([255, 0, 255], np.float32)  # ignore pixels magenta


def overlay(
    image: np.ndarray, mask: np.ndarray, ignore: np.ndarray | None = None, alpha: float = 0.55
) -> np.ndarray:
    """HxWx3 uint8: the image on the left half, the image with the mask tinted on the right half."""
    tinted = image.astype(np.float32)
    tinted[mask] = (1 - alpha) * tinted[mask] + alpha * OVERLAY
    if ignore is not None:
        tinted[ignore] = (1 - alpha) * tinted[ignore] + alpha * IGNORE
    return np.concatenate([image, tinted.astype(np.uint8)], axis=1)


def _caption_font(size: int):
    return load_font(font_set("train")[0].path, size)


def contact_sheet(
    items: Iterable[tuple[np.ndarray, np.ndarray, str]], *, cols: int = 4, tile: int = 192
) -> Image.Image:
    """Grid of (image, mask, caption) tiles; each tile shows image | overlay with the caption below."""
    tiles = []
    font = _caption_font(max(9, tile // 14))
    caption_h = int(font.size * 1.5)
    for image, mask, caption in items:
        pair = Image.fromarray(overlay(image, mask)).resize((2 * tile, tile), Image.BILINEAR)
        canvas = Image.new("RGB", (2 * tile, tile + caption_h), (255, 255, 255))
        canvas.paste(pair, (0, 0))
        ImageDraw.Draw(canvas).text((4, tile + 2), caption[:60], fill=(0, 0, 0), font=font)
        tiles.append(canvas)
    if not tiles:
        raise ValueError("no samples to draw")
    rows = (len(tiles) + cols - 1) // cols
    w, h = tiles[0].size
    sheet = Image.new("RGB", (cols * (w + 4), rows * (h + 4)), (200, 200, 200))
    for i, t in enumerate(tiles):
        sheet.paste(t, ((i % cols) * (w + 4), (i // cols) * (h + 4)))
    return sheet


def _synthetic_items(path: str, n: int):
    data = load_synthetic(path)
    for row in data.select(range(min(n, len(data)))):
        words = (
            ", ".join(f"{i['text']} ({i['colour']}, {i['size']})" for i in row["instances"][:2]) or "no text"
        )
        yield np.asarray(row["image"].convert("RGB")), np.asarray(row["mask"]) > 127, words


def _reader_items(name: str, root: str, split: str, n: int):
    reader = build_reader(name, root=root)
    for i, rec in enumerate(reader.records(split)):
        if i >= n:
            break
        mask = rec.mask if rec.mask is not None else rec.label_map >= 0
        yield rec.image, mask, f"{rec.source_id}: {rec.text}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m data_builders.contact_sheet", description=__doc__)
    parser.add_argument("--data", help="synthetic Arrow dataset folder")
    parser.add_argument("--reader", help="reader name (data_builders.readers.READERS) instead of --data")
    parser.add_argument("--root", help="dataset root for --reader")
    parser.add_argument("--split", default="train")
    parser.add_argument("--out", required=True)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--cols", type=int, default=4)
    parser.add_argument("--tile", type=int, default=192)
    parser.add_argument(
        "--quantize", action="store_true", help="256-colour palette PNG (a third of the size)"
    )
    args = parser.parse_args(argv)
    if bool(args.data) == bool(args.reader):
        parser.error("give exactly one of --data or --reader")
    items = (
        _synthetic_items(args.data, args.n)
        if args.data
        else _reader_items(args.reader, args.root, args.split, args.n)
    )
    sheet = contact_sheet(items, cols=args.cols, tile=args.tile)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    if args.quantize:
        sheet = sheet.quantize(colors=256, dither=Image.Dither.NONE)
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out} ({sheet.width}x{sheet.height})")


if __name__ == "__main__":
    main()
