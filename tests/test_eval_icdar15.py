"""``text4seg eval --dataset icdar15`` on the real ICDAR 2015 toy photos: the word-level photo figures
are ``PhotoMeter``'s pooled figures on the very predictions the run made, are pooled from counts (not
averaged from per-photo ratios), and come out the same after a resume and from two merged shards."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from pipeline_support import tiny_checkpoints

import text4seg.app.commands.eval as eval_command
from data_builders.readers.icdar15 import Icdar15Reader, Word, WordPhoto
from text4seg.app.cli import main
from text4seg.app.evaluation.records import read_records
from text4seg.app.evaluation.report import (
    CSV_COLUMNS,
    PHOTO_CSV_COLUMNS,
    compute_report,
    metrics_only,
    write_report,
)
from text4seg.app.evaluation.samples import EvalSample, iter_samples
from text4seg.app.evaluation.scoring import score_sample
from text4seg.core.codec import BACKGROUND
from text4seg.core.photo_metrics import PhotoMeter, rasterize

torch.set_num_threads(1)
TOY = Path(__file__).parent / "fixtures" / "real_photos" / "icdar2015_toy"
N = 6  # img_1 … img_6; img_4 and img_5 hold only don't-care words


def eval_args(out: Path, *extra: str) -> list[str]:
    ckpt = tiny_checkpoints()
    return [
        "eval", "--dataset", "icdar15", "--root", str(TOY), "--split", "Test", "--out", str(out),
        "--limit", str(N), "--model", str(ckpt.mllm), "--refiner", str(ckpt.refiner), "--grid", "4",
        "--threads", "1", *extra,
    ]  # fmt: skip


def run_eval(args: list[str]) -> tuple[dict | None, str]:
    """(the last printed line as JSON, or None when it is not JSON; everything printed)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(args) == 0
    last = buffer.getvalue().strip().splitlines()[-1]
    return (json.loads(last) if last.startswith("{") else None), buffer.getvalue()


class Recording:
    """The real pipeline, keeping every result it returns (the predictions the evaluation scored)."""

    def __init__(self, pipeline, results: list) -> None:
        self.pipeline, self.config, self.results = pipeline, pipeline.config, results

    def __call__(self, *args, **kwargs):
        result = self.pipeline(*args, **kwargs)
        self.results.append(result)
        return result


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted single-process run: (report, printed output, folder, pipeline results)."""
    out = tmp_path_factory.mktemp("eval15") / "reference"
    results: list = []
    real = eval_command.pipeline_from_args
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(eval_command, "pipeline_from_args", lambda args: Recording(real(args), results))
        report, printed = run_eval(eval_args(out))
    return report, printed, out, results


def test_photo_figures_are_photo_meter_pooled_over_the_runs_predictions(reference):
    report, printed, out, results = reference
    photos = list(Icdar15Reader(root=TOY).photos("test"))[:N]
    assert report["n_images"] == N == len(results) and report["tasks"] == {"scene_text": N}
    meter = PhotoMeter()
    for photo, result in zip(photos, results, strict=True):
        grid = np.array(result.grid, dtype=object) != BACKGROUND
        meter.update(result.mask(refined=True), photo.polygons, photo.dont_care, grid=grid)
    expected = {f"photo.{key}": value for key, value in meter.summary().to_json().items()}
    assert {key: report[key] for key in expected} == expected
    assert report["photo.photos"] == report["photo.text_photos"] == N
    assert report["photo.photos_with_words"] == N - 2  # img_4 and img_5: only ### words
    assert report["photo.words"] == sum(not flag for p in photos for flag in p.dont_care) > 0
    assert 0.0 <= report["photo.word_recall"] <= 1.0 and 0.0 <= report["photo.grid_iou"] <= 1.0
    # The per-sample records hold the counts the report pools.
    records = read_records(out)
    assert sum(r["photo"]["words_found"] for r in records) == report["photo.words_found"]
    headline = printed.split("{")[0]
    for key in ("photo.word_recall", "photo.precision", "photo.grid_iou"):
        assert key in headline
    words = f"photo.words_found: {report['photo.words_found']} of {report['photo.words']} cared-for words"
    assert words in headline
    # The quad masks still give the usual figures.
    assert 0.0 <= report["refined.fgIoU"] <= 1.0 and 0.0 <= report["oracle.fgIoU"] <= 1.0
    assert json.loads((out / "report.json").read_text()) == report


def test_per_image_csv_holds_each_photos_word_counts(reference):
    report, _, out, _ = reference
    records = read_records(out)
    with open(out / "per_image.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == [*CSV_COLUMNS, *PHOTO_CSV_COLUMNS]
    assert [row["id"] for row in rows] == [r["id"] for r in records] and len(rows) == N
    for row, record in zip(rows, records, strict=True):
        counts = record["photo"]
        for key in ("words", "words_found", "dont_care", "predicted", "predicted_near_text"):
            assert int(row[key]) == counts[key], (record["id"], key)
        assert float(row["area"]) == counts["area"] and int(row["has_text"]) == counts["has_text"]
        for key in ("grid_intersection", "grid_union"):  # the run has a grid, so the grid counts exist
            assert int(row[key]) == counts[key], (record["id"], key)
    assert sum(int(row["words"]) for row in rows) == report["photo.words"]
    assert sum(int(row["words_found"]) for row in rows) == report["photo.words_found"]
    assert (
        sum(float(row["area"]) == 0.0 and int(row["words"]) > 0 for row in rows)
        == report["photo.empty_photos"]
    )


def test_resume_after_losing_records_gives_the_same_report(reference, tmp_path):
    report, _, out, _ = reference
    resumed_out = tmp_path / "resumed"
    shutil.copytree(out, resumed_out)
    (resumed_out / "report.json").unlink()
    path = resumed_out / "records" / "rank-0.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(line for k, line in enumerate(lines) if k not in (1, 4)))
    assert len(read_records(resumed_out)) == N - 2
    resumed, _ = run_eval(eval_args(resumed_out))
    done = json.loads((resumed_out / "records" / "done-0-of-1.json").read_text())
    assert done["new_records"] == 2
    assert metrics_only(resumed) == metrics_only(report)


def test_two_merged_shards_equal_one_run(reference, tmp_path, monkeypatch):
    report, _, _, _ = reference
    out = tmp_path / "sharded"
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    shard, printed = run_eval(eval_args(out))
    assert shard is None and "shard 1/2" in printed
    monkeypatch.setenv("RANK", "0")
    merged, _ = run_eval(eval_args(out))
    for rank in (0, 1):
        lines = (out / "records" / f"rank-{rank}.jsonl").read_text().splitlines()
        assert [json.loads(line)["index"] for line in lines] == list(range(rank, N, 2))
    assert metrics_only(merged) == metrics_only(report)


def _never_loaded(args):
    raise AssertionError("the model was loaded before the dataset was opened")


def test_a_wrong_root_or_split_fails_before_the_model_loads_or_anything_is_recorded(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(eval_command, "pipeline_from_args", _never_loaded)
    out = tmp_path / "ev"
    args = ["eval", "--dataset", "icdar15", "--root", str(tmp_path), "--split", "test", "--out", str(out),
            "--grid", "4", "--threads", "1"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path} is not a icdar15 root" in err and "Expected layout:" in err
    assert "Traceback" not in err
    assert not out.exists()  # nothing recorded that a rerun with the right root would refuse
    assert main([*args[:4], str(TOY), "--split", "train", *args[7:]]) == 2
    assert "split 'train' not in ('test',)" in capsys.readouterr().err
    # --overwrite with a wrong root keeps the earlier evaluation: the root is checked before it goes.
    (out / "records").mkdir(parents=True)
    (out / "run.json").write_text("{}")
    assert main([*args, "--overwrite"]) == 2
    assert (out / "run.json").is_file() and "is not a icdar15 root" in capsys.readouterr().err


def test_each_bad_file_of_an_icdar15_folder_is_warned_about_once(tmp_path, caplog):
    for stem in ("img_1", "img_2", "img_3"):
        shutil.copy(TOY / f"{stem}.jpg", tmp_path)
    shutil.copy(TOY / "gt_img_1.txt", tmp_path)
    (tmp_path / "gt_img_2.txt").write_text("1,1,5,1\n")  # bad line; img_3 has no gt file at all
    with caplog.at_level(logging.WARNING, logger="data_builders.readers"):
        samples = list(iter_samples("icdar15", root=tmp_path, split="test"))
    assert [s.sample_id for s in samples] == ["icdar15/test/img_1"]
    assert samples[0].photo.source_id == "icdar15/test/img_1" and samples[0].photo.words
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2, warned
    assert "gt_img_2.txt: bad annotation" in warned[0] and "gt_img_3.txt: missing" in warned[1]


class _Result:
    def __init__(self, mask, grid):
        self._mask, self.grid = mask, grid

    def mask(self, *, refined=True):
        return self._mask


def _quad(x0: int, y0: int, x1: int, y1: int, dont_care: bool = False) -> Word:
    return Word(
        np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float), "###" if dont_care else "w", dont_care
    )


def _photo_record(index: int, words: tuple[Word, ...], pred_rows: slice, grid: list[list[str]]) -> dict:
    """One 10×10 photo's record, scored on a prediction filling ``pred_rows``, through JSON like disk."""
    photo = WordPhoto(image_path=Path(f"p{index}.jpg"), words=words, source_id=f"p{index}")
    care = rasterize([w.polygon for w in words if not w.dont_care], (10, 10))
    ignore = rasterize([w.polygon for w in words if w.dont_care], (10, 10)) & ~care
    sample = EvalSample(index, photo.source_id, np.zeros((10, 10, 3), np.uint8), care, ignore, "scene_text",
                        "text", None, photo)  # fmt: skip
    pred = np.zeros((10, 10), bool)
    pred[pred_rows] = True
    record = score_sample(sample, _Result(pred, grid), grid=(2, 2), rule="nearest", threshold=0.5)
    record.update(index=index, id=photo.source_id, task="scene_text", query="text", parse_failed=False,
                  repairs=[], refined_called=True, seconds={"total": 1.0}, error=None)  # fmt: skip
    return json.loads(json.dumps(record))


def test_photo_figures_pool_counts_not_per_photo_ratios():
    top = [["text", "text"], ["others", "others"]]
    nothing = [["others", "others"], ["others", "others"]]
    # Photo a: one word (the top-left 5×5 cell), the top half predicted: found; 25 of 50 pixels on it.
    a = _photo_record(0, (_quad(0, 0, 4, 4),), slice(0, 5), top)
    # Photo b: words in three cells and a don't-care word in the top-right one, the top half predicted:
    # 1 of 3 words found; the 25 don't-care pixels leave precision, the other 25 are on a word.
    words_b = (_quad(0, 0, 4, 4), _quad(5, 5, 9, 9), _quad(5, 0, 9, 4, dont_care=True), _quad(0, 5, 4, 9))
    b = _photo_record(1, words_b, slice(0, 5), top)
    c = _photo_record(2, (), slice(0, 0), nothing)  # no text, nothing predicted
    assert a["photo"]["words_found"] == 1 and b["photo"]["words_found"] == 1 and b["photo"]["words"] == 3
    report = compute_report([a, b, c])
    assert report["photo.words"] == 4 and report["photo.words_found"] == 2
    assert report["photo.word_recall"] == 2 / 4  # the mean of the photos' recalls would be 2/3
    assert report["photo.precision"] == (25 + 25) / (50 + 25)  # mean of ratios: 3/4
    # Grid: a scores 1 of 2 cells; b 1 of 3 (its don't-care cell is left out); mean of ratios: 5/12.
    assert report["photo.grid_iou"] == (1 + 1) / (2 + 3)
    assert report["photo.empty_photos"] == 0 and report["photo.photos_with_words"] == 2
    assert report["photo.no_text_photos"] == report["photo.no_text_empty"] == 1
    plain = {key: value for key, value in a.items() if key != "photo"}
    assert not any(key.startswith("photo.") for key in compute_report([plain]))


def test_per_image_csv_of_records_without_photos_keeps_its_columns(tmp_path):
    top = [["text", "text"], ["others", "others"]]
    record = _photo_record(0, (_quad(0, 0, 4, 4),), slice(0, 5), top)
    plain = {key: value for key, value in record.items() if key != "photo"}
    paths = write_report(tmp_path, [plain], compute_report([plain]))
    with open(paths["csv"], newline="", encoding="utf-8") as f:
        assert csv.DictReader(f).fieldnames == list(CSV_COLUMNS)
