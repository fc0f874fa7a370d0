"""benchmarks/refiner_words.py: per-word recall and IoU of a refiner given the true grid."""

import json

import numpy as np
import pytest
import torch
from refiner_support import randomize_zero_params, small_refiner_config, text_encoder, tiny_text_dataset

from benchmarks import refiner_words
from data_builders.synthetic.writers import encode_rle

torch.set_num_threads(1)


def _word(box, **attrs):
    return {"box": list(box), "orientation": "horizontal", "size": "small", **attrs}


def test_each_word_is_scored_on_its_own_strokes():
    pred = np.zeros((20, 40), bool)
    first, second = np.zeros_like(pred), np.zeros_like(pred)
    first[2:6, 2:12] = True  # 40 stroke pixels
    second[12:16, 20:30] = True
    pred[2:6, 2:7] = True  # half of the first word's strokes
    pred[0:2, 2:12] = True  # 20 pixels beside it, inside its grown box
    records = refiner_words.score_words(
        pred,
        [first, second],
        [_word((2, 2, 12, 6), outline=True), _word((20, 12, 30, 16), orientation="rotated")],
    )
    assert [r["recall"] for r in records] == [0.5, 0.0]
    assert records[0]["iou"] == pytest.approx(20 / 60) and records[1]["iou"] == 0.0
    assert [r["found"] for r in records] == [True, False]
    assert records[0]["groups"] == ["all", "orientation=horizontal", "size=small", "outline"]


def test_words_occluded_away_are_skipped_and_mismatches_refused():
    pred = np.zeros((8, 8), bool)
    assert refiner_words.score_words(pred, [np.zeros((8, 8), bool)], [_word((0, 0, 4, 4))]) == []
    with pytest.raises(ValueError, match="1 instance masks != 2 instances"):
        refiner_words.score_words(pred, [pred], [_word((0, 0, 1, 1)), _word((0, 0, 1, 1))])
    with pytest.raises(ValueError, match=r"word mask \(4, 4\) != prediction \(8, 8\)"):
        refiner_words.score_words(pred, [np.ones((4, 4), bool)], [_word((0, 0, 1, 1))])


def test_groups_average_their_own_words():
    records = [
        {"groups": ["all", "curved"], "recall": 1.0, "iou": 0.5, "found": True},
        {"groups": ["all"], "recall": 0.0, "iou": 0.0, "found": False},
    ]
    summary = refiner_words.summarize(records)
    assert list(summary) == ["all", "curved"]
    assert summary["all"] == {"words": 2, "found": 0.5, "recall": 0.5, "iou": 0.25}
    assert summary["curved"] == {"words": 1, "found": 1.0, "recall": 1.0, "iou": 0.5}


def test_the_script_scores_every_word_of_a_split(tmp_path, capsys):
    from stsam_refiner.build import build_refiner, save_refiner
    from text4seg.core.inference import InferenceSettings, save_inference_settings

    torch.manual_seed(0)
    model, _ = build_refiner(small_refiner_config(), text_encoder=text_encoder())
    randomize_zero_params(model)
    checkpoint = tmp_path / "refiner.safetensors"
    save_refiner(model, checkpoint)
    mllm = tmp_path / "mllm"
    mllm.mkdir()
    save_inference_settings(mllm, InferenceSettings(grid=(8, 8), grid_rule="area", grid_threshold=0.03))

    rows = tiny_text_dataset(2, size=64)
    masks = [np.asarray(mask) > 127 for mask in rows["mask"]]
    rows = rows.add_column("instance_masks", [[encode_rle(m)] for m in masks])
    rows = rows.add_column("instances", [[_word((0, 0, 64, 64), curved=True)] for _ in masks])
    data = tmp_path / "split"
    rows.save_to_disk(str(data))
    args = ["--checkpoint", str(checkpoint), "--data", str(data), "--settings", str(mllm)]
    refiner_words.main(args)
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["images"] == 2 and report["mask_threshold"] == 0.0
    assert report["groups"]["all"]["words"] == 2 and report["groups"]["curved"]["words"] == 2
    assert 0.0 <= report["groups"]["all"]["recall"] <= 1.0

    tiny_text_dataset(1, size=64).save_to_disk(str(tmp_path / "bare"))
    with pytest.raises(SystemExit, match="instance_masks"):
        refiner_words.main(
            ["--checkpoint", str(checkpoint), "--data", str(tmp_path / "bare"), "--settings", str(mllm)]
        )
