"""The README's main job with the embedded default model: `text4seg segment IMAGE --query "segment the
text in this image" --out DIR` on the shipped example, examples/coffee_signs.png (a synthetic scene
in held-out fonts, seed 777 — never used in training), exactly as scripts/demo.sh runs it.

This fails, and never skips, when ``text4seg/app/assets/default/`` is missing: the model ships with the
package, so a missing model is a broken install.
"""

from __future__ import annotations

import json

import numpy as np
from PIL import Image
from pipeline_support import REPO, run_module


def test_readme_main_job_segments_an_example_with_the_default_model(tmp_path):
    image = REPO / "examples" / "coffee_signs.png"
    out = tmp_path / "demo"
    # No --model / --refiner: the embedded default model, loaded with no network (run_module sets
    # HF_HUB_OFFLINE); a missing default model makes this command exit 2 and the test fail.
    proc = run_module("text4seg.app.cli", "segment", str(image), "--query", "segment the text in this image",
                      "--out", str(out))  # fmt: skip
    assert "segmented 1/1 images, 0 failed" in proc.stdout
    record = json.loads((out / f"{image.stem}.json").read_text())
    settings = json.loads(
        (REPO / "text4seg" / "app" / "assets" / "default" / "mllm" / "inference.json").read_text()
    )
    assert record["task"] == "scene_text" and not record["parse_failed"] and record["repairs"] == []
    assert len(record["grid"].strip().split("\n")) == settings["grid"][0]  # answered at the model's own grid
    photo = np.asarray(Image.open(image).convert("RGB"))
    overlay = np.asarray(Image.open(out / f"{image.stem}.overlay.png"))
    mask = np.asarray(Image.open(out / f"{image.stem}.mask.png")) > 127
    assert overlay.shape == photo.shape and mask.shape == photo.shape[:2]
    assert int(mask.sum()) == record["refined_area"]["text"]
    # The overlay is the photo exactly where nothing was found, and tinted wherever text was.
    assert (overlay[~mask] == photo[~mask]).all()
    assert mask.any(), "the default model found no text in the example"
    # A pixel already in the tint's colour may stay as it was, hence the margin.
    assert (overlay[mask] != photo[mask]).any(axis=-1).mean() > 0.9
