"""Sparse point refinement benchmark: TSPP vs the 32×32 grid vs random points (same images, same SAM).

One run over unseen toy shape scenes (``stsam_refiner.points.shapes``, drawn at the SAM's input
size — 128×128 for the trained tiny SAM — with 2–6 objects of 4 classes: discs, boxes, triangles, strokes; a third of the objects two-tone). Each image's answer is
the semantic list of the classes present; its coarse maps are the ground truth's 16×16 descriptor
grid damaged like the refiner's training inputs (dropped / shifted / false-positive patches), the
same for every mode. Modes, interleaved per image so machine load hits them alike:

- ``tspp``: points drawn from the trained TSPP head's probability map as ``sampling`` in the config
  says (scaled budget, spread draws, capped), then SAM + SMAgg;
- ``grid``: all 1024 points of SAM's 32×32 grid, then SMAgg;
- ``random``: as many random grid points as TSPP sampled for that image, then SMAgg;
- ``text4seg``: Text4Seg's refiner (coarse mask logits + 10 random positive/negative points, 3 calls);
- ``coarse``: the coarse masks unrefined (reference).

SAM: the ``tiny`` segment-anything SAM (ViT width 128, depth 4, 128 px) trained from scratch with
point prompts on the same scene generator (``python -m stsam_refiner.points.train_sam``) — no
pretrained SAM exists on this machine. Its masks are real masks of this toy domain, so the mIoU
delta is meaningful here but says nothing about real photos. Times are per image and include SAM's
image encoder, the TSPP head and SMAgg; ``cpu`` is this process's CPU time (robust to the machine
being shared), ``wall`` is elapsed time. mIoU: ``text4seg.core.metrics.SemanticMeter`` over background +
4 classes.

Run: ``.venv/bin/python benchmarks/sparse_points.py --sam runs/points_sam/sam.safetensors
--prompter runs/points/tspp.safetensors [--images 12]``. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

MODES = ("tspp", "grid", "random", "text4seg", "coarse")


def scene_answer(scene, rng: np.random.Generator):
    """Classes present (answer order) and their damaged 16×16 coarse grids."""
    from stsam_refiner.data import CoarseConfig
    from stsam_refiner.points.train_prompter import damage_index_grid
    from text4seg.core.masks import grid_from_mask

    classes = [c for c in range(len(scene.class_masks)) if scene.class_masks[c].any()]
    index = np.zeros(scene.label_map.shape, dtype=np.int64)
    for j, c in enumerate(classes):
        index[scene.label_map == c + 1] = j + 1
    cc = CoarseConfig()
    grid = grid_from_mask(index, grid_size=(cc.grid, cc.grid), rule=cc.rule, threshold=cc.threshold)
    grid = damage_index_grid(grid, len(classes), cc, rng)
    return classes, np.stack([grid == j + 1 for j in range(len(classes))])


def to_global(label_map: np.ndarray, classes: list[int]) -> np.ndarray:
    """Answer-order label map (k + 1 = classes[k]) → global class ids (c + 1)."""
    lookup = np.array([0, *[c + 1 for c in classes]], dtype=np.int64)
    return lookup[label_map]


def cfg_used(args):
    """The PointsConfig of this run (YAML + command-line overrides)."""
    from stsam_refiner.points.config import PointsConfig

    given = {
        "prompting.pred_iou_thresh": args.pred_iou,
        "prompting.stability_score_thresh": args.stability,
        "prompting.sparse_pred_iou_thresh": args.sparse_pred_iou,
        "prompting.sparse_box_nms_thresh": args.sparse_nms,
    }
    return PointsConfig.from_yaml(args.config, overrides={k: v for k, v in given.items() if v is not None})


def miou(counts: dict, images: np.ndarray | slice = slice(None)) -> float:
    """mIoU of ``images`` (indices, repeats allowed) from per-image counts {"I": n×C, "U": n×C}."""
    from text4seg.core.metrics import SemanticMeter

    meter = SemanticMeter(
        num_classes=counts["I"].shape[1],
        intersection=counts["I"][images].sum(0),
        union=counts["U"][images].sum(0),
    )
    return meter.result()["mIoU"]


def bootstrap_delta(a: dict, b: dict, *, samples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% interval of mIoU(a) − mIoU(b) over images resampled with replacement (paired: the same
    resample for both modes). a, b: {"I": n×C, "U": n×C} per-image intersection / union counts."""
    rng = np.random.default_rng(seed)
    n = len(a["I"])
    deltas = []
    for _ in range(samples):
        idx = rng.integers(n, size=n)
        deltas.append(miou(a, idx) - miou(b, idx))
    lo, hi = np.percentile(deltas, [2.5, 97.5])
    return float(lo), float(hi)


def run(args) -> dict:
    from stsam_refiner.points.prompting import PointRefinement
    from stsam_refiner.points.refiner import PointRefiner, coarse_to_image
    from stsam_refiner.points.shapes import SHAPE_CLASSES, make_scene
    from stsam_refiner.points.train_prompter import load_prompter
    from stsam_refiner.points.train_sam import load_point_sam
    from text4seg.core.metrics import SemanticMeter

    cfg = cfg_used(args)
    sam = load_point_sam(args.sam)
    size = sam.image_encoder.img_size  # scenes at the SAM's input size: no resizing in the way
    refiner = PointRefiner(sam=sam, cfg=cfg, prompter=load_prompter(args.prompter))
    stats = {m: {"points": [], "cpu": [], "wall": [], "masks": []} for m in MODES}
    counts = {m: {"I": [], "U": []} for m in MODES}  # per image: mIoU and its bootstrap interval
    # Each seed's scenes come from their own generator and keep their per-image sampling seeds, so
    # a run over several seeds pools exactly the images (and points) of the single-seed runs.
    jobs = [(rng, i) for rng in map(np.random.default_rng, args.seed) for i in range(args.images)]
    for n, (rng, i) in enumerate(jobs):
        scene = make_scene(rng, size=size)
        classes, coarse = scene_answer(scene, rng)
        budget = None
        for mode in args.modes:
            c0, w0 = time.process_time(), time.perf_counter()
            if mode == "coarse":
                out = PointRefinement(coarse_to_image(coarse, scene.label_map.shape), 0, 0.0)
            else:
                out = refiner.refine(scene.image, coarse, mode=mode, seed=i, budget=budget)
            stats[mode]["cpu"].append(time.process_time() - c0)
            stats[mode]["wall"].append(time.perf_counter() - w0)
            stats[mode]["points"].append(out.num_points)
            stats[mode]["masks"].append(len(out.proposals.masks) if out.proposals is not None else 0)
            if mode == "tspp":
                budget = out.num_points  # the random baseline gets the same number of points
            one = SemanticMeter(num_classes=len(SHAPE_CLASSES) + 1)
            one.update(to_global(out.label_map(), classes), scene.label_map)
            counts[mode]["I"].append(one.intersection)
            counts[mode]["U"].append(one.union)
        print(
            f"image {n + 1}/{len(jobs)}: "
            + ", ".join(
                f"{m} {stats[m]['points'][-1]} pts {stats[m]['cpu'][-1]:.2f}s"
                for m in args.modes
                if m != "coarse"
            ),
            flush=True,
        )
    counts = {m: {k: np.stack(v) for k, v in counts[m].items()} for m in args.modes}
    rows = {
        m: {**{k: float(np.mean(v)) for k, v in stats[m].items()}, "mIoU": miou(counts[m])}
        for m in args.modes
    }
    return rows, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sam", default="runs/points_sam/sam.safetensors")
    parser.add_argument("--prompter", default="runs/points/tspp.safetensors")
    parser.add_argument("--config", default="configs/points/tspp.yaml")
    parser.add_argument("--images", type=int, default=12, help="images per scene seed")
    parser.add_argument(
        "--seed",
        default="1000",
        help="scene seed, or comma-separated seeds pooled into one run (training used 0)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pred-iou", type=float, default=None, help="override prompting.pred_iou_thresh")
    parser.add_argument(
        "--stability", type=float, default=None, help="override prompting.stability_score_thresh"
    )
    parser.add_argument("--sparse-pred-iou", type=float, help="override prompting.sparse_pred_iou_thresh")
    parser.add_argument("--sparse-nms", type=float, help="override prompting.sparse_box_nms_thresh")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of the modes")
    args = parser.parse_args()
    try:
        args.seed = [int(v) for v in args.seed.split(",")]
    except ValueError:
        raise SystemExit(f"--seed must be integers separated by commas; got {args.seed!r}") from None
    torch.set_num_threads(args.threads)
    args.modes = [m for m in MODES if m in args.modes.split(",")] + [
        m for m in args.modes.split(",") if m not in MODES
    ]
    unknown = sorted(set(args.modes) - set(MODES))
    if unknown or "tspp" not in args.modes:
        raise SystemExit(f"--modes must include tspp and only {MODES}; got unknown {unknown}")
    rows, counts = run(args)
    print(
        f"{'mode':>9} {'points/img':>10} {'SAM masks':>9} {'cpu ms/img':>10} {'wall ms/img':>11} {'mIoU':>7}"
    )
    for mode, r in rows.items():
        print(
            f"{mode:>9} {r['points']:>10.1f} {r['masks']:>9.1f} {1000 * r['cpu']:>10.0f} "
            f"{1000 * r['wall']:>11.0f} {100 * r['mIoU']:>7.2f}"
        )
    tspp, grid = rows["tspp"], rows.get("grid")
    if grid is None:
        print(json.dumps({m: r for m, r in rows.items()}))
        return
    figures = {
        "images": args.images * len(args.seed),
        "seeds": args.seed,
        "sam": f"tiny segment-anything SAM trained with point prompts on toy shapes ({args.sam})",
        "point_reduction": round(1 - tspp["points"] / grid["points"], 4),
        "speedup_vs_grid": round(grid["cpu"] / tspp["cpu"], 2),
        "speedup_vs_grid_wall": round(grid["wall"] / tspp["wall"], 2),
        "miou_delta_vs_grid": round(100 * (tspp["mIoU"] - grid["mIoU"]), 2),
        "miou_delta_vs_grid_ci95": [
            round(100 * v, 2) for v in bootstrap_delta(counts["tspp"], counts["grid"])
        ],
        "miou_delta_random_vs_grid": round(100 * (rows["random"]["mIoU"] - grid["mIoU"]), 2)
        if "random" in rows
        else None,
        "pred_iou_thresh": cfg_used(args).prompting.pred_iou_thresh,
        "stability_score_thresh": cfg_used(args).prompting.stability_score_thresh,
        "sparse_pred_iou_thresh": cfg_used(args).prompting.sparse_pred_iou_thresh,
        "sparse_box_nms_thresh": cfg_used(args).prompting.sparse_box_nms_thresh,
        **{f"{m}_{k}": round(v, 4) for m, r in rows.items() for k, v in r.items()},
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
