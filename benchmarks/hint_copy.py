"""Does a ``reading: hint`` model copy its hint? Answer cells vs hint cells vs target cells.

For every expression of a REFER/gRefCOCO-layout set whose hint is not empty (the pipeline's own
``query_hint``: for a content query the read words it names, ``text4seg.core.reading.matching_words``;
with ``attribute_hint``, for a colour, position or size query the read words it picks,
``text4seg.core.selection``), the MLLM is asked as the pipeline asks it (no refinement) and three grid
IoUs are taken on the model's grid, each mask gridded by the grid rule of its answers
(``inference.json``), per expression kind (``text4seg.core.expressions``; content first):

- ``answer_hint``: the answer's cells against the hint's: how much the language model copies;
- ``hint_target``: the hint's cells against the target's: how good the hint was;
- ``answer_target``: the answer's cells against the target's.

Run: ``python benchmarks/hint_copy.py --root DIR [--model M] [--limit N] [--kinds content,colour]``.
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from tqdm.auto import tqdm

from data_builders.readers import build_reader
from text4seg.app.pipeline import Text4SegPipeline
from text4seg.core.codec import BACKGROUND
from text4seg.core.expressions import EXPRESSION_KINDS, expression_kinds
from text4seg.core.masks import grid_from_mask

_KINDS = ("content", "colour", "position", "size", "multi-target")


def _kind(text: str) -> str | None:
    """The kind an expression is counted under: content before any attribute, else the first found."""
    kinds = expression_kinds(text)
    return next((k for k in _KINDS if k in kinds), None)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = int((a | b).sum())
    return 1.0 if union == 0 else int((a & b).sum()) / union


def main(argv: list[str] | None = None) -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True, help="refer_export output folder")
    parser.add_argument("--dataset", default="grefcoco", choices=("grefcoco", "refcoco"))
    parser.add_argument("--split", default="val")
    parser.add_argument("--model", help="MLLM folder (default: the embedded default model)")
    parser.add_argument("--limit", type=int, help="only the first N expressions of the kinds asked")
    parser.add_argument("--kinds", default=",".join(_KINDS), help=f"comma-separated, from {_KINDS}")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if unknown := set(kinds) - set(EXPRESSION_KINDS):
        parser.error(f"--kinds {sorted(unknown)} not in {_KINDS}")
    torch.set_num_threads(args.threads)

    pipe = Text4SegPipeline.from_pretrained(model=args.model, refiner="none")
    if pipe.config.reading != "hint":
        parser.error(f"the model's inference.json says reading: {pipe.config.reading}, not hint")
    grid, rule, threshold = pipe.config.grid, pipe.config.grid_rule, pipe.config.grid_threshold
    records = [
        r for r in build_reader(args.dataset, root=args.root).records(args.split) if _kind(r.text) in kinds
    ]
    records = records[: args.limit] if args.limit else records
    rows = []
    for record in tqdm(records, desc="queries"):
        hint = pipe.query_hint(record.image, record.text, task="referring")
        if hint is None or not hint.any():
            continue
        answer = np.array(pipe(record.image, record.text, task="referring", refine=False).grid) != BACKGROUND
        target = np.asarray(record.mask, bool)
        cells = {name: grid_from_mask(mask, grid_size=grid, rule=rule, threshold=threshold)
                 if mask.any() else np.zeros(grid, bool) for name, mask in (("hint", hint > 0), ("target", target))}  # fmt: skip
        rows.append({"kind": _kind(record.text), "answer_hint": _iou(answer, cells["hint"]),
                     "hint_target": _iou(cells["hint"], cells["target"]),
                     "answer_target": _iou(answer, cells["target"]), "present": bool(target.any())})  # fmt: skip
    figures = {
        "queries": len(records),
        "with_hint": len(rows),
        "target_present": sum(r["present"] for r in rows),
    }
    for kind in [None, *kinds]:
        chosen = [r for r in rows if kind is None or r["kind"] == kind]
        prefix = "" if kind is None else f"{kind}."
        figures[f"{prefix}n"] = len(chosen)
        for key in ("answer_hint", "hint_target", "answer_target"):
            figures[prefix + key] = round(float(np.mean([r[key] for r in chosen])), 4) if chosen else None
        print(f"{kind or 'all':13s} n={len(chosen):4d}  " + "  ".join(
            f"{key} {figures[prefix + key]}" for key in ("answer_hint", "hint_target", "answer_target")))  # fmt: skip
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
