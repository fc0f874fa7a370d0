"""The parser on hostile text (issue 17): never raises, grid exactly the size asked for, capped when no
size is given, fast and small on megabyte answers, repair list bounded."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pipeline_support import REPO, subprocess_env

from text4seg.app.cli import main
from text4seg.core.parser import (
    MAX_INFERRED_HEIGHT,
    MAX_INFERRED_WIDTH,
    MAX_LISTED_REPAIRS,
    MAX_REPAIRS,
    _split_run,
    parse_answer,
)

MB = 2**20


def _kinds(parsed) -> list[str]:
    return [r.kind for r in parsed.repairs]


@pytest.mark.parametrize("digits", ["²", "③", "₂", "٣", "１２", "2²"])
def test_counts_in_non_ascii_digits_are_read_as_one(digits):
    # All pass str.isdigit(); int() rejects the first three and the last ("invalid literal").
    parsed = parse_answer(f"<seg>text *{digits}| others *3\n</seg>", height=1, width=4)
    assert parsed.grid == [["text", "others", "others", "others"]]
    assert _kinds(parsed) == ["bad_count"]


def test_counts_of_thousands_of_digits_are_capped_not_refused():
    # Over 4,300 digits int() raises "Exceeds the limit"; the count is simply wider than any row.
    parsed = parse_answer("<seg>others *1| text *" + "7" * 5000 + "\n</seg>", height=1, width=6)
    assert parsed.grid == [["others"] + ["text"] * 5]
    assert _kinds(parsed) == ["count_capped", "row_truncated"]
    zeros = parse_answer("<seg>text *" + "0" * 5000 + "\n</seg>", height=1, width=2)
    assert zeros.grid == [["text", "text"]] and _kinds(zeros) == ["bad_count", "row_padded"]


def test_unsized_answer_is_capped_in_rows_and_columns():
    text = "x *4096\n" * 20000  # 160 KB; used to build a 20000×4096 grid (1.1 GB, 4 s)
    tracemalloc.start()
    start = time.perf_counter()
    parsed = parse_answer(text)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert (parsed.height, parsed.width) == (MAX_INFERRED_HEIGHT, MAX_INFERRED_WIDTH)
    assert peak < 10 * MB and seconds < 1.0, (peak, seconds)
    assert "extra_rows" in _kinds(parsed) and "count_capped" in _kinds(parsed)
    wide = parse_answer("x *4096| y *5")  # one over the cap used to slip through (4097 wide)
    assert wide.width == MAX_INFERRED_WIDTH and wide.grid == [["x"] * MAX_INFERRED_WIDTH]
    assert _kinds(wide) == ["no_seg_tag", "count_capped", "row_truncated"]


def test_long_full_descriptor_row_is_cut_at_the_cap():
    parsed = parse_answer("<seg>" + "| ".join(["text"] * 5000) + "\n</seg>")
    assert (parsed.height, parsed.width) == (1, MAX_INFERRED_WIDTH)
    assert _kinds(parsed) == ["row_truncated"]


@pytest.mark.parametrize(
    "text",
    [
        "|" * MB,
        "|\n" * (MB // 2),
        "*5|" * (MB // 3),
        "\n" * MB,
        "* " * (MB // 2),
        "<seg>a" + " " * MB + "*x y",
    ],
    ids=["pipes", "pipe-lines", "label-less-runs", "newlines", "stars", "spaces-before-star"],
)
def test_megabyte_floods_are_fast_and_their_repairs_bounded(text):
    start = time.perf_counter()
    parsed = parse_answer(text, height=16, width=16)
    seconds = time.perf_counter() - start
    assert seconds < 1.0, seconds  # typically ~0.03 s; the pipe flood took 1.6 s and 125 MB before
    assert (parsed.height, parsed.width) == (16, 16)
    assert len(parsed.repairs) <= MAX_LISTED_REPAIRS
    if parsed.repairs_dropped:
        assert parsed.repairs[-1].kind == "repairs_dropped"
        assert parsed.repairs[-1].detail == f"{parsed.repairs_dropped} more row repairs not listed"


def test_repair_list_keeps_the_first_ones_and_counts_the_rest():
    parsed = parse_answer("<seg>" + "*5| " * 300 + "text *2\n</seg>", height=1, width=2)
    assert parsed.grid == [["text", "text"]]
    assert len(parsed.repairs) == MAX_REPAIRS + 1
    assert _kinds(parsed)[:MAX_REPAIRS] == ["bad_run"] * MAX_REPAIRS
    assert parsed.repairs_dropped == 200  # one bad_run per label-less run, plus nothing else


def test_repair_details_are_short_for_huge_runs():
    parsed = parse_answer("<seg>" + "a" * MB + " *x\n</seg>", height=1, width=1)
    assert max(len(r.detail) for r in parsed.repairs) < 200


# The run syntax the parser had before this rewrite, as a regex (it backtracks quadratically on
# long spaces before a star, hence the string-operation version).
_REFERENCE_RUN_RE = re.compile(r"^(?P<label>.*?)\s*\*\s*(?P<count>\S*)$", re.DOTALL)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="ab *\t\u3000\x1c19", min_size=1, max_size=12).map(str.strip).filter(bool))
def test_run_split_matches_the_reference_regex(piece):
    match = _REFERENCE_RUN_RE.match(piece)
    expected = None if match is None else (match["label"].strip(), match["count"])
    assert _split_run(piece) == expected


def test_codec_decode_of_hostile_answers_exits_cleanly(tmp_path, capsys):
    answer = tmp_path / "answer.txt"
    answer.write_text(
        "<seg>text *²| others *" + "9" * 5000 + "\n" + "|" * 100_000 + "\n</seg>", encoding="utf-8"
    )
    assert main(["codec", "decode", str(answer), "--grid", "4", "--out", str(tmp_path / "o")]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["labels"] == ["others", "text"] and not report["failed"]
    assert {"bad_count", "count_capped", "empty_run"} <= {r["kind"] for r in report["repairs"]}


def test_fuzz_script_every_family_seeded():
    """benchmarks/fuzz_parser.py on 3,500 strings of all families (a few of 0.5–1 MB)."""
    cmd = [sys.executable, "benchmarks/fuzz_parser.py", "--n", "3500", "--big-every", "350", "--seed", "3"]
    proc = subprocess.run(cmd, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["exceptions"] == 0, result["exception_examples"]
    assert result["grid_size_ok"] and result["repairs_bounded"]
    assert set(result["families"]) == {
        "unicode_digits", "huge_counts", "unsized_rows", "wide_rows", "floods", "junk", "mutated"
    }  # fmt: skip
    assert result["longest_input_chars"] > MB // 2
    assert result["slowest_call_s"] < 1.0 and result["unsized_20000_rows_mb"] < 100
