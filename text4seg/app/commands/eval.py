"""``text4seg eval --dataset D --root DIR --split S --out OUT``: coarse and refined metrics of a dataset.

Writes ``OUT/per_image.csv``, ``OUT/report.json``, ``OUT/iou_histogram.png`` and
``OUT/coarse_vs_refined.png``; the last line printed is the report as one JSON object with flat
dotted keys (``n_images``, ``coarse.fgIoU``, ``coarse.F``, ``coarse.grid_IoU``, ``oracle.fgIoU``,
``refined.fgIoU``, ``refined.F``, ``parse_failure_rate``, ``seconds_per_image``, …; see
``text4seg.app.evaluation.report``). Referring datasets also get a per-kind table (colour, position,
size, content, no-target, multi-target, other) above that line, and ``by_kind`` in it. ICDAR 2015
(word quadrilaterals) also gets the word-level photo figures ``photo.word_recall``,
``photo.precision``, ``photo.grid_iou``, ``photo.empty_photos``, … (``text4seg.core.photo_metrics``).

Resumable: rerun the same command after a kill and only the missing samples are evaluated.
Sharded: under ``torchrun --nproc_per_node N -m text4seg.app.cli eval ...`` (or with ``RANK`` /
``WORLD_SIZE`` set by any launcher) process r takes samples r::N and rank 0 merges. ``--merge``
only merges a folder whose shards have finished.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from text4seg.app.commands.segment import add_model_arguments, pipeline_from_args
from text4seg.app.default_model import DEFAULT_ROOT
from text4seg.app.evaluation.kinds import kind_table
from text4seg.app.evaluation.runner import (
    EvalConfig,
    distributed_env,
    merge,
    open_samples,
    run_shard,
    wait_for_shards,
)
from text4seg.app.evaluation.samples import EVAL_DATASETS

# Printed before the JSON line, in this order, for people reading the log.
HEADLINE = (
    "n_images",
    "coarse.fgIoU",
    "coarse.F",
    "coarse.grid_IoU",
    "oracle.fgIoU",
    "refined.fgIoU",
    "refined.F",
    "coarse.cIoU",
    "refined.cIoU",
    "refined.gIoU",
    "refined.Acc@0.5",
    "parse_failure_rate",
    "repair_rate",
    "seconds_per_image",
)
# Added for datasets scored with the word-level photo metrics (ICDAR 2015); each PHOTO_COUNTS entry
# (count, total, what) reads "<count> of <total> <what>".
PHOTO_HEADLINE = ("photo.word_recall", "photo.precision", "photo.grid_iou")
PHOTO_COUNTS = (
    ("photo.words_found", "photo.words", "cared-for words"),
    ("photo.empty_photos", "photo.photos_with_words", "photos with words"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", choices=EVAL_DATASETS, required=True)
    parser.add_argument("--root", type=Path, required=True, help="dataset folder (published layout)")
    parser.add_argument("--split", required=True, help="split name, any case (e.g. Test, val, testA)")
    parser.add_argument("--out", type=Path, default=None, help="evaluation folder (default outputs/eval/…)")
    parser.add_argument("--synthetic-task", choices=("scene_text", "referring"), default="scene_text")
    parser.add_argument("--limit", type=int, default=None, help="only the first N samples")
    parser.add_argument("--merge", action="store_true", help="only merge finished shards in --out")
    parser.add_argument("--overwrite", action="store_true", help="discard earlier records in --out")
    parser.add_argument("--merge-timeout", type=float, default=24 * 3600.0, help="seconds rank 0 waits")
    add_model_arguments(parser)


def _fingerprint(path: Path) -> list:
    """Names, sizes and modification times of a checkpoint's files: a retrained model in the same
    place must not be resumed into records of the old one."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]


def _model_settings(args: argparse.Namespace) -> dict:
    model = Path(args.model) if args.model else DEFAULT_ROOT / "mllm"
    refiner = None if args.no_refine or args.refiner == "none" else (args.refiner or DEFAULT_ROOT / "refiner")
    return {
        "model": str(model.resolve()),
        "model_files": _fingerprint(model) if model.exists() else None,
        "refiner": "none" if args.no_refine else (args.refiner or "default"),
        "refiner_files": _fingerprint(Path(refiner)) if refiner and Path(refiner).exists() else None,
        "sam_checkpoint": args.sam_checkpoint,
        "refine_mode": args.refine_mode,
        "text_gate": args.text_gate,
        "points": [args.points_config, args.points_sam, args.points_prompter],
    }


def _print_report(report: dict, out: Path) -> None:
    photo = PHOTO_HEADLINE[0] in report
    for key in (*HEADLINE, *(PHOTO_HEADLINE if photo else ())):
        value = report.get(key)
        text = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"{key:>20}: {text}")
    for key, total, what in PHOTO_COUNTS if photo else ():
        print(f"{key:>20}: {report[key]} of {report[total]} {what}")
    for line in kind_table(report):
        print(line)
    print(f"report: {out / 'report.json'}, per-image: {out / 'per_image.csv'}, plots in {out}")
    print(json.dumps(report))


def _default_out(args: argparse.Namespace) -> Path:
    return Path("outputs") / "eval" / f"{args.dataset}-{args.split.lower()}"


def run(args: argparse.Namespace) -> int:
    out = args.out or _default_out(args)
    if args.merge:
        _, report = merge(out)
        _print_report(report, out)
        return 0
    rank, world_size = distributed_env()
    if args.overwrite and world_size > 1:
        raise ValueError("--overwrite with several processes would race; clear --out first")
    cfg = EvalConfig(
        dataset=args.dataset,
        root=str(args.root),
        split=args.split,
        out=str(out),
        task=args.synthetic_task,
        limit=args.limit,
        grid=args.grid,
        refine=not args.no_refine,
        constrained=not args.unconstrained,
        rank=rank,
        world_size=world_size,
        merge_timeout=args.merge_timeout,
    )
    # The dataset is opened before the model loads, so a wrong root or split is reported at once, and
    # before --overwrite discards an earlier evaluation.
    samples = open_samples(cfg)
    if args.overwrite:
        shutil.rmtree(out, ignore_errors=True)
    pipeline = pipeline_from_args(args)
    info = run_shard(pipeline, cfg, samples=samples, model=_model_settings(args))
    if rank != 0:
        print(f"shard {rank}/{world_size}: {info['new_records']} new records; rank 0 merges")
        return 0
    done = wait_for_shards(out, world_size, cfg.merge_timeout)
    records, report = merge(out, markers=list(done.values()))
    if report["error_count"]:
        print(f"warning: the pipeline failed on {report['error_count']} samples (see 'error' in the CSV)")
    _print_report(report, out)
    return 0
