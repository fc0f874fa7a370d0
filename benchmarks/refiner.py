"""Refiner vs plain SAM of the same backbone: CPU time per image and parameter counts.

Both models get the same images and the same coarse-mask prompt; SAM runs image encoder → prompt
encoder (mask) → mask decoder → upsampling to the input size, the refiner runs its full forward
(adapters, SegFormer dense prompt, text tokens, alignment, HR head). Weights are random (timing
does not depend on them); the SAM checkpoint in the config is ignored. Each model is warmed up,
then timed over all images ``--repeats`` times and the median pass is kept. FLOPs are also
counted (torch's FlopCounterMode on meta tensors), which does not depend on the machine's load.

    python benchmarks/refiner.py --config configs/refiner/tiny.yaml --images 4

The last line is one JSON object: refiner_vs_sam_time_ratio, params_total, params_trainable, …
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from stsam_refiner.build import build_refiner
from stsam_refiner.config import RefinerConfig
from stsam_refiner.model import count_parameters
from stsam_refiner.sam_backbone import build_sam

REPO = Path(__file__).resolve().parents[1]


def sam_forward(sam, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Plain SAM on one preprocessed image with a mask prompt → 1×1×S×S logits."""
    embedding = sam.image_encoder(image)
    sparse, dense = sam.prompt_encoder(points=None, boxes=None, masks=mask)
    low, _ = sam.mask_decoder(
        image_embeddings=embedding,
        image_pe=sam.prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=False,
    )
    return F.interpolate(low, size=image.shape[-2:], mode="bilinear", align_corners=False)


def refiner_forward(model, image: torch.Tensor, mask: torch.Tensor, description: str | None) -> torch.Tensor:
    """The refiner on one preprocessed image → 1×1×S×S logits (HR head if enabled)."""
    out = model(image, mask, descriptions=[description])
    if out.hr_logits is not None:
        return out.hr_logits
    return F.interpolate(out.low_res_logits, size=image.shape[-2:], mode="bilinear", align_corners=False)


@torch.no_grad()
def count_flops(fn, *args) -> int:
    """FLOPs of one call, counted by torch's FlopCounterMode on meta tensors (no compute, load-independent)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn(*args)
    return counter.get_total_flops()


@torch.no_grad()
def time_pass(fn, images, masks) -> tuple[float, float]:
    """(CPU seconds of this process, wall seconds) for one pass over all images.

    CPU time is the headline: with one torch thread it counts only this process's work, so other
    jobs on a shared machine do not leak into the ratio the way they do into wall time.
    """
    cpu, wall = time.process_time(), time.perf_counter()
    for image, mask in zip(images, masks, strict=True):
        fn(image[None], mask[None])
    return time.process_time() - cpu, time.perf_counter() - wall


def report(*, args, notes: list[str], size: int, times: dict, flops: dict, params: dict) -> None:
    """Side-by-side table, then one JSON line. times: name → (CPU s, wall s) per pass."""
    n = args.images
    (sam_cpu, sam_wall), (ref_cpu, ref_wall) = times["sam"], times["refiner"]
    print(f"{'':24}{'SAM':>14}{'refiner':>14}")
    print(f"{'CPU ms / image':24}{1000 * sam_cpu / n:14.1f}{1000 * ref_cpu / n:14.1f}")
    print(f"{'wall ms / image':24}{1000 * sam_wall / n:14.1f}{1000 * ref_wall / n:14.1f}")
    print(f"{'GFLOPs / image':24}{flops['sam'] / 1e9:14.2f}{flops['refiner'] / 1e9:14.2f}")
    print(f"{'parameters':24}{params['sam']:14,}{params['total']:14,}")
    print(f"{'trainable parameters':24}{'':>14}{params['trainable']:14,}")
    figures = {
        "config": Path(args.config).name,
        "image_size": size,
        "images": n,
        "threads": args.threads,
        "sam_ms_per_image": round(1000 * sam_cpu / n, 2),
        "refiner_ms_per_image": round(1000 * ref_cpu / n, 2),
        "refiner_vs_sam_time_ratio": round(ref_cpu / sam_cpu, 3),
        "refiner_vs_sam_wall_ratio": round(ref_wall / sam_wall, 3),
        "refiner_vs_sam_flops_ratio": round(flops["refiner"] / flops["sam"], 3),
        "sam_gflops": round(flops["sam"] / 1e9, 2),
        "refiner_gflops": round(flops["refiner"] / 1e9, 2),
        "params_total": params["total"],
        "params_trainable": params["trainable"],
        "sam_params_total": params["sam"],
        "notes": notes,
    }
    print(json.dumps(figures))


def measure(sam, model, args) -> dict[str, tuple[float, float]]:
    """Median (CPU s, wall s) per pass over the same random images, SAM and refiner interleaved."""
    size, mask_size = model.cfg.sam.image_size, model.cfg.sam.mask_size
    images = [sam.preprocess(torch.rand(3, size, size) * 255) for _ in range(args.images)]
    masks = [torch.randn(1, mask_size, mask_size) * 6.9 for _ in range(args.images)]
    text = "medium red text in a bold font" if args.description else None
    runs = {
        "sam": lambda image, mask: sam_forward(sam, image, mask),
        "refiner": lambda image, mask: refiner_forward(model, image, mask, text),
    }
    for run in runs.values():
        time_pass(run, images[:1], masks[:1])  # warm-up
    passes: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        # Interleaved so both see the same machine load.
        for name, run in runs.items():
            passes[name].append(time_pass(run, images, masks))
    return {
        name: (statistics.median(t[0] for t in ts), statistics.median(t[1] for t in ts))
        for name, ts in passes.items()
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "refiner" / "tiny.yaml"))
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--description", action="store_true", help="give each image a description to encode")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = RefinerConfig.from_yaml(
        args.config, overrides={"sam.checkpoint": None, "dense_prompt.pretrained": None}
    )
    notes = []
    tp = cfg.text_prompt
    if tp.enabled and tp.encoder != "minilm" and not (tp.encoder_path and Path(tp.encoder_path).exists()):
        # No local CLIP weights: time with the offline MiniLM (sentence embeddings are cached either
        # way, so only TextAffine's input width changes).
        notes.append(f"text encoder {tp.encoder} not available locally; timed with minilm")
        cfg = cfg.with_overrides({"text_prompt.encoder": "minilm", "text_prompt.encoder_path": None})
    model, _ = build_refiner(cfg)
    model.eval()
    sam, _ = build_sam(cfg.sam)
    sam.eval()
    size, mask_size = cfg.sam.image_size, cfg.sam.mask_size
    times = measure(sam, model, args)
    total, trainable = count_parameters(model)
    sam_total, _ = count_parameters(sam)
    model.to("meta"), sam.to("meta")
    x, m = (
        torch.zeros(1, 3, size, size, device="meta"),
        torch.zeros(1, 1, mask_size, mask_size, device="meta"),
    )
    sam_flops = count_flops(sam_forward, sam, x, m)
    refiner_flops = count_flops(refiner_forward, model, x, m, None)
    if args.threads != 1:
        notes.append("several threads: CPU time sums over threads")
    report(
        args=args,
        notes=notes,
        size=size,
        times=times,
        flops={"sam": sam_flops, "refiner": refiner_flops},
        params={"sam": sam_total, "total": total, "trainable": trainable},
    )


if __name__ == "__main__":
    main()
