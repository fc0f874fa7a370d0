"""``text4seg segment IMG... --query Q --out DIR``: masks, overlays and a JSON per image.

Per image ``<stem>`` it writes ``<stem>.mask.png`` (all classes, refined), ``<stem>.coarse.png``,
``<stem>.overlay.png``, one ``<stem>.mask.<label>.png`` per class when the query has several, and
``<stem>.json`` (answer, labels, boxes, repairs, timings). A file that cannot be read is reported
by name and the batch goes on; the exit code is 1 when any image failed. The model options here are
shared by ``chat`` and ``eval``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

from stsam_refiner.points.config import PointsConfig
from text4seg.app.commands import grid_size
from text4seg.app.refiners import POINT_MODES
from text4seg.core.io import ImageLoadError, load_image


def gate_pixels(value: str) -> int | str:
    """``--text-gate``: pixels (≥ 0) or "off"."""
    if value == "off":
        return value
    try:
        pixels = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected pixels (an integer >= 0) or 'off', got {value!r}"
        ) from None
    if pixels < 0:
        raise argparse.ArgumentTypeError(f"expected pixels >= 0 or 'off', got {pixels}")
    return pixels


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Options choosing the checkpoints and how they are run (default: the embedded model)."""
    group = parser.add_argument_group("model (default: the embedded default model)")
    group.add_argument("--model", help="MLLM folder (transformers save_pretrained layout)")
    group.add_argument("--refiner", help="refiner checkpoint (.safetensors), or 'none'")
    group.add_argument("--sam-checkpoint", help="official SAM state_dict for a refiner trained on frozen SAM")
    group.add_argument("--grid", type=grid_size, default=None, help="descriptor grid, e.g. 16 or 16x24")
    group.add_argument("--no-refine", action="store_true", help="coarse masks only (no refiner)")
    group.add_argument(
        "--no-zoom", action="store_true", help="refine each class shrunk whole, not in zoomed windows"
    )
    group.add_argument(
        "--text-gate", type=gate_pixels, default=None,
        help="keep text masks within N pixels of the detector's text regions, or 'off' (default: the model's)",
    )  # fmt: skip
    group.add_argument("--unconstrained", action="store_true", help="decode without the R-RLE grammar")
    group.add_argument("--task", choices=("scene_text", "referring", "semantic"), help="force the task")
    group.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    group.add_argument(
        "--refine-mode", default=None, help="key of text4seg.app.refiners.REFINERS (default: the model's)"
    )
    points = parser.add_argument_group("point refinement (refine modes tspp, grid, random, text4seg)")
    points.add_argument("--points-config", help="PointsConfig YAML (configs/points/tspp.yaml)")
    points.add_argument("--points-sam", help="SAM checkpoint for point prompts (train_sam output)")
    points.add_argument("--points-prompter", help="TSPP prompter checkpoint (needed by mode tspp)")


def pipeline_from_args(args: argparse.Namespace):
    """Load the pipeline the model options ask for (``--no-refine`` skips loading the refiner).

    Settings come from the MLLM folder's ``inference.json``; ``--grid``, ``--refine-mode``, ``--no-zoom``
    and ``--text-gate`` override them, and the pipeline says so on stderr.
    """
    from text4seg.app.pipeline import Text4SegPipeline  # lazy: pulls torch and transformers

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    points, mode = None, args.refine_mode
    if args.points_config:
        points, config_mode = _point_refiner(args)
        mode = mode or config_mode
    elif mode in POINT_MODES:
        raise ValueError(f"--refine-mode {mode} needs --points-config and --points-sam")
    return Text4SegPipeline.from_pretrained(
        model=args.model,
        refiner="none" if args.no_refine else args.refiner,
        sam_checkpoint=args.sam_checkpoint,
        overrides={
            "grid": args.grid,
            "refine_mode": mode,
            "refiner_zoom": False if args.no_zoom else None,
            "text_gate": args.text_gate,
        },
        points=points,
    )


def _point_refiner(args: argparse.Namespace):
    """The point refiner the options describe, and its config's mode."""
    from stsam_refiner.points.build import build_point_refiner  # lazy: pulls segment-anything and torch

    if not args.points_sam:
        raise ValueError("--points-config needs --points-sam (a SAM checkpoint for point prompts)")
    cfg = PointsConfig.from_yaml(args.points_config)
    refiner = build_point_refiner(
        cfg, sam_checkpoint=args.points_sam, prompter_checkpoint=args.points_prompter
    )
    return refiner, cfg.mode


def call_kwargs(args: argparse.Namespace) -> dict:
    """Keyword arguments for ``Text4SegPipeline.__call__`` from the model options."""
    return {
        "refine": not args.no_refine,
        "constrained": not args.unconstrained,
        "task": args.task,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", type=Path, help="image files")
    parser.add_argument("--query", default="segment the text in this image", help="what to segment")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    add_model_arguments(parser)


def label_slug(label: str) -> str:
    """A file-name-safe form of a label ("the red word" → "the-red-word")."""
    return re.sub(r"[^A-Za-z0-9]+", "-", label).strip("-")[:60] or "label"


def save_png(array: np.ndarray, path: Path) -> None:
    """Write a bool mask (as 0/255) or an RGB uint8 image."""
    from PIL import Image

    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    Image.fromarray(array).save(path)


def write_outputs(result, image: np.ndarray, out: Path, stem: str, *, source: str) -> dict:
    """Save one result's PNGs and JSON under ``out``; returns the JSON written."""
    out.mkdir(parents=True, exist_ok=True)
    save_png(result.mask(refined=True), out / f"{stem}.mask.png")
    save_png(result.mask(refined=False), out / f"{stem}.coarse.png")
    save_png(result.overlay(image), out / f"{stem}.overlay.png")
    if len(result.refined_masks) > 1:
        for label, mask in result.refined_masks.items():
            save_png(mask, out / f"{stem}.mask.{label_slug(label)}.png")
    record = {"image": source, **result.to_json()}
    (out / f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


def unique_stems(paths: list[Path]) -> list[str]:
    """File stems, with "-2", "-3"… added when two inputs share one (a/x.jpg, b/x.jpg)."""
    seen: dict[str, int] = {}
    stems = []
    for path in paths:
        count = seen.get(path.stem, 0) + 1
        seen[path.stem] = count
        stems.append(path.stem if count == 1 else f"{path.stem}-{count}")
    return stems


def run(args: argparse.Namespace) -> int:
    pipeline = pipeline_from_args(args)
    failures: list[tuple[str, str]] = []
    seconds: list[float] = []
    for path, stem in zip(args.images, unique_stems(args.images), strict=True):
        start = time.perf_counter()
        try:
            image = load_image(path)
            result = pipeline(image, args.query, **call_kwargs(args))
        except ImageLoadError as err:
            failures.append((str(path), str(err)))
            print(f"FAILED {err}", file=sys.stderr)
            continue
        write_outputs(result, image, args.out, stem, source=str(path))
        seconds.append(time.perf_counter() - start)
        labels = ", ".join(f"{k}: {int(v.sum())} px" for k, v in result.refined_masks.items())
        print(f"{path} -> {args.out / (stem + '.overlay.png')} ({labels}; {seconds[-1]:.2f} s)")
    summary = {
        "images": len(args.images),
        "segmented": len(seconds),
        "failed": [{"image": name, "error": error} for name, error in failures],
        "seconds_per_image": float(np.mean(seconds)) if seconds else None,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"segmented {len(seconds)}/{len(args.images)} images, {len(failures)} failed")
    for _, error in failures:
        print(f"  failed: {error}")
    print(json.dumps(summary))
    return 1 if failures else 0
