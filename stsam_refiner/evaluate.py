"""fgIoU / F of the coarse mask alone vs after refinement, on an Arrow scene-text dataset.

The coarse mask of each image is either a cached MLLM answer (``--coarse-source cached``) or the
ground truth turned into a damaged descriptor grid, exactly as during training but with a fixed
seed per image (a stand-in for the MLLM when none is trained yet — say which one you report).
Both are scored with ``text4seg.core.metrics.SceneTextMeter`` at the original image size, the coarse
mask nearest-upsampled from its grid (Text4Seg's coarse mask → image rule).

``python -m stsam_refiner.evaluate --checkpoint outputs/refiner_tiny/refiner.safetensors --data DIR``
prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

import numpy as np
import torch

from stsam_refiner.build import load_refiner
from stsam_refiner.data import CoarseConfig, cached_grid, damage_grid, describe
from stsam_refiner.model import STSAMRefiner
from stsam_refiner.predict import refine_image
from stsam_refiner.train import load_rows
from text4seg.core.masks import grid_from_mask, upsample_grid
from text4seg.core.metrics import SceneTextMeter


@dataclass
class RefinementScores:
    """Scene-text scores before and after refinement."""

    coarse: dict[str, float]
    """SceneTextMeter result of the upsampled coarse grids."""
    refined: dict[str, float]
    """SceneTextMeter result of the refiner's masks."""

    def as_dict(self) -> dict[str, float]:
        """Flat dict: coarse_fgIoU, coarse_F, refined_fgIoU, refined_F, n."""
        return {
            "coarse_fgIoU": self.coarse["fgIoU"],
            "coarse_F": self.coarse["F"],
            "refined_fgIoU": self.refined["fgIoU"],
            "refined_F": self.refined["F"],
            "n": self.refined["n"],
        }


def eval_coarse_grid(row: dict, gt: np.ndarray, cfg: CoarseConfig, index: int, seed: int) -> np.ndarray:
    """The g×g coarse grid for one evaluation image (cached answer or seeded damaged GT)."""

    if cfg.source == "cached":
        return cached_grid(row[cfg.cached_column], cfg.grid)
    clean = grid_from_mask(gt, grid_size=(cfg.grid, cfg.grid), rule=cfg.rule, threshold=cfg.threshold)
    return damage_grid(clean, cfg, np.random.default_rng((seed, index)))


@torch.no_grad()
def evaluate_refiner(
    model: STSAMRefiner,
    rows,
    *,
    coarse: CoarseConfig,
    description_column: str | None = None,
    limit: int | None = None,
    seed: int = 1234,
) -> RefinementScores:
    """Score coarse vs refined masks over ``rows`` (a datasets.Dataset with image/mask columns)."""
    from tqdm.auto import tqdm

    model.eval()
    before, after = SceneTextMeter(), SceneTextMeter()
    count = len(rows) if limit is None else min(limit, len(rows))
    for i in tqdm(range(count), desc="evaluate", leave=False):
        row = rows[i]
        image = np.array(row["image"].convert("RGB"))
        gt = np.asarray(row["mask"].convert("L")) > 127
        grid = eval_coarse_grid(row, gt, coarse, i, seed)
        before.update(upsample_grid(grid, size=gt.shape), gt)
        description = describe(row[description_column]) if description_column else None
        refined = refine_image(model, image, coarse=grid, description=description)
        after.update(refined.mask, gt)
    return RefinementScores(coarse=before.result(), refined=after.result())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m stsam_refiner.evaluate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--checkpoint", required=True, help="project refiner checkpoint (.safetensors)")
    parser.add_argument("--data", required=True, help="Arrow dataset folder with image/mask columns")
    parser.add_argument("--split", default=None, help="keep rows of this split (default: all)")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N images")
    parser.add_argument("--coarse-source", choices=["gt", "cached"], default="gt")
    parser.add_argument("--description-column", default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, report = load_refiner(args.checkpoint)
    if report.missing:
        raise SystemExit(
            f"checkpoint leaves {len(report.missing)} weights missing, e.g. {report.missing[:3]}"
        )
    scores = evaluate_refiner(
        model,
        load_rows(args.data, args.split),
        coarse=CoarseConfig(source=args.coarse_source),
        description_column=args.description_column,
        limit=args.limit,
    )
    print(json.dumps(scores.as_dict()))


if __name__ == "__main__":
    main()
