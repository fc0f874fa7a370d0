"""Dataset figures from per-sample records: the JSON report, the per-image CSV and the plots.

Report keys are flat and dotted (``"coarse.fgIoU"``, ``"refined.F"``, ``"oracle.fgIoU"``,
``"coarse.grid_IoU"``…), the same in ``report.json`` and in the last line ``text4seg eval`` prints.
For each mask source (coarse, refined, oracle = ground-truth grid upsampled) the report holds the
scene-text figures (fgIoU, F, P, R: ``SceneTextMeter``), the referring ones (cIoU, gIoU:
``ReferringMeter``) and REC's Acc@0.5 (``RecMeter``); which ones matter depends on the dataset.
Referring datasets add ``by_kind`` (expression kind → ``n`` and each source's cIoU, gIoU, Acc@0.5)
and gRefCOCO's ``<source>.N-acc`` / ``<source>.T-acc`` (``text4seg.app.evaluation.kinds``).
Datasets with word polygons (ICDAR 2015) add ``photo.<figure>`` for every ``PhotoSummary`` field
(``photo.word_recall``, ``photo.precision``, ``photo.grid_iou``, ``photo.words``, ``photo.empty_photos``…,
``text4seg.core.photo_metrics``), pooled from the per-photo counts, and their ``per_image.csv`` ends
with those counts (``PHOTO_CSV_COLUMNS``).
Keys starting with ``seconds`` / ``wall`` / ``images_per_second`` are timings; everything else is a
pure function of the records, so it is identical however the run was split or resumed.
"""

from __future__ import annotations

import csv
import json
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from text4seg.app.evaluation.kinds import by_kind, kinds_of, target_accuracies
from text4seg.app.evaluation.plots import plot_iou_histogram, plot_iou_scatter
from text4seg.app.evaluation.scoring import MASK_SOURCES, merged_meters, photo_summary
from text4seg.core.photo_metrics import PhotoScore

TIMING_PREFIXES = ("seconds", "wall", "images_per_second")
CSV_COLUMNS = (
    "index",
    "id",
    "task",
    "query",
    "kinds",
    "coarse_IoU",
    "refined_IoU",
    "oracle_IoU",
    "grid_IoU",
    "gt_pixels",
    "parse_failed",
    "repairs",
    "refined_called",
    "seconds",
    "error",
)
PHOTO_CSV_COLUMNS = tuple(f.name for f in fields(PhotoScore))
"""Appended to ``CSV_COLUMNS`` when the records have word counts (ICDAR 2015): the sample's
``PhotoScore`` (words, words_found, dont_care, predicted, predicted_near_text, area, grid_intersection,
grid_union, has_text), what ``photo.*`` in the report pools."""


def metrics_only(report: dict[str, Any]) -> dict[str, Any]:
    """The report without its timing keys (what must match across shardings and resumes)."""
    return {k: v for k, v in report.items() if not k.startswith(TIMING_PREFIXES)}


def compute_report(records: list[dict[str, Any]], *, wall_seconds: float | None = None) -> dict[str, Any]:
    """Flat report from records sorted by sample index (see the module docstring for the keys)."""
    n = len(records)
    report: dict[str, Any] = {"n_images": n}
    meters = merged_meters(records)
    for source in MASK_SOURCES:
        scene = meters[source]["scene"].result()
        for key in ("fgIoU", "F", "P", "R"):
            report[f"{source}.{key}"] = scene[key]
        referring = meters[source]["referring"].result()
        report[f"{source}.cIoU"], report[f"{source}.gIoU"] = referring["cIoU"], referring["gIoU"]
        report[f"{source}.Acc@0.5"] = meters[source]["rec"].result()["Acc@0.5"]
    report["coarse.grid_IoU"] = meters["grid"]["scene"].result()["fgIoU"]
    photos = photo_summary(records)
    if photos is not None:
        report.update({f"photo.{key}": value for key, value in photos.to_json().items()})
    report["parse_failure_rate"] = _mean([r["parse_failed"] for r in records])
    report["repair_rate"] = _mean([bool(r["repairs"]) for r in records])
    report["repairs_per_image"] = _mean([len(r["repairs"]) for r in records])
    report["refine_call_rate"] = _mean([r["refined_called"] for r in records])
    report["error_count"] = sum(1 for r in records if r.get("error"))
    report["tasks"] = dict(sorted(_count(r["task"] for r in records).items()))
    kinds = by_kind(records)
    if kinds is not None:
        report.update(target_accuracies(records))
        report["by_kind"] = kinds
    report["seconds_per_image"] = _mean([r["seconds"].get("total", 0.0) for r in records])
    for stage in ("mllm", "parse", "refine"):
        report[f"seconds_per_image.{stage}"] = _mean([r["seconds"].get(stage, 0.0) for r in records])
    if wall_seconds is not None:
        report["wall_seconds"] = wall_seconds
        report["images_per_second_wall"] = n / wall_seconds if wall_seconds > 0 else None
    return report


def _mean(values) -> float:
    values = list(values)
    return float(np.mean(values)) if values else 0.0


def _count(items) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out


def csv_rows(records: list[dict[str, Any]]):
    """One dict per record, keyed by ``CSV_COLUMNS`` plus ``PHOTO_CSV_COLUMNS`` when it has photo counts."""
    for r in records:
        yield {
            "index": r["index"],
            "id": r["id"],
            "task": r["task"],
            "query": r["query"],
            "kinds": "+".join(kinds_of(r)),
            "coarse_IoU": r["iou"]["coarse"],
            "refined_IoU": r["iou"]["refined"],
            "oracle_IoU": r["iou"]["oracle"],
            "grid_IoU": r["iou"]["grid"],
            "gt_pixels": r["gt_pixels"],
            "parse_failed": int(r["parse_failed"]),
            "repairs": len(r["repairs"]),
            "refined_called": int(r["refined_called"]),
            "seconds": r["seconds"].get("total", 0.0),
            "error": r.get("error") or "",
            **_photo_cells(r.get("photo")),
        }


def _photo_cells(counts: dict[str, Any] | None) -> dict[str, Any]:
    """A record's photo counts as CSV cells: has_text 0/1, a missing grid count empty."""
    if counts is None:
        return {}
    cells = {key: "" if counts[key] is None else counts[key] for key in PHOTO_CSV_COLUMNS}
    cells["has_text"] = int(counts["has_text"])
    return cells


def write_report(folder: Path, records: list[dict[str, Any]], report: dict[str, Any]) -> dict[str, Path]:
    """Write per_image.csv, report.json and the plots into ``folder``; returns their paths."""

    folder = Path(folder)
    paths = {"csv": folder / "per_image.csv", "json": folder / "report.json"}
    with open(paths["csv"], "w", newline="", encoding="utf-8") as f:
        photos = any("photo" in r for r in records)
        writer = csv.DictWriter(f, fieldnames=(*CSV_COLUMNS, *(PHOTO_CSV_COLUMNS if photos else ())))
        writer.writeheader()
        writer.writerows(csv_rows(records))
    paths["json"].write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    coarse = [r["iou"]["coarse"] for r in records]
    refined = [r["iou"]["refined"] for r in records]
    paths["histogram"] = plot_iou_histogram(coarse, refined, folder / "iou_histogram.png")
    paths["scatter"] = plot_iou_scatter(coarse, refined, folder / "coarse_vs_refined.png")
    return paths
