"""What reading adds to content queries ("the word 'OPEN'"): the same model asked with and without the
words the PP-OCR reader finds, on a REFER/gRefCOCO-layout set.

For every content expression of the set (``text4seg.core.expressions``: a quoted word, "says …"):

- ``with_reading``: the pipeline as configured by the checkpoint (``reading: content`` puts the words
  read, with their grid cells, in the prompt; ``text4seg.core.reading``);
- ``without_reading``: the same pipeline with ``reading: none`` (the prompt the templates write);
- ``read_correctly``: whether the reader (``text4seg.backbone.reader``) read the queried word exactly
  (case-insensitive) anywhere in the image; for a no-target expression, whether it did *not* read it;
  ``read_and_present``: the word is in the image and was read (the content-query target of issue 16).

Scores per sample: IoU of the refined mask with the target (an empty target scores 1 when the mask is
empty, else 0, as gRefCOCO does); then mean IoU (gIoU), cIoU (Σ I / Σ U) and Acc@0.5, overall and on
the samples read correctly.

Run: ``python benchmarks/referring_reading.py --root DIR [--model M --refiner R] [--limit N]``, DIR from
``python -m data_builders.synthetic.refer_export``. Last line: one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import time

import numpy as np
from tqdm.auto import tqdm

from data_builders.readers import build_reader
from text4seg.app.pipeline import Text4SegPipeline
from text4seg.backbone.reader import WordReader
from text4seg.core.expressions import expression_kinds

_QUOTED = re.compile(r"'([^']+)'")


def _iou(pred: np.ndarray, gt: np.ndarray) -> tuple[float, int, int]:
    inter, union = int((pred & gt).sum()), int((pred | gt).sum())
    return (1.0 if union == 0 else inter / union), inter, union


def _figures(rows: list[dict], key: str) -> dict:
    if not rows:
        return {"n": 0}
    ious = [r[key][0] for r in rows]
    inter, union = sum(r[key][1] for r in rows), sum(r[key][2] for r in rows)
    return {"n": len(rows), "gIoU": round(float(np.mean(ious)), 4), "cIoU": round(inter / max(1, union), 4),
            "Acc@0.5": round(float(np.mean([i >= 0.5 for i in ious])), 4)}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True, help="refer_export output folder")
    parser.add_argument("--dataset", default="grefcoco", choices=("grefcoco", "refcoco"))
    parser.add_argument("--split", default="val")
    parser.add_argument("--model", help="MLLM folder (default: the embedded default model)")
    parser.add_argument("--refiner", help="refiner checkpoint (default: the embedded default model's)")
    parser.add_argument("--limit", type=int, help="only the first N content expressions")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    pipe = Text4SegPipeline.from_pretrained(model=args.model, refiner=args.refiner)
    trained = pipe.config
    if trained.reading == "none":
        print(
            f"note: the checkpoint's inference.json says reading: {trained.reading}; both rows read nothing"
        )
    reader = WordReader()
    records = [r for r in build_reader(args.dataset, root=args.root).records(args.split)
               if "content" in expression_kinds(r.text) and _QUOTED.search(r.text)]  # fmt: skip
    records = records[: args.limit] if args.limit else records
    rows, started = [], time.perf_counter()
    for record in tqdm(records, desc="content queries"):
        word = _QUOTED.search(record.text).group(1).lower()
        read = {w.text.lower() for w in reader.read(record.image)}
        gt = np.asarray(record.mask, bool)
        row = {"read_correctly": (word in read) == bool(gt.any()), "target": bool(gt.any())}
        for name, reading in (("with_reading", trained.reading), ("without_reading", "none")):
            pipe.config = dataclasses.replace(trained, reading=reading)
            result = pipe(record.image, record.text, task="referring")
            row[name] = _iou(result.mask(), gt)
        pipe.config = trained
        rows.append(row)
    correct = [r for r in rows if r["read_correctly"]]
    found = [r for r in correct if r["target"]]  # the word is there and the reader read it
    figures = {
        "n": len(rows),
        "read_correctly": len(correct),
        "with_reading": _figures(rows, "with_reading"),
        "without_reading": _figures(rows, "without_reading"),
        "with_reading_read_correctly": _figures(correct, "with_reading"),
        "without_reading_read_correctly": _figures(correct, "without_reading"),
        "with_reading_read_and_present": _figures(found, "with_reading"),
        "without_reading_read_and_present": _figures(found, "without_reading"),
        "seconds": round(time.perf_counter() - started, 1),
    }
    for name in (
        "with_reading",
        "without_reading",
        "with_reading_read_correctly",
        "without_reading_read_correctly",
        "with_reading_read_and_present",
        "without_reading_read_and_present",
    ):
        f = figures[name]
        if f["n"]:
            print(
                f"{name:32s} n={f['n']:4d}  gIoU {f['gIoU']:.3f}  cIoU {f['cIoU']:.3f}  Acc@0.5 {f['Acc@0.5']:.3f}"
            )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
