"""Pretrained vs random-init text backbone, same budget: the vision stage's per-patch text grid.

Each ``--stage DIR`` is a ``text4seg.mllm.vision_pretrain`` output (``model/`` + the per-patch
head). For each, the tower + head predict the 8×8 text grid (logit > 0) of
- the selection split of the corpus (``--select``; held-out font families and photos): cell IoU
  against the ground-truth grids (area rule, 10 %), pooled over images;
- the real dev photos of ``benchmarks/real_photos.py`` (ICDAR2015 photos + no-text package photos):
  grid IoU against the word-polygon grid, word recall of the grid upsampled as a coarse mask, photos
  left empty, no-text photos kept empty (``text4seg.core.photo_metrics.PhotoMeter``).

    python benchmarks/backbone_ablation.py --stage runs/ablation/pretrained --stage runs/ablation/random \
        --select data/default/corpus_select

Ends with one JSON line of the figures per stage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_photos import dev_photos, load_rgb  # noqa: E402

from data_builders.synthetic import load_synthetic  # noqa: E402
from text4seg.core.masks import grid_from_mask, upsample_grid  # noqa: E402
from text4seg.core.photo_metrics import PhotoMeter  # noqa: E402
from text4seg.mllm.loading import load_mllm  # noqa: E402
from text4seg.mllm.vision_pretrain import HEAD_NAME, make_patch_head, patch_features, patch_logits_to_grid  # noqa: E402


class GridModel:
    """A vision stage's tower + per-patch head: HWC uint8 RGB → gh×gw bool text grid."""

    def __init__(self, stage: Path) -> None:
        loaded = load_mllm(stage / "model")
        self.processor = loaded.processor
        self.tower = loaded.model.model.vision_tower.eval()
        config = self.tower.config
        self.n = config.image_size // config.patch_size
        state = load_file(stage / HEAD_NAME)
        self.k = int(np.sqrt(state["1.weight"].shape[0]))
        self.head = make_patch_head(hidden=config.hidden_size, cells_per_patch=self.k)
        self.head.load_state_dict(state)
        self.head.eval()

    @torch.no_grad()
    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        pixels = self.processor.image_processor(rgb, return_tensors="pt", input_data_format="channels_last")
        features = patch_features(self.tower, pixels["pixel_values"])
        logits = patch_logits_to_grid(self.head(features), patches_per_side=self.n, cells_per_patch=self.k)
        return logits[0].numpy() > 0


def score_stage(stage: Path, select: Path, limit: int) -> dict:
    model = GridModel(stage)
    rows = load_synthetic(str(select))
    inter = union = 0
    for i in range(min(limit, len(rows))):
        rgb = np.asarray(rows[i]["image"].convert("RGB"))
        gt = np.asarray(rows[i]["mask"].convert("L")) > 127
        truth = grid_from_mask(gt, grid_size=(model.n * model.k,) * 2, rule="area", threshold=0.1)
        pred = model(rgb)
        inter += int((pred & truth).sum())
        union += int((pred | truth).sum())
    meter = PhotoMeter()
    for photo in dev_photos():
        rgb = load_rgb(photo.path)
        grid = model(rgb)
        meter.update(upsample_grid(grid, size=rgb.shape[:2]), photo.polygons, photo.dont_care, grid=grid)
    photos = meter.summary()
    return {
        "select_cell_iou": inter / union if union else 1.0,
        "photo_grid_iou": photos.grid_iou,
        "photo_word_recall": photos.word_recall,
        "photo_precision": photos.precision,
        "photos_left_empty": photos.empty_photos,
        "no_text_kept_empty": photos.no_text_empty,
        "no_text_photos": photos.no_text_photos,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stage", action="append", required=True, help="vision_pretrain output folder")
    parser.add_argument("--select", required=True, help="corpus_select Arrow folder")
    parser.add_argument("--limit", type=int, default=100, help="selection images scored")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    figures = {}
    for stage in args.stage:
        figures[Path(stage).name] = score_stage(Path(stage), Path(args.select), args.limit)
    keys = list(next(iter(figures.values())))
    print(f"{'stage':<14}" + "".join(f"{k:>20}" for k in keys))
    for name, row in figures.items():
        cells = "".join(f"{v:>20.3f}" if isinstance(v, float) else f"{v!s:>20}" for v in row.values())
        print(f"{name:<14}{cells}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
