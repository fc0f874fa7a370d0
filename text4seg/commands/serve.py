"""``text4seg serve``: the web demo (upload an image, ask, see the overlay and the model's answer)."""

from __future__ import annotations

import argparse
from pathlib import Path

from text4seg.web.config import ServeConfig

_DEFAULTS = ServeConfig()


def _grid(text: str) -> tuple[int, int]:
    rows, _, cols = text.lower().partition("x")
    try:
        return int(rows), int(cols or rows)
    except ValueError:
        raise argparse.ArgumentTypeError(f"grid must look like 16 or 16x24, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        default=_DEFAULTS.host,
        help="interface to bind (default: %(default)s, this machine only; 0.0.0.0 exposes the demo)",
    )
    parser.add_argument("--port", type=int, default=_DEFAULTS.port, help="TCP port (default: %(default)s)")
    parser.add_argument("--model", default=None, help="MLLM folder (default: the embedded default model)")
    parser.add_argument(
        "--refiner",
        default=None,
        help="refiner checkpoint (.safetensors), or 'none' for coarse masks only (default: the embedded one)",
    )
    parser.add_argument(
        "--sam-checkpoint", default=None, help="official SAM weights the refiner was built on"
    )
    parser.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    parser.add_argument("--grid", type=_grid, default=None, help="descriptor grid (default: the model's)")
    parser.add_argument(
        "--max-upload-mb",
        type=float,
        default=_DEFAULTS.max_upload_mb,
        help="largest accepted upload in MB (default: %(default)s)",
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=_DEFAULTS.max_pixels,
        help="largest accepted image in pixels; bigger ones are refused as decompression bombs (default: %(default)s)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=_DEFAULTS.concurrency,
        help="requests handled at once (default: %(default)s)",
    )
    parser.add_argument(
        "--max-queue",
        type=int,
        default=_DEFAULTS.max_queue,
        help="requests allowed to wait (default: %(default)s)",
    )
    parser.add_argument(
        "--example", action="append", default=[], type=Path, help="example image (repeatable)"
    )
    parser.add_argument(
        "--no-builtin-examples",
        dest="builtin_examples",
        action="store_false",
        help="do not offer the built-in synthetic scene and handwriting photo as examples",
    )


def config_from_args(args: argparse.Namespace, *, model_grid: tuple[int, int]) -> ServeConfig:
    """The ServeConfig the flags describe; ``model_grid`` is used when ``--grid`` is not given."""
    return ServeConfig(
        host=args.host,
        port=args.port,
        max_upload_mb=args.max_upload_mb,
        max_pixels=args.max_pixels,
        concurrency=args.concurrency,
        max_queue=args.max_queue,
        grid=args.grid or model_grid,
        examples=[str(p) for p in args.example],
        builtin_examples=args.builtin_examples,
    )


def run(args: argparse.Namespace) -> int:
    from text4seg.pipeline import Text4SegPipeline
    from text4seg.web import build_app, launch

    # Check the flags before the (slow) model load.
    config_from_args(args, model_grid=args.grid or _DEFAULTS.grid)
    pipeline = Text4SegPipeline.from_pretrained(
        model=args.model, refiner=args.refiner, sam_checkpoint=args.sam_checkpoint, device=args.device
    )
    config = config_from_args(args, model_grid=pipeline.config.grid)
    launch(build_app(pipeline=pipeline, config=config), config, block=True)
    return 0
