"""Two refiners on one MLLM's answers, their logits mixed: strokes on synthetic text vs words on photos.

The text-backbone build's refiner finds words on real photos but draws weak strokes on synthetic
text; the shipped refiner does the reverse (docs/default_model.md). This asks the MLLM once per image
("segment the text in this image", no refinement), gives its grid to both refiners, and scores the
mask ``w * logits_a + (1 - w) * logits_b > 0`` for each weight ``w`` of refiner A:

- on the first ``--limit`` images of a synthetic Arrow split (refined fgIoU, ``SceneTextMeter``);
- on the real-photo dev set of ``benchmarks/real_photos.py`` (word recall, precision, grid IoU, empty
  photos, no-text photos kept empty; ``PhotoMeter``).

Run: ``python benchmarks/refiner_ensemble.py --model M --refiner-a A --refiner-b B --data DIR``.
Last line: one JSON object with the figures per weight.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_photos  # noqa: E402  (the dev photos and their scorer, shared with benchmarks/real_photos.py)

from data_builders.synthetic import load_synthetic  # noqa: E402
from text4seg.app.pipeline import Text4SegPipeline  # noqa: E402
from text4seg.core.codec import BACKGROUND  # noqa: E402
from text4seg.core.metrics import SceneTextMeter  # noqa: E402

QUERY = "segment the text in this image"


def main(argv: list[str] | None = None) -> None:
    import torch

    from stsam_refiner.predict import refine_image

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="MLLM folder")
    parser.add_argument("--refiner-a", required=True, help="refiner A checkpoint (weight w)")
    parser.add_argument("--refiner-b", required=True, help="refiner B checkpoint (weight 1 - w)")
    parser.add_argument("--data", required=True, help="synthetic Arrow split (e.g. corpus_test)")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.3, 0.5, 0.7, 1.0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    pipe = Text4SegPipeline.from_pretrained(model=args.model, refiner=args.refiner_a)
    other = Text4SegPipeline.from_pretrained(model=args.model, refiner=args.refiner_b)
    refiners = (pipe.parts.stsam, other.parts.stsam)

    def masks(image: np.ndarray) -> tuple[np.ndarray, dict[float, np.ndarray]]:
        answer = pipe(image, QUERY, task="scene_text", refine=False)
        grid = np.array(answer.grid, dtype=object) != BACKGROUND
        if not grid.any():  # the pipeline does not refine an empty answer either
            empty = np.zeros(image.shape[:2], bool)
            return grid, {w: empty for w in args.weights}
        with torch.no_grad():
            a, b = (refine_image(model, image, coarse=grid).logits for model in refiners)
        return grid, {w: (w * a + (1 - w) * b) > 0 for w in args.weights}

    rows = load_synthetic(args.data)
    meters = {w: SceneTextMeter() for w in args.weights}
    for i in range(min(args.limit, len(rows))):
        image = np.asarray(rows[i]["image"].convert("RGB"))
        truth = np.asarray(rows[i]["mask"].convert("L")) > 127
        for w, mask in masks(image)[1].items():
            meters[w].update(mask, truth)
    photos = real_photos.dev_photos()
    predictions: dict[float, dict] = {w: {} for w in args.weights}
    for photo in photos:
        grid, mixed = masks(real_photos.load_rgb(photo.path))
        for w, mask in mixed.items():
            predictions[w][photo.name] = {"mask": mask, "grid": grid, "seconds": 0.0}
    figures = {}
    keys = ("word_recall", "precision", "grid_iou", "empty_photos", "no_text_empty")
    print(f"{'w(A)':>5}  synthetic fgIoU  " + "  ".join(keys))
    for w in args.weights:
        photo, _ = real_photos.score(photos, predictions[w])
        figures[str(w)] = {"synthetic_fgIoU": round(meters[w].result()["fgIoU"], 4),
                           **{k: photo[k] for k in keys}}  # fmt: skip
        row = figures[str(w)]
        print(f"{w:5.2f}  {row['synthetic_fgIoU']:15.3f}  " + "  ".join(f"{row[k]:.3f}" if isinstance(row[k], float)
                                                                  else str(row[k]) for k in keys))  # fmt: skip
    print(
        json.dumps({"n_synthetic": min(args.limit, len(rows)), "photos": len(photos), "by_weight": figures})
    )


if __name__ == "__main__":
    main()
