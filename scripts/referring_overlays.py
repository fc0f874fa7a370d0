"""Referring queries on real photos, side by side: the README's docs/referring_photos.jpg.

    .venv/bin/python scripts/referring_overlays.py [--model M --refiner R] [--out docs/referring_photos.jpg]

Three ICDAR2015 dev photos (tests/fixtures/real_photos/icdar2015_toy), each asked one kind of query
(content, colour, position) by the pipeline as it is configured (the default model unless given);
each panel is the pipeline's overlay (query's mask tinted), its grid cells outlined in yellow, and the
query written on top. Prints each answer's grid cell count and the words read, if any.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from text4seg.app.pipeline import Text4SegPipeline

PHOTOS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "real_photos" / "icdar2015_toy"
QUERIES = (
    ("img_1.jpg", "the word 'Carpark'", "content"),
    ("img_4.jpg", "the red text", "colour"),
    ("img_10.jpg", "the text at the top", "position"),
)
PANEL_WIDTH = 640


def panel(pipe: Text4SegPipeline, photo: Path, query: str) -> tuple[Image.Image, dict]:
    image = np.asarray(Image.open(photo).convert("RGB"))
    result = pipe(image, query)
    view = Image.fromarray(result.overlay(image))
    draw = ImageDraw.Draw(view)
    for cells in result.coarse_masks.values():
        gh, gw = len(result.grid), len(result.grid[0])
        height, width = image.shape[:2]
        for r, c in zip(*np.nonzero(_grid_of(cells, gh, gw)), strict=True):
            box = (c * width / gw, r * height / gh, (c + 1) * width / gw - 1, (r + 1) * height / gh - 1)
            draw.rectangle(box, outline=(255, 220, 0), width=3)
    scale = PANEL_WIDTH / view.width
    view = view.resize((PANEL_WIDTH, round(view.height * scale)))
    draw = ImageDraw.Draw(view)
    draw.rectangle((0, 0, PANEL_WIDTH, 22), fill=(0, 0, 0))
    draw.text((6, 5), f'"{query}"', fill=(255, 255, 255))
    info = {"photo": photo.name, "query": query, "answer": result.answer, "timings": result.timings}
    return view, info


def _grid_of(mask: np.ndarray, gh: int, gw: int) -> np.ndarray:
    """Which cells of a gh×gw grid the (upsampled) coarse mask covers."""
    height, width = mask.shape
    rows = (np.arange(gh) + 0.5) * height / gh
    cols = (np.arange(gw) + 0.5) * width / gw
    return mask[rows.astype(int)][:, cols.astype(int)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="MLLM folder (default: the embedded default model)")
    parser.add_argument("--refiner", help="refiner checkpoint (default: the embedded default model's)")
    parser.add_argument("--out", type=Path, default=Path("docs/referring_photos.jpg"))
    args = parser.parse_args(argv)
    pipe = Text4SegPipeline.from_pretrained(model=args.model, refiner=args.refiner)
    panels, infos = [], []
    for name, query, _kind in QUERIES:
        view, info = panel(pipe, PHOTOS / name, query)
        panels.append(view)
        infos.append(info)
        print(json.dumps(info))
    sheet = Image.new("RGB", (PANEL_WIDTH * len(panels), max(p.height for p in panels)))
    for i, view in enumerate(panels):
        sheet.paste(view, (i * PANEL_WIDTH, 0))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, quality=88)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
