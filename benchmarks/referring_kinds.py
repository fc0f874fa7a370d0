"""A referring evaluation's figures per *generator* kind, for sets made by this project's exporter.

``text4seg eval`` reports per expression kind read from the sentence (``text4seg.core.expressions``:
"the topmost text" and "the text at the top" are both *position*). A set written by
``python -m data_builders.synthetic.refer_export`` also stores, per ref, the rule that made it
(``data_builders.synthetic.referring.KINDS``: ``position`` is a 3×3 region, ``extreme`` the word
furthest towards a side, ``largest``, ``colour_multi``, ``none_colour``, …). This groups the records
of a finished ``text4seg eval --dataset grefcoco`` run by that stored kind, with the same merging the
evaluation's own per-kind table uses (``text4seg.app.evaluation.kinds.kind_figures``).

Run: ``python benchmarks/referring_kinds.py --root DIR --eval OUT``: DIR the exported set, OUT the
``--out`` folder of ``text4seg eval --dataset grefcoco --root DIR``. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from text4seg.app.evaluation.kinds import kind_figures
from text4seg.app.evaluation.records import read_records

_FIGURES = ("refined.cIoU", "refined.gIoU", "refined.Acc@0.5")


def generator_kinds(root: Path) -> dict[int, str]:
    """ref_id → the kind its exporter stored (``grefcoco/grefs(unc).json``)."""
    path = root / "grefcoco" / "grefs(unc).json"
    if not path.is_file():
        raise SystemExit(
            f"{path} not found: --root must be a set written by data_builders.synthetic.refer_export"
        )
    refs = json.loads(path.read_text())
    missing = [r["ref_id"] for r in refs if "kind" not in r]
    if missing:
        raise SystemExit(
            f"{len(missing)} refs of {path} store no kind (e.g. ref {missing[0]}): not an exported set"
        )
    return {int(r["ref_id"]): r["kind"] for r in refs}


def by_generator_kind(records: list[dict], kinds: dict[int, str]) -> dict[str, dict]:
    """kind → ``kind_figures`` of its records, plus ``overall`` (every record); records are matched by the ref id in their
    sample id (``grefcoco/<split>/<ref_id>/<sent_id>``)."""
    groups: dict[str, list[dict]] = {}
    for record in records:
        ref_id = int(record["id"].split("/")[2])
        if ref_id not in kinds:
            raise SystemExit(f"record {record['id']} names ref {ref_id}, which the set does not hold")
        groups.setdefault(kinds[ref_id], []).append(record)
    order = sorted(groups, key=lambda k: (-len(groups[k]), k))
    return {kind: kind_figures(groups[kind]) for kind in order} | {"overall": kind_figures(records)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="set written by refer_export")
    parser.add_argument("--eval", type=Path, required=True, help="--out folder of a finished text4seg eval")
    args = parser.parse_args(argv)
    records = [r for r in read_records(args.eval) if r["id"].startswith("grefcoco/")]
    if not records:
        raise SystemExit(f"no grefcoco records under {args.eval}/records")
    table = by_generator_kind(records, generator_kinds(args.root))
    print(f"{'kind':14s} {'n':>4s} " + " ".join(f"{f:>16s}" for f in _FIGURES))
    for kind, figures in table.items():
        cells = " ".join(f"{figures[f]:16.3f}" if figures[f] is not None else f"{'—':>16s}" for f in _FIGURES)
        print(f"{kind:14s} {figures['n']:4d} {cells}")
    print(json.dumps({kind: {f: figures[f] for f in ("n", *_FIGURES)} for kind, figures in table.items()}))


if __name__ == "__main__":
    main()
