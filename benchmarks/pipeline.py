"""Pipeline benchmark: per-stage latency on CPU, eval throughput with 2 processes vs 1, peak memory.

Images: a Total-Text-layout folder from the synthetic generator (held-out "eval" fonts, a seed not
used in training), written to a temporary folder. The same images serve every measurement.

1. Latency — one process, ``--threads`` torch threads: the pipeline is loaded once, warmed up on
   one image, then timed per stage (load_image, mllm, parse, refine, total) over ``--n`` images.
2. Eval throughput — ``text4seg eval`` on the same images, as one process (1 thread) and as two
   torchrun processes (1 thread each), alternated ``--repeats`` times (1, 2, 1, 2, …) so that
   load on the shared machine hits both alike. The figure compared is the evaluation wall time the
   runs report (slowest shard), which excludes interpreter start-up and model loading (printed
   separately as the end-to-end command times); ``eval_speedup_2proc`` is the ratio of the median
   walls, and every pair's own ratio is printed too.
3. Real-size photos — the same loaded pipeline, timed end to end on the ten ICDAR2015 photos of
   ``tests/fixtures/real_photos`` (1280×720, 0.9 MP) and on the same photos resized to 1600×900
   (1.4 MP): ``real_photo_seconds_per_image``. A model whose settings gate its text masks
   (``text_gate``) is also timed with the gate off, photo by photo (``real_photo_seconds_ungated``,
   ``text_gate_time_ratio``).
4. Peak RSS — ru_maxrss of this process after loading and running the pipeline on all of the above
   (MB), and of the largest eval child process.

The machine is shared, so the figures move with other load; each run prints the load average.

Run: ``.venv/bin/python benchmarks/pipeline.py [--model DIR --refiner FILE] [--n 8]``
(default: the embedded default model). Last line: one JSON object with ``seconds_per_image``,
``eval_speedup_2proc``, ``peak_rss_mb`` and the rest of the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
STAGES = ("load_image", "mllm", "parse", "refine", "total")
PHOTOS = REPO / "tests" / "fixtures" / "real_photos" / "icdar2015_toy"


def real_photos() -> list[np.ndarray]:
    """The ICDAR2015 dev photos (HWC uint8 RGB) at their size and resized to 1600×900."""
    from PIL import Image

    photos = []
    for path in sorted(PHOTOS.glob("*.jpg")):
        with Image.open(path) as im:
            rgb = im.convert("RGB")
            photos += [np.asarray(rgb), np.asarray(rgb.resize((1600, 900), Image.BICUBIC))]
    return photos


def make_images(folder: Path, *, n: int, size: int, seed: int) -> list[Path]:
    """``n`` Total-Text-layout test images (every sample in the Test split)."""

    from data_builders.synthetic.build import build
    from data_builders.synthetic.config import SyntheticConfig

    cfg = dataclasses.replace(SyntheticConfig(), size=size, fonts="eval", test_fraction=1.0)
    build(cfg, n=n, out=folder, seed=seed, layout="totaltext", workers=1)
    return sorted((folder / "Images" / "Test").iterdir())


def model_args(args) -> list[str]:
    out = []
    if args.model:
        out += ["--model", args.model]
    if args.refiner:
        out += ["--refiner", args.refiner]
    if args.grid:
        out += ["--grid", str(args.grid)]
    return out


def latency(args, images: list[Path]) -> dict:
    import torch

    from text4seg.app.pipeline import Text4SegPipeline

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    pipeline = Text4SegPipeline.from_pretrained(model=args.model, refiner=args.refiner)
    load_seconds = time.perf_counter() - start
    grid = (args.grid, args.grid) if args.grid else None
    pipeline(images[0], args.query, grid=grid)  # warm-up: first-call allocations and grammar masks
    timings = {stage: [] for stage in STAGES}
    for path in images:
        result = pipeline(path, args.query, grid=grid)
        for stage in STAGES:
            timings[stage].append(result.timings[stage])
    # A model with a text gate is also timed without it, photo by photo, so both see the same load.
    gated = pipeline.config
    settings = [gated] if gated.text_gate is None else [gated, dataclasses.replace(gated, text_gate=None)]
    photo_seconds, ungated_seconds, megapixels = [], [], []
    for photo in real_photos():
        for config, times in zip(settings, (photo_seconds, ungated_seconds), strict=False):
            pipeline.config = config
            times.append(pipeline(photo, args.query, grid=grid).timings["total"])
        megapixels.append(photo.shape[0] * photo.shape[1] / 1e6)
    pipeline.config = gated
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "model_load_seconds": load_seconds,
        "real_photo_seconds_per_image": float(np.mean(photo_seconds)),
        "real_photo_max_seconds": float(np.max(photo_seconds)),
        "real_photo_megapixels": [min(megapixels), max(megapixels)],
        "text_gate": gated.text_gate,
        "real_photo_seconds_ungated": float(np.mean(ungated_seconds)) if ungated_seconds else None,
        **{f"stage.{s}": float(np.mean(v)) for s, v in timings.items()},
        "peak_rss_mb": peak,
        "grid": list(grid or pipeline.config.grid),
    }


def run_eval(args, root: Path, out: Path, processes: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    launcher = [sys.executable, "-m", "text4seg.app.cli"]
    if processes > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                    "--master_port", "0", "-m", "text4seg.app.cli"]  # fmt: skip
    cmd = [*launcher, "eval", "--dataset", "totaltext", "--root", str(root), "--split", "Test",
           "--out", str(out), "--threads", "1", *model_args(args)]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"eval with {processes} processes failed:\n{proc.stderr[-3000:]}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    report["command_seconds"] = time.perf_counter() - start
    return report


def _metrics(report: dict) -> dict:
    """A report without its timing figures (those differ from run to run)."""
    return {k: v for k, v in report.items() if not k.startswith(("seconds", "wall", "images_per", "command"))}


def _median_run(reports: list[dict]) -> dict:
    """The run with the median eval wall time (the lower middle one for an even count)."""
    return sorted(reports, key=lambda r: r["wall_seconds"])[(len(reports) - 1) // 2]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="MLLM folder (default: the embedded default model)")
    parser.add_argument("--refiner", help="refiner checkpoint (default: the embedded default model's)")
    parser.add_argument("--n", type=int, default=8, help="images")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    parser.add_argument("--seed", type=int, default=9001, help="synthetic seed (not a training seed)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the latency run")
    parser.add_argument("--query", default="segment the text in this image")
    parser.add_argument("--grid", type=int, default=None, help="square grid (default: the model's)")
    parser.add_argument("--repeats", type=int, default=3, help="eval runs of each kind, alternated")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        tmp = Path(tmp)
        images = make_images(tmp / "data", n=args.n, size=args.size, seed=args.seed)
        lat = latency(args, images)
        ones, twos = [], []
        for r in range(args.repeats):
            ones.append(run_eval(args, tmp / "data", tmp / f"eval1-{r}", 1))
            twos.append(run_eval(args, tmp / "data", tmp / f"eval2-{r}", 2))
    children_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    one, two = _median_run(ones), _median_run(twos)
    speedup = one["wall_seconds"] / two["wall_seconds"]
    same = len({json.dumps(_metrics(rep), sort_keys=True) for rep in ones + twos}) == 1
    print(f"model: {args.model or 'default'} / refiner: {args.refiner or 'default'}; grid {lat['grid']}; "
          f"{len(images)} images of {args.size}px; load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"model load: {lat['model_load_seconds']:.2f} s")
    gate_ratio = None
    if lat["real_photo_seconds_ungated"] is not None:
        gate_ratio = lat["real_photo_seconds_per_image"] / lat["real_photo_seconds_ungated"]
    lo, hi = lat["real_photo_megapixels"]
    print(f"real photos ({lo:.1f}-{hi:.1f} MP): {lat['real_photo_seconds_per_image']:.2f} s/photo end to end "
          f"(slowest {lat['real_photo_max_seconds']:.2f} s)")  # fmt: skip
    if gate_ratio is not None:
        print(f"  the same photos without the text gate ({lat['text_gate']} px): "
              f"{lat['real_photo_seconds_ungated']:.2f} s/photo; with it {gate_ratio:.2f}x")  # fmt: skip
    for stage in STAGES:
        print(f"  {stage:>10}: {lat['stage.' + stage] * 1000:8.1f} ms/image")
    print(f"{'':>24}{'1 process':>12}{'2 processes':>14}")
    print(f"{'eval wall seconds':>24}{one['wall_seconds']:12.2f}{two['wall_seconds']:14.2f}")
    print(
        f"{'images / second':>24}{one['images_per_second_wall']:12.2f}{two['images_per_second_wall']:14.2f}"
    )
    print(f"{'command seconds':>24}{one['command_seconds']:12.2f}{two['command_seconds']:14.2f}")
    pairs = [a["wall_seconds"] / b["wall_seconds"] for a, b in zip(ones, twos, strict=True)]
    shown = ", ".join(f"{p:.2f}" for p in pairs)
    print(f"speedup {speedup:.2f}x (median walls; pair by pair {shown}); identical metrics: {same}")
    print(
        f"peak RSS: pipeline process {lat['peak_rss_mb']:.0f} MB, largest eval process {children_rss:.0f} MB"
    )
    figures = {
        "seconds_per_image": lat["stage.total"],
        **{f"seconds.{s}": lat[f"stage.{s}"] for s in STAGES if s != "total"},
        "eval_speedup_2proc": speedup,
        "eval_images_per_second_1proc": one["images_per_second_wall"],
        "eval_images_per_second_2proc": two["images_per_second_wall"],
        "eval_metrics_identical": same,
        "eval_speedup_2proc_pairs": pairs,
        "real_photo_seconds_per_image": lat["real_photo_seconds_per_image"],
        "real_photo_max_seconds": lat["real_photo_max_seconds"],
        "real_photo_megapixels": lat["real_photo_megapixels"],
        "text_gate": lat["text_gate"],
        "real_photo_seconds_ungated": lat["real_photo_seconds_ungated"],
        "text_gate_time_ratio": gate_ratio,
        "peak_rss_mb": lat["peak_rss_mb"],
        "eval_child_peak_rss_mb": children_rss,
        "n_images": len(images),
        "model": args.model or "default",
        "grid": lat["grid"],
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
