"""``text4seg chat``: a REPL over one image at a time; every answer's masks are saved as it goes.

Lines read from stdin::

    /image PATH     switch to another image (a bad file is reported; the session goes on)
    /describe       ask the model how the text in the current image looks
    /help           list the commands
    /quit           leave (end of input also leaves)
    anything else   a query on the current image ("segment the text", "the red word", "person|car")

Each query's outputs go to ``--out`` as ``turn-NNN.{mask,coarse,overlay}.png`` and ``turn-NNN.json``,
and ``session.jsonl`` gets one line per turn. Every query is its own conversation for the model (it
was trained on single-turn chats); the session keeps the image between turns.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from text4seg.app.commands.segment import add_model_arguments, call_kwargs, pipeline_from_args, write_outputs
from text4seg.app.pipeline import describe_image
from text4seg.core.io import ImageLoadError, load_image

HELP = __doc__.split("::")[1].split("\n\n")[1]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", type=Path, help="image to start with (or /image PATH later)")
    parser.add_argument("--out", type=Path, default=Path("outputs/chat"), help="where masks are saved")
    add_model_arguments(parser)


class ChatSession:
    """The REPL's state: the pipeline, the current image and the turn counter."""

    def __init__(self, *, pipeline, out: Path, options: dict, write=print) -> None:
        self.pipeline, self.out, self.options, self.write = pipeline, out, options, write
        self.image = None
        self.image_path: Path | None = None
        self.turn = 0

    def open_image(self, path: Path) -> None:
        try:
            self.image = load_image(path)
        except ImageLoadError as err:
            self.write(f"error: {err}")
            return
        self.image_path = path
        h, w = self.image.shape[:2]
        self.write(f"image: {path} ({w}x{h})")

    def ask(self, query: str) -> None:
        if self.image is None:
            self.write("no image yet: use /image PATH")
            return
        self.turn += 1
        stem = f"turn-{self.turn:03d}"
        result = self.pipeline(self.image, query, **self.options)
        record = write_outputs(result, self.image, self.out, stem, source=str(self.image_path))
        with open(self.out / "session.jsonl", "a", encoding="utf-8") as log:
            log.write(json.dumps({"turn": self.turn, **record}) + "\n")
        self.write(result.answer)
        areas = ", ".join(f"{k}: {int(v.sum())} px" for k, v in result.refined_masks.items()) or "nothing"
        repairs = f", {len(result.repairs)} repairs" if result.repairs else ""
        self.write(
            f"[{result.task}: {areas}{repairs}; {result.timings['total']:.2f} s] saved {self.out / stem}.*"
        )

    def describe(self) -> None:
        if self.image is None:
            self.write("no image yet: use /image PATH")
            return
        self.write(describe_image(self.pipeline.mllm, self.image))

    def handle(self, line: str) -> bool:
        """Process one input line; False when the session should end."""
        line = line.strip()
        if not line:
            return True
        command, _, rest = line.partition(" ")
        if command == "/quit":
            return False
        if command == "/help":
            self.write(HELP)
        elif command == "/image":
            if rest.strip():
                self.open_image(Path(rest.strip()).expanduser())
            else:
                self.write("usage: /image PATH")
        elif command == "/describe":
            self.describe()
        elif command.startswith("/"):
            self.write(f"unknown command {command!r}; /help lists them")
        else:
            self.ask(line)
        return True


def run(args: argparse.Namespace) -> int:
    pipeline = pipeline_from_args(args)
    args.out.mkdir(parents=True, exist_ok=True)
    session = ChatSession(pipeline=pipeline, out=args.out, options=call_kwargs(args))
    interactive = sys.stdin.isatty()
    print("text4seg chat: /image PATH, then ask; /help for commands, /quit to leave", flush=True)
    if args.image is not None:
        session.open_image(args.image)
    while True:
        if interactive:
            print("> ", end="", flush=True)
        line = sys.stdin.readline()
        if not line or not session.handle(line):
            break
        sys.stdout.flush()
    print(f"bye ({session.turn} turns saved in {args.out})")
    return 0
