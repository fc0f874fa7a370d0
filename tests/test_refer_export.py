"""The synthetic corpus written in REFER / gRefCOCO layouts reads back through the project's readers."""

import numpy as np
import pytest

from data_builders.readers import build_reader
from data_builders.synthetic import SyntheticConfig
from data_builders.synthetic.build import build
from data_builders.synthetic.phrasings import pool
from data_builders.synthetic.refer_export import export
from data_builders.synthetic.writers import decode_rle


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("refer")
    cfg = SyntheticConfig(size=96, p_no_text=0.0, max_instances=4, phrasings="heldout")
    rows = list(build(cfg, n=16, out=root / "arrow", seed=3, workers=1))
    counts = export(root / "arrow", root / "layout", split="val")
    return rows, counts, root / "layout"


def test_every_expression_reads_back_with_its_targets_union_as_the_mask(exported):
    rows, counts, layout = exported
    expressions = [(row, e) for row in rows for e in row["referring"]]
    assert counts["grefs"] == len(expressions) and counts["images"] == len(rows)
    records = list(build_reader("grefcoco", root=layout).records("val"))
    assert len(records) == len(expressions)
    for record, (row, expr) in zip(records, expressions, strict=True):
        masks = [decode_rle(m) for m in row["instance_masks"]]
        expected = np.zeros(np.asarray(row["mask"]).shape, bool)
        for i in expr["targets"]:
            expected |= masks[i]
        assert record.text == expr["sentence"]
        assert np.array_equal(record.mask, expected)
        assert np.array_equal(record.image, np.asarray(row["image"].convert("RGB")))
    assert any(not e["targets"] for _, e in expressions)  # no-target expressions are in the set


def test_single_target_expressions_read_through_the_refcoco_reader(exported):
    rows, counts, layout = exported
    single = [e for row in rows for e in row["referring"] if len(e["targets"]) == 1]
    records = list(build_reader("refcoco", root=layout).records("val"))
    assert counts["refs"] == len(single) == len(records) > 0
    assert [r.text for r in records] == [e["sentence"] for e in single]
    heldout = {t for kind in ("content", "colour", "position", "extreme", "largest", "smallest", "plate", "curved")
               for t in pool(kind, "heldout")}  # fmt: skip
    assert all(any(_matches(r.text, t) for t in heldout) for r in records)


def _matches(sentence: str, template: str) -> bool:
    head, _, tail = template.partition("{")
    tail = tail.partition("}")[2]
    return sentence.startswith(head) and sentence.endswith(tail)
