"""Choose a refiner's mask threshold on a selection split, and write a checkpoint that carries it.

Each image's true grid (made with the rule and threshold the MLLM answers with) is refined the way
the pipeline refines an answer: zoomed windows (``stsam_refiner.zoom``) and test-time flips. The
logits are kept, and the accumulated fgIoU (``SceneTextMeter``) is computed at each candidate
threshold. The best one goes into a copy of the checkpoint as ``sam.mask_threshold``; the weights
are not changed.

    python -m stsam_refiner.calibrate --checkpoint R --data data/corpus_select --limit 100 \
        --settings MLLM_DIR --flips h --out R2

``--settings`` takes the answer grid, its rule and threshold, and zoom from the MLLM folder's
``inference.json``; without it they come from the flags.

It prints one JSON line: fgIoU, P and R per threshold, and the choice. Run it on a selection split,
never on the set you report.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from stsam_refiner.build import load_refiner
from stsam_refiner.config import RefinerConfig
from stsam_refiner.model import STSAMRefiner
from stsam_refiner.predict import refine_image
from stsam_refiner.train import load_rows
from stsam_refiner.zoom import refine_zoomed
from text4seg.core.inference import FLIPS, load_inference_settings
from text4seg.core.masks import grid_from_mask
from text4seg.core.metrics import SceneTextMeter

THRESHOLDS = (-2.0, -1.5, -1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0)
"""Candidate logit thresholds (segment-anything's own is 0)."""


@torch.no_grad()
def refine_true_grid(
    model: STSAMRefiner,
    row: dict,
    *,
    grid: tuple[int, int],
    rule: str = "area",
    grid_threshold: float = 0.03,
    flips: tuple[str, ...] = (),
    zoom: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Refine one corpus row's true grid as the pipeline refines an answer.

    Returns (H×W float32 logits, H×W bool stroke mask); the logits are −inf where the grid is empty
    (an empty answer is not refined, as in the pipeline)."""
    image = np.asarray(row["image"].convert("RGB"))
    gt = np.asarray(row["mask"].convert("L")) > 127
    coarse = grid_from_mask(gt, grid_size=grid, rule=rule, threshold=grid_threshold)
    if not coarse.any():
        return np.full(gt.shape, -np.inf, dtype=np.float32), gt
    refine = refine_zoomed if zoom else refine_image
    return refine(model, image, coarse=coarse, flips=flips).logits, gt


@torch.no_grad()
def sweep_thresholds(
    model: STSAMRefiner,
    rows,
    *,
    grid: tuple[int, int],
    rule: str = "area",
    grid_threshold: float = 0.03,
    flips: tuple[str, ...] = (),
    zoom: bool = True,
    thresholds: tuple[float, ...] = THRESHOLDS,
    limit: int | None = None,
) -> dict[float, dict[str, float]]:
    """SceneTextMeter results per threshold of the refined true grids of ``rows``."""
    model.eval()
    meters = {t: SceneTextMeter() for t in thresholds}
    count = len(rows) if limit is None else min(limit, len(rows))
    for i in tqdm(range(count), desc="calibrate", leave=False):
        logits, gt = refine_true_grid(
            model, rows[i], grid=grid, rule=rule, grid_threshold=grid_threshold, flips=flips, zoom=zoom
        )
        for t, meter in meters.items():
            meter.update(logits > t, gt)
    return {t: meter.result() for t, meter in meters.items()}


def best_threshold(results: dict[float, dict[str, float]]) -> float:
    """The threshold of the highest fgIoU (the one nearest 0 among ties)."""
    return max(results, key=lambda t: (round(results[t]["fgIoU"], 6), -abs(t)))


def write_with_threshold(checkpoint: str | Path, out: str | Path, threshold: float) -> None:
    """Copy ``checkpoint`` to ``out`` with ``sam.mask_threshold`` set in its stored config."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(checkpoint), framework="pt") as handle:
        metadata = dict(handle.metadata() or {})
    if "config" not in metadata:
        raise ValueError(f"{checkpoint} is not a project refiner checkpoint (no stored config)")
    cfg = RefinerConfig.from_dict(json.loads(metadata["config"]), source=str(checkpoint))
    metadata["config"] = json.dumps(cfg.with_overrides({"sam.mask_threshold": float(threshold)}).to_dict())
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    save_file(load_file(str(checkpoint)), str(out), metadata=metadata)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m stsam_refiner.calibrate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--checkpoint", required=True, help="project refiner checkpoint (.safetensors)")
    parser.add_argument("--data", required=True, help="selection split: Arrow dataset with image/mask")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images")
    parser.add_argument("--grid", type=int, default=8, help="answer grid side the MLLM uses")
    parser.add_argument("--grid-rule", default="area")
    parser.add_argument("--grid-threshold", type=float, default=0.03, help="the MLLM's area rule")
    parser.add_argument("--flips", nargs="*", default=["h"], choices=FLIPS, help="test-time flips")
    parser.add_argument("--no-zoom", action="store_true", help="refine the whole image, not zoomed windows")
    parser.add_argument(
        "--settings", help="MLLM folder whose inference.json gives grid, rule, threshold, zoom"
    )
    parser.add_argument("--out", help="write the checkpoint with the chosen threshold here")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="torch device of the refiner (cpu, cuda)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.out and Path(args.out).resolve() == Path(args.checkpoint).resolve():
        raise SystemExit("--out must differ from --checkpoint (the checkpoint is kept as it is)")
    grid, rule, grid_threshold, zoom = (
        (args.grid, args.grid),
        args.grid_rule,
        args.grid_threshold,
        not args.no_zoom,
    )
    if args.settings:
        settings = load_inference_settings(args.settings)
        if settings is None:
            raise SystemExit(f"--settings {args.settings} has no inference.json")
        grid, rule, grid_threshold = tuple(settings.grid), settings.grid_rule, settings.grid_threshold
        zoom = settings.refiner_zoom
    model, report = load_refiner(args.checkpoint)
    if report.missing:
        raise SystemExit(
            f"checkpoint leaves {len(report.missing)} weights missing, e.g. {report.missing[:3]}"
        )
    model.to(args.device)
    results = sweep_thresholds(
        model, load_rows(args.data, None), grid=grid, rule=rule, grid_threshold=grid_threshold,
        flips=tuple(args.flips), zoom=zoom, limit=args.limit,
    )  # fmt: skip
    chosen = best_threshold(results)
    if args.out:
        write_with_threshold(args.checkpoint, args.out, chosen)
    rounded = {
        str(t): {k: round(v, 4) for k, v in r.items() if k in ("fgIoU", "P", "R")} for t, r in results.items()
    }
    print(json.dumps({"thresholds": rounded, "chosen": chosen, "was": model.cfg.sam.mask_threshold,
                      "n_images": next(iter(results.values()))["n"], "grid": list(grid), "grid_rule": rule,
                      "grid_threshold": grid_threshold, "zoom": zoom, "flips": args.flips, "out": args.out}))  # fmt: skip


if __name__ == "__main__":
    main()
