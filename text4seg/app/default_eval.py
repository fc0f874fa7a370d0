"""Measure the default model (MLLM + refiner) on a held-out synthetic set, and whether the MLLM looks.

For every image: the MLLM answers the scene-text query under the R-RLE grammar; its grid is scored
against the ground-truth grid (``grid_IoU``: the MLLM's own accuracy), upsampled to the image
(``coarse``), and refined (``refined``; an empty grid means no refiner call and an empty mask).
Controls: the ground-truth grid upsampled (``oracle``) and refined (``oracle_refined``: the refiner
with a perfect prompt), and the MLLM asked about a *different* image of the set, scored against
this image's grid (``shuffled_grid_IoU``). A model that reads the image scores far higher on its own
image than on a shuffled one; an image-blind model scores the same.

    python -m text4seg.app.default_eval --mllm DIR --refiner FILE --data DIR [--limit N]

The settings (grid, grid rule, refiner flips) are the checkpoint's own ``inference.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from data_builders.synthetic import load_synthetic
from data_builders.synthetic.writers import decode_rle
from text4seg.app.pipeline import Text4SegPipeline
from text4seg.app.refiners import RefineRequest
from text4seg.core.codec import BACKGROUND
from text4seg.core.masks import grid_from_mask, upsample_grid, word_regions
from text4seg.core.metrics import SceneTextMeter
from text4seg.core.query import interpret_query

SCENE_TEXT_QUERY = "text"
METERS = ("coarse", "refined", "grid", "grid_regions", "shuffled_grid", "oracle", "oracle_refined")


def _pred_grid(result) -> np.ndarray:
    return np.array([[label != BACKGROUND for label in row] for row in result.grid], bool)


def _oracle_refined(pipeline: Text4SegPipeline, image: np.ndarray, gt_grid: np.ndarray) -> np.ndarray:
    """The pipeline's refiner given the ground-truth grid, gated as the pipeline gates (``text_gate``); an
    empty grid is not refined, as in the pipeline."""
    if not gt_grid.any():
        return np.zeros(image.shape[:2], bool)
    query = interpret_query(SCENE_TEXT_QUERY, task="scene_text")
    request = RefineRequest(
        image=image,
        grids={SCENE_TEXT_QUERY: gt_grid},
        query=query,
        flips=pipeline.config.refiner_flips,
        zoom=pipeline.config.refiner_zoom,
    )
    return pipeline.text_gated(image, pipeline.refiner.refine(request), query)[SCENE_TEXT_QUERY]


def evaluate_default(
    pipeline: Text4SegPipeline, rows, *, limit: int | None = None, shuffled_control: bool = True
) -> dict:
    """Scores over ``rows`` (Arrow rows with ``image`` and ``mask``); returns a JSON-ready dict.

    Everything runs through ``pipeline`` with its own settings (grid, grid rule of the ground-truth
    grids, refiner flips); ``limit`` scores the first N rows; ``shuffled_control`` also asks about
    the next image and scores that answer against this image's grid.
    """
    settings = pipeline.config
    meters = {name: SceneTextMeter() for name in METERS}
    count = len(rows) if limit is None else min(limit, len(rows))
    failures, seconds, started = 0, {"mllm": 0.0, "refine": 0.0}, time.perf_counter()
    images = [np.asarray(rows[i]["image"].convert("RGB")) for i in range(count)]
    for i in tqdm(range(count), desc="default eval", leave=False):
        image = images[i]
        gt = np.asarray(rows[i]["mask"].convert("L")) > 127
        gt_grid = grid_from_mask(
            gt, grid_size=settings.grid, rule=settings.grid_rule, threshold=settings.grid_threshold
        )
        result = pipeline(image, SCENE_TEXT_QUERY, task="scene_text")
        seconds["mllm"] += result.timings["mllm"] + result.timings["parse"]
        seconds["refine"] += result.timings["refine"]
        failures += int(result.parse_failed)
        grid = _pred_grid(result)
        meters["grid"].update(grid, gt_grid)
        if rows[i].get("instance_masks") is not None:  # also against the words' regions (word polygons)
            regions = word_regions([decode_rle(m) for m in rows[i]["instance_masks"]], gt.shape)
            region_grid = grid_from_mask(
                regions, grid_size=settings.grid, rule=settings.grid_rule, threshold=settings.grid_threshold
            )
            meters["grid_regions"].update(grid, region_grid)
        meters["coarse"].update(upsample_grid(grid, size=gt.shape), gt)
        meters["refined"].update(result.refined_masks[SCENE_TEXT_QUERY], gt)
        meters["oracle"].update(upsample_grid(gt_grid, size=gt.shape), gt)
        meters["oracle_refined"].update(_oracle_refined(pipeline, image, gt_grid), gt)
        if shuffled_control and count > 1:
            shuffled = pipeline(images[(i + 1) % count], SCENE_TEXT_QUERY, task="scene_text", refine=False)
            meters["shuffled_grid"].update(_pred_grid(shuffled), gt_grid)
    return _report(
        meters, count=count, failures=failures, seconds=seconds, wall=time.perf_counter() - started
    )


def _report(meters: dict, *, count: int, failures: int, seconds: dict, wall: float) -> dict:
    def fg(name: str) -> dict:
        result = meters[name].result()
        return {"fgIoU": round(result["fgIoU"], 4), "F": round(result["F"], 4)}

    report = {
        "n_images": count,
        "coarse": {**fg("coarse"), "grid_IoU": fg("grid")["fgIoU"]},
        "refined": fg("refined"),
        "oracle": fg("oracle"),
        "oracle_refined": fg("oracle_refined"),
        "parse_failure_rate": failures / max(1, count),
        "seconds_per_image": {k: round(v / max(1, count), 4) for k, v in seconds.items()},
        "wall_seconds": round(wall, 1),
    }
    if meters["grid_regions"].result().get("n", 0):
        report["coarse"]["grid_IoU_regions"] = fg("grid_regions")["fgIoU"]
    if meters["shuffled_grid"].result().get("n", 0):
        report["coarse"]["shuffled_grid_IoU"] = fg("shuffled_grid")["fgIoU"]
    return report


def teacher_forced_gap(model, processor, rows, *, limit: int = 64, batch_size: int = 8) -> dict:
    """Mean answer loss of chat rows with their own image vs with the next row's image.

    rows: conversation-builder rows (``image``, ``messages``). A clearly lower loss with the right
    image means the answers depend on the image; equal losses mean the model is image-blind.
    """
    import torch

    from text4seg.mllm.collator import ChatCollator  # lazy: pulls transformers

    collator = ChatCollator(processor=processor)
    count = min(limit, len(rows))
    picked = [rows[i] for i in range(count)]
    shuffled = [{**row, "image": picked[(i + 1) % count]["image"]} for i, row in enumerate(picked)]
    losses = {}
    model.eval()
    for name, group in (("own_image", picked), ("shuffled_image", shuffled)):
        total = 0.0
        for start in range(0, count, batch_size):
            chunk = group[start : start + batch_size]
            with torch.no_grad():
                total += float(model(**collator(chunk)).loss) * len(chunk)
        losses[name] = round(total / count, 4)
    return {"n_rows": count, "answer_loss": losses}


def main(argv: list[str] | None = None) -> None:
    import torch

    parser = argparse.ArgumentParser(
        prog="python -m text4seg.app.default_eval", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--mllm", required=True, help="MLLM save_pretrained folder (its inference.json is used)"
    )
    parser.add_argument("--refiner", required=True, help="refiner .safetensors checkpoint")
    parser.add_argument("--data", required=True, help="synthetic Arrow dataset (held-out fonts and seed)")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--grid", type=int, nargs=2, default=None, help="override the checkpoint's grid")
    parser.add_argument("--no-shuffled", action="store_true", help="skip the shuffled-image control")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--flips", nargs="*", default=None, help="override the checkpoint's refiner flips (h, v)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    overrides = {"grid": args.grid, "refiner_flips": args.flips}
    pipeline = Text4SegPipeline.from_pretrained(
        model=Path(args.mllm), refiner=Path(args.refiner), overrides=overrides
    )
    rows = load_synthetic(args.data)
    print(
        json.dumps(evaluate_default(pipeline, rows, limit=args.limit, shuffled_control=not args.no_shuffled))
    )


if __name__ == "__main__":
    main()
