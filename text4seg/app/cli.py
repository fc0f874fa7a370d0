"""The ``text4seg`` command line. Each subcommand lives in its own module and is imported only when
it runs, so ``text4seg --help`` stays fast and a missing optional dependency only affects its command.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module with add_arguments(parser) and run(args) -> int, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "codec": (
        "text4seg.app.commands.codec",
        "encode masks as descriptors, parse model answers, run the codec demo",
    ),
    "chat": (
        "text4seg.app.commands.chat",
        "multi-turn REPL: /image PATH, ask queries, masks saved as it goes",
    ),
    "eval": (
        "text4seg.app.commands.eval",
        "evaluate on a dataset: coarse/refined metrics, CSV, JSON report, plots; resumable and sharded",
    ),
    "segment": (
        "text4seg.app.commands.segment",
        "segment images: masks, overlays and a JSON per image (default model unless checkpoints given)",
    ),
    "serve": (
        "text4seg.app.commands.serve",
        "web demo: upload an image, ask, see the overlay and the answer (Gradio, localhost by default)",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="text4seg",
        description="Segmentation as text: an MLLM answers in R-RLE descriptors, an ST-SAM refiner makes them pixel-accurate.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        module.add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module = importlib.import_module(SUBCOMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"text4seg {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
