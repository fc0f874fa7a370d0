"""Does a ``reading: hint`` model copy its hint? Answer cells vs hint cells vs target cells.

For every content expression of a REFER/gRefCOCO-layout set whose hint is not empty (the PP-OCR
reader read a word the expression names, ``text4seg.core.reading.matching_words``), the MLLM is asked
as the pipeline asks it (no refinement) and three grid IoUs are taken on the model's grid, each mask
gridded by the grid rule of its answers (``inference.json``):

- ``answer_hint``: the answer's cells against the hint's: how much the language model copies;
- ``hint_target``: the hint's cells against the target's: how good the hint was;
- ``answer_target``: the answer's cells against the target's.

Run: ``python benchmarks/hint_copy.py --root DIR [--model M] [--limit N]``. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from tqdm.auto import tqdm

from data_builders.readers import build_reader
from text4seg.app.pipeline import Text4SegPipeline
from text4seg.backbone.reader import WordReader
from text4seg.core.codec import BACKGROUND
from text4seg.core.expressions import expression_kinds, named_words
from text4seg.core.masks import grid_from_mask
from text4seg.core.reading import SeenWord, hint_mask, matching_words


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
    parser.add_argument("--limit", type=int, help="only the first N content expressions")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    pipe = Text4SegPipeline.from_pretrained(model=args.model, refiner="none")
    if pipe.config.reading != "hint":
        parser.error(f"the model's inference.json says reading: {pipe.config.reading}, not hint")
    grid, rule, threshold = pipe.config.grid, pipe.config.grid_rule, pipe.config.grid_threshold
    reader = WordReader()
    records = [r for r in build_reader(args.dataset, root=args.root).records(args.split)
               if "content" in expression_kinds(r.text)]  # fmt: skip
    records = records[: args.limit] if args.limit else records
    rows = []
    for record in tqdm(records, desc="content queries"):
        words = [SeenWord(text=w.text, box=w.box, polygon=w.polygon) for w in reader.read(record.image)]
        hint = hint_mask(matching_words(words, named_words(record.text)), record.image.shape[:2]) > 0
        if not hint.any():
            continue
        answer = np.array(pipe(record.image, record.text, task="referring", refine=False).grid) != BACKGROUND
        target = np.asarray(record.mask, bool)
        cells = {name: grid_from_mask(mask, grid_size=grid, rule=rule, threshold=threshold)
                 if mask.any() else np.zeros(grid, bool) for name, mask in (("hint", hint), ("target", target))}  # fmt: skip
        rows.append({"answer_hint": _iou(answer, cells["hint"]), "hint_target": _iou(cells["hint"], cells["target"]),
                     "answer_target": _iou(answer, cells["target"]), "present": bool(target.any())})  # fmt: skip
    figures = {"content_queries": len(records), "with_hint": len(rows)}
    for key in ("answer_hint", "hint_target", "answer_target"):
        figures[key] = round(float(np.mean([r[key] for r in rows])), 4) if rows else None
        print(f"{key:14s} mean grid IoU {figures[key]}")
    figures["target_present"] = sum(r["present"] for r in rows)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
