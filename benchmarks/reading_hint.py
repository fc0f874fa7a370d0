"""Where the reading hint lands: how often the words the reader finds and a query picks are its target.

A ``reading: hint`` model answers content, colour, position and size queries from a hint: the outlines
of the read words the query names or picks (the pipeline's own ``query_hint``;
``text4seg.core.reading.matching_words``, ``text4seg.core.selection``). The model cannot answer well
from a hint on the wrong words, so this is the ceiling the reader sets, and it needs no MLLM run. For
every expression of a REFER/gRefCOCO-layout set that gets a hint (an expression that gets none is left
to the model and not counted), per reader setting:

- a present target is **hit** when the hint covers at least half of its pixels and at most half of the
  hint lies off the target (grown by 4 px: a hint is a word's box, the target its strokes);
- an absent target (no-target expression) is hit when the hint is empty.

Reader settings are ``--min-sides``: the reader's ``ReaderConfig.min_side`` (``none``: every image
scaled to the detector's 960 px, as before session 16), with ``+full`` also its ``full_view`` (the image
read at 960 px too, the two views' words merged), with ``+native`` its ``native_view`` (read at its own
size too), with ``+upright`` its ``orientation`` classifier (crops found upside down turned before
reading; off otherwise), and with ``/B`` the detector's box threshold B
(``ReaderConfig.box_threshold``). Counts are per expression kind (content first, then
colour, position, size; ``no-target`` for an empty target).

Run: ``python benchmarks/reading_hint.py --root DIR [--min-sides none,512,512+full,512+full+native,512+full+native+upright,512+full/0.45] [--limit N]``, DIR from
``python -m data_builders.synthetic.refer_export``. Last line: one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np
from tqdm.auto import tqdm

from data_builders.readers import build_reader
from text4seg.app.evaluation.scoring import hint_hits
from text4seg.app.pipeline import Text4SegPipeline
from text4seg.core.expressions import expression_kinds

_KINDS = ("content", "colour", "position", "size")


def kind_of(text: str, target: np.ndarray) -> str:
    """The kind an expression is counted under: ``no-target``, else content before any attribute."""
    if not target.any():
        return "no-target"
    kinds = expression_kinds(text)
    return next((k for k in _KINDS if k in kinds), "other")


def reader_setting(text: str) -> dict:
    """``--min-sides`` entry → ``ReaderConfig`` fields: "none" or N, then "+full", "+native" and / or
    "+upright", then optionally "/B", the detector's ``box_threshold`` B ("512+full/0.45")."""
    setting, _, box = text.lower().partition("/")
    side, *extras = setting.split("+")
    if not set(extras) <= {"full", "native", "upright"} or len(set(extras)) < len(extras):
        raise ValueError(
            f"reader setting {text!r}: expected none or N, then +full, +native and/or +upright, then optionally /B"
        )
    fields = {
        "min_side": None if side == "none" else int(side),
        "full_view": "full" in extras,
        "native_view": "native" in extras,
        "orientation": "ppocrv5" if "upright" in extras else None,
    }
    return fields | ({"box_threshold": float(box)} if box else {})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True, help="refer_export output folder")
    parser.add_argument("--dataset", default="grefcoco", choices=("grefcoco", "refcoco"))
    parser.add_argument("--split", default="val")
    parser.add_argument("--model", help="MLLM folder (default: the embedded default model)")
    parser.add_argument(
        "--min-sides",
        default="none,512",
        help="reader settings: none or N, +full, +native, /B; comma-separated",
    )
    parser.add_argument("--limit", type=int, help="only the first N expressions")
    args = parser.parse_args(argv)

    pipe = Text4SegPipeline.from_pretrained(model=args.model, refiner="none")
    records = list(build_reader(args.dataset, root=args.root).records(args.split))
    records = records[: args.limit] if args.limit else records
    figures: dict = {"expressions": len(records)}
    for text in args.min_sides.split(","):
        pipe.reader_config = dataclasses.replace(pipe.reader_config, **reader_setting(text))
        counts: dict[str, list[int]] = {}
        started = time.perf_counter()
        for record in tqdm(records, desc=f"min_side {text}"):
            hint = pipe.query_hint(record.image, record.text, task="referring")
            if hint is None:
                continue
            target = np.asarray(record.mask, bool)
            tally = counts.setdefault(kind_of(record.text, target), [0, 0])
            tally[0] += hint_hits(hint, target)
            tally[1] += 1
        hits, total = sum(c[0] for c in counts.values()), sum(c[1] for c in counts.values())
        row = {"hinted": total, "hit_rate": round(hits / max(1, total), 4),
               "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
        row |= {f"{k}.hit_rate": round(h / n, 4) for k, (h, n) in sorted(counts.items())}
        row |= {f"{k}.n": n for k, (_, n) in sorted(counts.items())}
        figures[f"min_side_{text}"] = row
        per_kind = "  ".join(f"{k} {h}/{n}" for k, (h, n) in sorted(counts.items()))
        print(f"min_side {text:>5s}: hint on target {hits}/{total} = {row['hit_rate']:.3f}   {per_kind}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
