"""``text4seg serve``: the web demo (upload an image, ask, see the overlay and the model's answer).

Model options are the same as ``text4seg segment``'s (``--model``, ``--refiner``, ``--no-refine``, …).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from text4seg.app.commands.segment import add_model_arguments, pipeline_from_args
from text4seg.app.web import build_app, launch
from text4seg.app.web.config import ServeConfig

_DEFAULTS = ServeConfig()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    group = parser.add_argument_group("server")
    group.add_argument(
        "--host",
        default=_DEFAULTS.host,
        help="interface to bind (default: %(default)s, this machine only; 0.0.0.0 exposes the demo)",
    )
    group.add_argument("--port", type=int, default=_DEFAULTS.port, help="TCP port (default: %(default)s)")
    group.add_argument(
        "--max-upload-mb",
        type=float,
        default=_DEFAULTS.max_upload_mb,
        help="largest accepted upload in MB (default: %(default)s)",
    )
    group.add_argument(
        "--max-pixels",
        type=int,
        default=_DEFAULTS.max_pixels,
        help="largest accepted image in pixels; bigger ones are refused as decompression bombs (default: %(default)s)",
    )
    group.add_argument(
        "--concurrency",
        type=int,
        default=_DEFAULTS.concurrency,
        help="requests handled at once (default: %(default)s)",
    )
    group.add_argument(
        "--max-queue",
        type=int,
        default=_DEFAULTS.max_queue,
        help="requests allowed to wait (default: %(default)s)",
    )
    group.add_argument("--example", action="append", default=[], type=Path, help="example image (repeatable)")
    group.add_argument(
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
        constrained=not args.unconstrained,
        task=args.task,
        examples=[str(p) for p in args.example],
        builtin_examples=args.builtin_examples,
    )


def run(args: argparse.Namespace) -> int:
    # Check the flags before the (slow) model load.
    config_from_args(args, model_grid=args.grid or _DEFAULTS.grid)
    pipeline = pipeline_from_args(args)
    config = config_from_args(args, model_grid=pipeline.config.grid)
    launch(build_app(pipeline=pipeline, config=config), config, block=True)
    return 0
