"""benchmarks/referring_kinds.py: an evaluation's records grouped by the kind the exporter stored."""

import json

import numpy as np
import pytest

from benchmarks import referring_kinds
from text4seg.app.evaluation.records import RecordWriter
from text4seg.app.evaluation.samples import EvalSample
from text4seg.app.evaluation.scoring import score_sample


class _Result:
    grid = [["others"] * 2] * 2

    def __init__(self, mask):
        self._mask = mask

    def mask(self, *, refined=True):
        return self._mask


def _box(y0, y1, x0, x1):
    out = np.zeros((8, 8), bool)
    out[y0:y1, x0:x1] = True
    return out


def _write_set(root, kinds):
    (root / "grefcoco").mkdir(parents=True)
    refs = [{"ref_id": i + 1, "kind": kind} for i, kind in enumerate(kinds)]
    (root / "grefcoco" / "grefs(unc).json").write_text(json.dumps(refs))


def test_records_are_grouped_by_the_stored_kind(tmp_path, capsys):
    _write_set(tmp_path / "set", ["extreme", "position", "extreme"])
    # (ref id, query, ground truth, prediction): IoU 1, 0 and 0.5
    samples = [
        (1, "the topmost text", _box(0, 2, 0, 8), _box(0, 2, 0, 8)),
        (2, "the text at the top", _box(0, 2, 0, 4), _box(6, 8, 0, 4)),
        (3, "the leftmost word", _box(0, 8, 0, 2), _box(0, 8, 0, 4)),
    ]
    with RecordWriter(tmp_path / "eval", rank=0) as writer:
        for index, (ref_id, query, gt, pred) in enumerate(samples):
            sample = EvalSample(index, f"grefcoco/val/{ref_id}/{ref_id}", np.zeros((8, 8, 3), np.uint8), gt, None,
                                "referring", query, 1)  # fmt: skip
            record = score_sample(sample, _Result(pred), grid=(2, 2), rule="area", threshold=0.03)
            writer.write(
                {"id": sample.sample_id, "index": index, "task": "referring", "query": query, **record}
            )
    referring_kinds.main(["--root", str(tmp_path / "set"), "--eval", str(tmp_path / "eval")])
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(figures) == ["extreme", "position", "overall"]
    assert figures["extreme"] == {"n": 2, "refined.cIoU": (16 + 16) / (16 + 32), "refined.gIoU": 0.75,
                                  "refined.Acc@0.5": 0.5}  # fmt: skip
    assert figures["position"]["refined.cIoU"] == 0.0 and figures["overall"]["n"] == 3


def test_a_set_without_stored_kinds_is_refused(tmp_path):
    (tmp_path / "grefcoco").mkdir()
    (tmp_path / "grefcoco" / "grefs(unc).json").write_text(json.dumps([{"ref_id": 1}]))
    with pytest.raises(SystemExit, match="store no kind"):
        referring_kinds.generator_kinds(tmp_path)
    with pytest.raises(SystemExit, match="not found"):
        referring_kinds.generator_kinds(tmp_path / "missing")
