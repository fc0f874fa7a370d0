"""Referring figures per expression kind, and gRefCOCO's N-acc / T-acc, from per-sample records.

Each referring record carries its kinds (``text4seg.core.expressions.sample_kinds``: colour, position,
size, content, no-target, multi-target, other; they overlap). ``by_kind`` merges the meter states of
the records of each kind, in sample order, exactly as the overall figures merge all records, so the
figures of a kind are what the overall ones would be on that subset:

- cIoU = Σ I / Σ U and gIoU = mean per-sample IoU, where a sample with an empty ground truth scores
  IoU 1 when the prediction is empty too and 0 otherwise (gRefCOCO / ReLA); Acc@0.5 counts that
  sample a hit on the same condition. On the no-target kind gIoU and Acc@0.5 therefore both equal
  N-acc, and cIoU is 0 as soon as one prediction there is not empty (nothing can intersect).
- N-acc = no-target samples predicted empty / no-target samples; T-acc = samples with a target whose
  prediction is not empty / samples with a target (gRefCOCO's definitions, with "the prediction is
  empty" standing for the no-target flag ReLA predicts with a separate head). None when there is no
  such sample.

Records written before kinds were recorded get them from their query and ground-truth size (without
the dataset's target count), so an older evaluation folder still merges.
"""

from __future__ import annotations

from typing import Any

from text4seg.app.evaluation.scoring import MASK_SOURCES, merged_meters, record_kinds
from text4seg.core.expressions import SAMPLE_KINDS

KIND_FIGURES = ("cIoU", "gIoU", "Acc@0.5")
"""Per mask source, in every ``by_kind`` entry as ``"<source>.<figure>"`` (plus ``n``)."""


def kinds_of(record: dict[str, Any]) -> tuple[str, ...]:
    """The kinds recorded for a sample (or, for an older record, derived from its query)."""
    if "kinds" in record:
        return tuple(record["kinds"])
    return record_kinds(record["task"], record["query"], record["gt_pixels"])


def predicted_pixels(record: dict[str, Any], source: str) -> int:
    """Foreground pixels of the record's ``source`` prediction: |P| = I + (U − |G|)."""
    state = record["meters"][source]["referring"]
    return int(state["intersection"]) + int(state["union"]) - int(record["gt_pixels"])


def kind_figures(records: list[dict[str, Any]]) -> dict[str, Any]:
    """``n`` and ``<source>.<figure>`` for every mask source over ``records`` (None when empty)."""
    out: dict[str, Any] = {"n": len(records)}
    meters = merged_meters(records) if records else None
    for source in MASK_SOURCES:
        referring = meters[source]["referring"].result() if meters else None
        rec = meters[source]["rec"].result() if meters else None
        out[f"{source}.cIoU"] = referring["cIoU"] if referring else None
        out[f"{source}.gIoU"] = referring["gIoU"] if referring else None
        out[f"{source}.Acc@0.5"] = rec["Acc@0.5"] if rec else None
    return out


def by_kind(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]] | None:
    """kind → ``kind_figures`` of the referring records of that kind, every kind of ``SAMPLE_KINDS``
    listed (n 0 and None figures when absent); None when no record is referring."""
    referring = [r for r in records if r["task"] == "referring"]
    if not referring:
        return None
    kinds = [kinds_of(r) for r in referring]
    return {
        kind: kind_figures([r for r, ks in zip(referring, kinds, strict=True) if kind in ks])
        for kind in SAMPLE_KINDS
    }


def target_accuracies(records: list[dict[str, Any]]) -> dict[str, float | None]:
    """``<source>.N-acc`` and ``<source>.T-acc`` over the referring records (see the module docstring)."""
    referring = [r for r in records if r["task"] == "referring"]
    out: dict[str, float | None] = {}
    for source in MASK_SOURCES:
        empty = [predicted_pixels(r, source) == 0 for r in referring if r["gt_pixels"] == 0]
        found = [predicted_pixels(r, source) > 0 for r in referring if r["gt_pixels"] > 0]
        out[f"{source}.N-acc"] = sum(empty) / len(empty) if empty else None
        out[f"{source}.T-acc"] = sum(found) / len(found) if found else None
    return out


def _cell(value: float | None) -> str:
    return f"{value:7.4f}" if value is not None else f"{'-':>7}"


def kind_table(report: dict[str, Any]) -> list[str]:
    """Readable lines of a report's per-kind figures (refined, then coarse); none without ``by_kind``."""
    kinds = report.get("by_kind")
    if not kinds:
        return []
    sources = ("refined", "coarse")
    names = "  " + " ".join(f"{name:>7}" for name in KIND_FIGURES)
    lines = [
        (" " * 20 + "".join(f"  {source:^23}" for source in sources)).rstrip(),
        f"{'kind':<14}{'n':>6}" + names * len(sources),
    ]
    rows = [*kinds.items(), ("overall", {"n": report["n_images"], **report})]
    for kind, figures in rows:
        cells = "".join(
            "  " + " ".join(_cell(figures.get(f"{source}.{name}")) for name in KIND_FIGURES)
            for source in sources
        )
        lines.append(f"{kind:<14}{figures['n']:>6}{cells}")
    accuracies = "  ".join(
        f"{source}.{name}: {_cell(report.get(f'{source}.{name}')).strip()}"
        for source in sources
        for name in ("N-acc", "T-acc")
    )
    lines.append(f"gRefCOCO {accuracies}")
    return lines
