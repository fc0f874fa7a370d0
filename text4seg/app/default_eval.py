"""Measure the default model (MLLM + refiner) on a held-out synthetic set, and whether the MLLM looks.

For every image: the MLLM answers the scene-text query under the R-RLE grammar; its grid is scored
against the ground-truth grid (``grid_IoU``: the MLLM's own accuracy), upsampled to the image
(``coarse``), and refined (``refined``; an empty grid means no refiner call and an empty mask).
Controls: the ground-truth grid upsampled (``oracle``) and refined (``oracle_refined``: the refiner
with a perfect prompt), and the MLLM asked about a *different* image of the set, scored against
this image's grid (``shuffled_grid_IoU``). A model that reads the image scores far higher on its own
image than on a shuffled one; an image-blind model scores the same.

    python -m text4seg.app.default_eval --mllm DIR --refiner FILE --data DIR [--limit N]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SCENE_TEXT_QUERY = "text"


@dataclass(kw_only=True)
class EvalSettings:
    """How the default model is asked and how ground-truth grids are made."""

    grid: tuple[int, int] = (8, 8)
    """Descriptor grid (gh, gw) the MLLM answers with."""
    grid_rule: str = "area"
    """Rule of the ground-truth grids (``text4seg.core.masks.GRID_RULES``)."""
    grid_threshold: float = 0.1
    """Area-rule text fraction."""
    shuffled_control: bool = True
    """Also ask about a different image and score it against this one's grid."""
    limit: int | None = None
    """Score only the first N rows."""
    refiner_flips: tuple[str, ...] = ()
    """Test-time flips of the refiner (``stsam_refiner.predict.refine_image``), as the pipeline uses."""

    @classmethod
    def from_fields(cls, fields: dict, **overrides) -> EvalSettings:
        """Settings of a packaged model: its manifest's (or ``INFERENCE_FIELDS``') grid and refiner keys."""
        keys = ("grid", "grid_rule", "grid_threshold", "refiner_flips")
        return cls(**{k: fields[k] for k in keys if k in fields}, **overrides)

    def __post_init__(self) -> None:
        self.grid = tuple(int(v) for v in self.grid)
        self.refiner_flips = tuple(self.refiner_flips)
        if len(self.grid) != 2 or min(self.grid) < 1:
            raise ValueError(f"grid {self.grid} must be two positive sizes")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit {self.limit} must be >= 1")


def _meters() -> dict:
    from text4seg.core.metrics import SceneTextMeter

    names = ("coarse", "refined", "grid", "shuffled_grid", "oracle", "oracle_refined")
    return {name: SceneTextMeter() for name in names}


def _pred_grid(result) -> np.ndarray:
    from text4seg.core.codec import BACKGROUND

    return np.array([[label != BACKGROUND for label in row] for row in result.grid], bool)


def _refine(refiner, image: np.ndarray, grid: np.ndarray, flips: tuple[str, ...]) -> np.ndarray:
    from stsam_refiner.predict import refine_image

    if not grid.any():  # empty coarse mask: no refiner call (the pipeline's rule)
        return np.zeros(image.shape[:2], bool)
    return refine_image(refiner, image, coarse=grid, flips=flips).mask


def evaluate_default(mllm, processor, refiner, rows, settings: EvalSettings) -> dict:
    """Scores over ``rows`` (Arrow rows with ``image`` and ``mask``); returns a JSON-ready dict."""
    import torch
    from tqdm.auto import tqdm

    from text4seg.core.masks import grid_from_mask, upsample_grid
    from text4seg.mllm.generate import segment

    meters, cache = _meters(), {}
    count = len(rows) if settings.limit is None else min(settings.limit, len(rows))
    failures, seconds, started = 0, {"mllm": 0.0, "refine": 0.0}, time.perf_counter()
    images = [np.asarray(rows[i]["image"].convert("RGB")) for i in range(count)]
    refiner.eval()
    for i in tqdm(range(count), desc="default eval", leave=False):
        image = images[i]
        gt = np.asarray(rows[i]["mask"].convert("L")) > 127
        gt_grid = grid_from_mask(
            gt, grid_size=settings.grid, rule=settings.grid_rule, threshold=settings.grid_threshold
        )
        tick = time.perf_counter()
        answer = segment(mllm, processor, image, SCENE_TEXT_QUERY, grid=settings.grid, masks_cache=cache)
        seconds["mllm"] += time.perf_counter() - tick
        failures += int(answer.failed)
        grid = _pred_grid(answer)
        meters["grid"].update(grid, gt_grid)
        meters["coarse"].update(upsample_grid(grid, size=gt.shape), gt)
        meters["oracle"].update(upsample_grid(gt_grid, size=gt.shape), gt)
        tick = time.perf_counter()
        with torch.no_grad():
            meters["refined"].update(_refine(refiner, image, grid, settings.refiner_flips), gt)
            seconds["refine"] += time.perf_counter() - tick
            meters["oracle_refined"].update(_refine(refiner, image, gt_grid, settings.refiner_flips), gt)
        if settings.shuffled_control and count > 1:
            other = images[(i + 1) % count]
            shuffled = segment(
                mllm, processor, other, SCENE_TEXT_QUERY, grid=settings.grid, masks_cache=cache
            )
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
    if meters["shuffled_grid"].result().get("n", 0):
        report["coarse"]["shuffled_grid_IoU"] = fg("shuffled_grid")["fgIoU"]
    return report


def teacher_forced_gap(model, processor, rows, *, limit: int = 64, batch_size: int = 8) -> dict:
    """Mean answer loss of chat rows with their own image vs with the next row's image.

    rows: conversation-builder rows (``image``, ``messages``). A clearly lower loss with the right
    image means the answers depend on the image; equal losses mean the model is image-blind.
    """
    import torch

    from text4seg.mllm.collator import ChatCollator

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


def load_parts(mllm: str | Path, refiner: str | Path):
    """(model, processor, refiner) as the evaluation uses them: the MLLM in float32, eval mode."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from stsam_refiner.build import load_refiner

    model = AutoModelForImageTextToText.from_pretrained(mllm, dtype=torch.float32).eval()
    return model, AutoProcessor.from_pretrained(mllm), load_refiner(refiner)[0]


def main(argv: list[str] | None = None) -> None:
    import torch

    from data_builders.synthetic import load_synthetic

    parser = argparse.ArgumentParser(
        prog="python -m text4seg.app.default_eval", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--mllm", required=True, help="MLLM save_pretrained folder")
    parser.add_argument("--refiner", required=True, help="refiner .safetensors checkpoint")
    parser.add_argument("--data", required=True, help="synthetic Arrow dataset (held-out fonts and seed)")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--grid", type=int, nargs=2, default=(8, 8))
    parser.add_argument("--no-shuffled", action="store_true", help="skip the shuffled-image control")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--flips", nargs="*", default=[], help="refiner test-time flips: h (left-right), v (upside down)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, processor, refiner = load_parts(args.mllm, args.refiner)
    settings = EvalSettings(
        grid=tuple(args.grid),
        shuffled_control=not args.no_shuffled,
        limit=args.limit,
        refiner_flips=args.flips,
    )
    print(json.dumps(evaluate_default(model, processor, refiner, load_synthetic(args.data), settings)))


if __name__ == "__main__":
    main()
