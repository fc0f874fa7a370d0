"""Clipping a hinted query's refined mask to its hint (``inference.json`` ``hint_clip``), side by side.

A ``reading: hint`` model answers content, colour, position and size queries from a hint: the outlines
of the read words the query names or picks. Its answer often sits a cell row or more off those words,
and the refiner follows the answer onto their neighbours. ``hint_clip: P`` keeps the refined mask within
P pixels of the hint, for queries whose hint shows a word (an empty hint, or none, is never clipped).

For every expression of a REFER/gRefCOCO-layout set, the pipeline runs once with clipping off; each
``--pixels`` value is then applied to that same refined mask, exactly as the pipeline does
(``text4seg.core.masks.grow_mask``). Figures per setting, overall and per expression kind: cIoU
(Σ I / Σ U), gIoU (mean IoU; an empty target scores 1 when the mask is empty) and Acc@0.5 (the box
around the mask against the target's at IoU > 0.5), by the meters ``text4seg eval`` uses.

``--snaps S``: the same answers refined again with ``hint_snap: S`` (the refiner prompted with the
answer's cells plus the hinted words' cells up to S rows above or below them;
``Text4SegPipeline.refine_answer``), each also clipped by every ``--pixels`` value.

It times the refiner on the hinted expressions side by side: the pipeline's own refinement with
neither setting against each ``refine_answer`` under a snap setting.

Present targets are also scored in three groups by what the reader gave the query
(``text4seg.app.evaluation.scoring.hint_hits``, the rule of ``benchmarks/reading_hint.py``):
``hint-on`` (a hint that lands on the target), ``hint-off`` (a hint that shows words, not on it) and
``no-hint`` (no hint, or one that shows no word): how much the reader's misses cost against its hits.

It also reports where the answers sit: for each present target, the row shift of the answer's grid
(−3 … +3 cells; + = down) that best matches the target's grid (ties go to the smaller shift), counted
separately for hinted and unhinted expressions.

Run: ``python benchmarks/hint_clip.py --root DIR [--pixels 0,2,4,8,16] [--snaps 0,1] [--model M --refiner R] [--limit N]``,
DIR from ``python -m data_builders.synthetic.refer_export``. Last line: one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections import Counter, defaultdict

import numpy as np
from tqdm.auto import tqdm

from text4seg.app.evaluation.samples import iter_samples
from text4seg.app.evaluation.scoring import gt_grid, hint_hits, record_kinds
from text4seg.app.pipeline import Text4SegPipeline
from text4seg.core.codec import BACKGROUND
from text4seg.core.masks import grow_mask
from text4seg.core.metrics import RecMeter, ReferringMeter

SHIFTS = range(-3, 4)


class Scores:
    """cIoU / gIoU and Acc@0.5 accumulated over samples by the meters ``text4seg eval`` uses
    (``ReferringMeter``; ``RecMeter``: the boxes around the masks at IoU > 0.5)."""

    def __init__(self) -> None:
        self.referring, self.rec = ReferringMeter(), RecMeter()

    def add(self, pred: np.ndarray, gt: np.ndarray) -> None:
        self.referring.update(pred, gt)
        self.rec.update(pred, gt)

    def figures(self) -> dict[str, float | int]:
        referring = self.referring.result()
        return {
            "cIoU": round(referring["cIoU"], 4),
            "gIoU": round(referring["gIoU"], 4),
            "acc50": round(self.rec.result()["Acc@0.5"], 4),
            "n": referring["n"],
        }


def best_row_shift(answer: np.ndarray, truth: np.ndarray) -> int | None:
    """The row shift of ``answer`` (gh×gw bool; + = moved down) whose cells best overlap ``truth``
    (IoU), the smallest shift on ties; None when either grid is empty."""
    if not answer.any() or not truth.any():
        return None
    best, best_iou = 0, -1.0
    for shift in sorted(SHIFTS, key=abs):
        moved = np.zeros_like(answer)
        if shift >= 0:
            moved[shift:] = answer[: answer.shape[0] - shift]
        else:
            moved[:shift] = answer[-shift:]
        iou = np.count_nonzero(moved & truth) / np.count_nonzero(moved | truth)
        if iou > best_iou:
            best, best_iou = shift, iou
    return best


HINT_GROUPS = ("hint-on", "hint-off", "no-hint")


def hint_group(hint: np.ndarray | None, target: np.ndarray) -> str:
    """``HINT_GROUPS`` entry of a present ``target``'s expression: its hint lands on it, shows other
    words, or shows none (or the query got no hint)."""
    if hint is None or not hint.any():
        return "no-hint"
    return "hint-on" if hint_hits(hint, target) else "hint-off"


def pixel_settings(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 0:
        raise ValueError(f"--pixels and --snaps want non-negative integers, e.g. 0,4,8; got {text!r}")
    return values


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="REFER/gRefCOCO-layout folder")
    parser.add_argument("--split", default="val")
    parser.add_argument(
        "--pixels", default="0,2,4,8,16", help="hint_clip values to compare (comma-separated)"
    )
    parser.add_argument("--snaps", default="0", help="hint_snap values (cell rows) to compare, e.g. 0,1")
    parser.add_argument("--model", default=None, help="MLLM folder (default: the embedded default)")
    parser.add_argument("--refiner", default=None, help="refiner checkpoint (default: the embedded default)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N expressions")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    pixels = pixel_settings(args.pixels)
    snaps = pixel_settings(args.snaps)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    pipe = Text4SegPipeline.from_pretrained(model=args.model, refiner=args.refiner)
    plain = dataclasses.replace(pipe.config, hint_clip=None, hint_snap=0)  # each setting is applied below
    pipe.config = plain
    snapped = {s: dataclasses.replace(plain, hint_snap=s) for s in snaps if s}
    settings = ["unclipped", *(f"clip_{p}" for p in pixels)]
    for s in snapped:
        settings += [f"snap_{s}", *(f"snap_{s}+clip_{p}" for p in pixels)]
    scores: dict[str, dict[str, Scores]] = {s: defaultdict(Scores) for s in settings}
    shifts = {"hinted": Counter(), "unhinted": Counter()}
    refine_seconds = Counter()  # hinted expressions: refiner time, unsnapped and per snap setting
    n = hinted = 0
    start = time.perf_counter()
    samples = iter_samples("grefcoco", root=args.root, split=args.split, task="referring")
    for sample in tqdm(samples, desc="hint clip", unit="expr", total=args.limit):
        if args.limit is not None and n >= args.limit:
            break
        result = pipe(sample.image, sample.query, task="referring")
        gt, refined = sample.mask, result.mask(refined=True)
        shows_word = result.hint is not None and bool(result.hint.any())
        hinted += shows_word
        if shows_word:
            refine_seconds["snap_0"] += result.timings["refine"]
        kinds = ("all", *record_kinds("referring", sample.query, int(gt.sum()), sample.n_targets))
        if gt.any():
            kinds += (hint_group(result.hint, gt),)
        masks = {"unclipped": refined}
        for p in pixels:
            masks[f"clip_{p}"] = refined & grow_mask(result.hint > 0, p) if shows_word else refined
        for s, config in snapped.items():  # the same answer, its refiner prompt snapped to the hint
            pipe.config = config
            t0 = time.perf_counter()
            again = pipe.refine_answer(sample.image, result) if shows_word else {}
            refine_seconds[f"snap_{s}"] += time.perf_counter() - t0
            pipe.config = plain
            mask = np.logical_or.reduce([*again.values(), np.zeros_like(gt)]) if shows_word else refined
            masks[f"snap_{s}"] = mask
            for p in pixels:
                masks[f"snap_{s}+clip_{p}"] = mask & grow_mask(result.hint > 0, p) if shows_word else mask
        for setting, mask in masks.items():
            for kind in kinds:
                scores[setting][kind].add(mask, gt)
        answer = np.array([[cell != BACKGROUND for cell in row] for row in result.grid], dtype=bool)
        truth = gt_grid(
            gt, grid=answer.shape, rule=pipe.config.grid_rule, threshold=pipe.config.grid_threshold
        )
        shift = best_row_shift(answer, truth)
        if shift is not None:
            shifts["hinted" if shows_word else "unhinted"][shift] += 1
        n += 1

    figures = {
        "root": str(args.root),
        "expressions": n,
        "hinted": hinted,
        "seconds": round(time.perf_counter() - start, 1),
        **{s: {kind: meter.figures() for kind, meter in scores[s].items()} for s in settings},
        "answer_row_shift": {k: {str(s): c[s] for s in SHIFTS} for k, c in shifts.items()},
        "refine_seconds_per_hinted": {k: round(v / max(hinted, 1), 3) for k, v in refine_seconds.items()},
    }
    print(f"{n} expressions, {hinted} with a hint that shows a word")
    kinds = sorted(scores["unclipped"], key=lambda k: (k != "all", k))
    print(f"{'setting':>16} " + " ".join(f"{k:>22}" for k in kinds))
    for setting in settings:
        cells = []
        for kind in kinds:
            f = figures[setting][kind]
            cells.append(f"{f['cIoU']:.3f}/{f['gIoU']:.3f}/{f['acc50']:.3f}")
        print(f"{setting:>16} " + " ".join(f"{c:>22}" for c in cells))
    print("(cIoU/gIoU/Acc@0.5 per kind)")
    base = refine_seconds["snap_0"]
    for key, seconds in refine_seconds.items():
        ratio = f" ({seconds / base:.2f}x unsnapped)" if base else ""
        print(f"refiner seconds per hinted expression, {key}: {seconds / max(hinted, 1):.3f}{ratio}")
    for group, counts in shifts.items():
        print(
            f"answer row shift that best fits the target, {group}: "
            + ", ".join(f"{s:+d}: {counts[s]}" for s in SHIFTS)
        )
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
