"""Where a refiner loses words: per-word recall and IoU by kind of word, given a perfect answer.

Each image's true grid (the MLLM's grid, rule and threshold) is refined as the pipeline refines an
answer (zoomed windows, test-time flips; ``stsam_refiner.calibrate.refine_true_grid``) and cut at
the checkpoint's own mask threshold. Each word of the corpus row (``instances`` and
``instance_masks``, the generator's record of every word) is then scored on its own:

- recall: share of its stroke pixels predicted;
- found: recall ≥ 0.1 (the real-photo scorer's rule, ``text4seg.core.photo_metrics``);
- IoU: prediction against its strokes inside its box grown by ``PAD`` pixels (a neighbour's strokes
  inside the box count as the prediction's, so crowded words read low).

Words are grouped by what the generator drew: orientation, size, curved, perspective, outline,
shadow, low contrast. Run it on a split's true grids to see what the refiner, not the answer, misses.

    python benchmarks/refiner_words.py --checkpoint R --data data/default/corpus_test \
        --settings text4seg/app/assets/default/mllm --threads 2

The last line is one JSON object: per group, words / found / mean recall / mean IoU.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from data_builders.synthetic.writers import decode_rle

PAD = 4
"""Pixels the word's box grows by for its IoU (strokes anti-aliased past the recorded box)."""

FOUND = 0.1
"""A word is found when at least this share of its strokes is predicted."""

FLAGS = ("curved", "perspective", "outline", "shadow", "low_contrast")
"""Boolean word attributes that each make a group of the words where they hold."""


def score_words(
    pred: np.ndarray, instance_masks: Sequence[np.ndarray], instances: Sequence[dict]
) -> list[dict]:
    """One record per word: its groups, recall and IoU. ``pred`` and each mask are H×W bool."""
    if len(instance_masks) != len(instances):
        raise ValueError(f"{len(instance_masks)} instance masks != {len(instances)} instances")
    height, width = pred.shape
    records = []
    for mask, word in zip(instance_masks, instances, strict=True):
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != pred.shape:
            raise ValueError(f"word mask {mask.shape} != prediction {pred.shape}")
        strokes = int(mask.sum())
        if strokes == 0:  # occluded away entirely: nothing to find
            continue
        x0, y0, x1, y1 = (int(v) for v in word["box"])
        box = np.zeros_like(mask)
        box[max(0, y0 - PAD) : min(height, y1 + PAD), max(0, x0 - PAD) : min(width, x1 + PAD)] = True
        local = pred & box
        recall = float((pred & mask).sum()) / strokes
        iou = float((local & mask).sum()) / float((local | mask).sum())
        records.append({"groups": word_groups(word), "recall": recall, "iou": iou, "found": recall >= FOUND})
    return records


def word_groups(word: dict) -> list[str]:
    """The groups a generator word belongs to, e.g. ``["all", "orientation=rotated", "outline"]``."""
    groups = ["all"]
    for key in ("orientation", "size"):
        if word.get(key) is not None:
            groups.append(f"{key}={word[key]}")
    groups += [flag for flag in FLAGS if word.get(flag)]
    return groups


def summarize(records: Sequence[dict]) -> dict[str, dict[str, float]]:
    """Per group: words, found share, mean recall and mean IoU (rounded to 3 places)."""
    by_group: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        for group in record["groups"]:
            by_group[group].append(record)
    return {
        group: {
            "words": len(rows),
            "found": round(float(np.mean([r["found"] for r in rows])), 3),
            "recall": round(float(np.mean([r["recall"] for r in rows])), 3),
            "iou": round(float(np.mean([r["iou"] for r in rows])), 3),
        }
        for group, rows in sorted(by_group.items(), key=lambda kv: (kv[0] != "all", kv[0]))
    }


def main(argv: list[str] | None = None) -> None:
    from stsam_refiner.build import load_refiner
    from stsam_refiner.calibrate import refine_true_grid
    from stsam_refiner.train import load_rows
    from text4seg.core.inference import FLIPS, load_inference_settings

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="project refiner checkpoint (.safetensors)")
    parser.add_argument("--data", required=True, help="corpus split with instances and instance_masks")
    parser.add_argument("--settings", required=True, help="MLLM folder whose inference.json gives the grid")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images")
    parser.add_argument("--flips", nargs="*", default=["h"], choices=FLIPS, help="test-time flips")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    settings = load_inference_settings(args.settings)
    if settings is None:
        raise SystemExit(f"--settings {args.settings} has no inference.json")
    model, report = load_refiner(args.checkpoint)
    if report.missing:
        raise SystemExit(
            f"checkpoint leaves {len(report.missing)} weights missing, e.g. {report.missing[:3]}"
        )
    model.eval()
    rows = load_rows(args.data, None)
    missing = {"instances", "instance_masks"} - set(rows.column_names)
    if missing:
        raise SystemExit(
            f"{args.data} has no {sorted(missing)} column: it needs the generator's word records"
        )
    count = len(rows) if args.limit is None else min(args.limit, len(rows))
    threshold = model.cfg.sam.mask_threshold
    records = []
    for i in tqdm(range(count), desc="words"):
        row = rows[i]
        logits, _ = refine_true_grid(
            model, row, grid=tuple(settings.grid), rule=settings.grid_rule,
            grid_threshold=settings.grid_threshold, flips=tuple(args.flips), zoom=settings.refiner_zoom,
        )  # fmt: skip
        masks = [decode_rle(text) for text in row["instance_masks"]]
        records += score_words(logits > threshold, masks, row["instances"])
    groups = summarize(records)
    for group, figures in groups.items():
        print(f"{group:28s} words {figures['words']:4d}  found {figures['found']:.3f}  "
              f"recall {figures['recall']:.3f}  IoU {figures['iou']:.3f}")  # fmt: skip
    print(json.dumps({"checkpoint": args.checkpoint, "data": args.data, "images": count,
                      "mask_threshold": threshold, "groups": groups}))  # fmt: skip


if __name__ == "__main__":
    main()
