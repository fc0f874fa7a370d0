"""``text4seg chat``: a scripted session piped through a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from PIL import Image
from pipeline_support import REPO, random_image, subprocess_env, tiny_checkpoints


def test_scripted_session_switches_images_and_saves_every_turn(tmp_path):
    Image.fromarray(random_image(40, 60, 1)).save(tmp_path / "first.png")
    Image.fromarray(random_image(24, 80, 2)).save(tmp_path / "second.jpg")
    ckpt = tiny_checkpoints()
    script = "\n".join(
        [
            "segment the text",  # no image yet
            f"/image {tmp_path / 'missing.png'}",
            f"/image {tmp_path / 'first.png'}",
            "segment the text in this image",
            "/bogus",
            f"/image {tmp_path / 'second.jpg'}",
            "the red word",
            "/quit",
            "never read",
        ]
    )
    out = tmp_path / "chat"
    proc = subprocess.run(
        [sys.executable, "-m", "text4seg.app.cli", "chat", "--out", str(out), "--model", str(ckpt.mllm),
         "--refiner", str(ckpt.refiner), "--grid", "4", "--threads", "1"],
        input=script + "\n", cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout
    assert "no image yet" in lines
    assert "missing.png: no such image file" in lines
    assert "image: " in lines and "(60x40)" in lines and "(80x24)" in lines
    assert "unknown command '/bogus'" in lines
    assert "bye (2 turns saved" in lines
    turns = [json.loads(line) for line in (out / "session.jsonl").read_text().splitlines()]
    assert [(t["turn"], t["task"], t["image_size"]) for t in turns] == [
        (1, "scene_text", [40, 60]),
        (2, "referring", [24, 80]),
    ]
    assert turns[1]["labels"] in ([], ["the red word"])
    assert np.asarray(Image.open(out / "turn-002.overlay.png")).shape == (24, 80, 3)
    assert (out / "turn-001.mask.png").is_file() and (out / "turn-001.json").is_file()
