"""The `text4seg codec` commands, run through the real entry point."""

import json
import subprocess
import sys

import numpy as np
from PIL import Image

from text4seg.app.cli import main
from text4seg.core.parser import parse_answer


def test_demo_writes_overlay_and_a_parseable_answer(tmp_path):
    assert main(["codec", "demo", "--out", str(tmp_path)]) == 0
    overlay = np.asarray(Image.open(tmp_path / "overlay.png"))
    assert overlay.shape == (172, 448, 3)
    parsed = parse_answer((tmp_path / "answer.txt").read_text(), height=16, width=16)
    assert parsed.repairs == [] and 10 < parsed.mask("text").sum() < 200


def test_encode_then_decode_round_trips_a_mask(tmp_path, capsys):
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[8:24, 16:48] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    assert main(["codec", "encode", str(tmp_path / "m.png"), "--grid", "8", "--label", "sign"]) == 0
    answer = capsys.readouterr().out
    assert "sign *4" in answer and answer.rstrip().endswith("</seg>")
    (tmp_path / "answer.txt").write_text(answer)
    assert (
        main(
            [
                "codec",
                "decode",
                str(tmp_path / "answer.txt"),
                "--grid",
                "8",
                "--size",
                "64",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 0
    )
    decoded = np.asarray(Image.open(tmp_path / "o" / "mask_1.png")) > 0
    assert (decoded == (mask > 0)).all()
    assert json.loads((tmp_path / "o" / "parse.json").read_text())["repairs"] == []


def test_console_script_reports_a_missing_file_cleanly(tmp_path):
    exe = [sys.executable, "-m", "text4seg.app.cli", "codec", "encode", str(tmp_path / "nope.png")]
    result = subprocess.run(exe, capture_output=True, text=True)
    assert result.returncode == 2
    assert "nope.png" in result.stderr and "Traceback" not in result.stderr
