"""The refiner's mask threshold: chosen on a selection set, carried by its checkpoint, used when refining."""

import json

import numpy as np
import pytest
import torch
from refiner_support import randomize_zero_params, small_refiner_config, text_encoder, tiny_text_dataset
from safetensors.torch import load_file

from stsam_refiner import calibrate
from stsam_refiner.build import build_refiner, load_refiner, save_refiner
from stsam_refiner.predict import refine_image

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model, _ = build_refiner(small_refiner_config(), text_encoder=text_encoder())
    randomize_zero_params(model)
    path = tmp_path_factory.mktemp("refiner") / "refiner.safetensors"
    save_refiner(model, path)
    return path


def test_the_stored_threshold_decides_the_mask(checkpoint, tmp_path):
    model, _ = load_refiner(checkpoint, text_encoder=text_encoder())
    assert model.sam.mask_threshold == 0.0  # segment-anything's own when the config says nothing else
    image = np.random.default_rng(0).integers(0, 255, (64, 80, 3), dtype=np.uint8)
    grid = np.zeros((8, 8), bool)
    grid[2:5, 1:7] = True
    logits = refine_image(model, image, coarse=grid).logits
    shifted = tmp_path / "shifted.safetensors"
    threshold = float(np.median(logits))
    calibrate.write_with_threshold(checkpoint, shifted, threshold)
    moved, _ = load_refiner(shifted, text_encoder=text_encoder())
    assert moved.cfg.sam.mask_threshold == threshold and moved.sam.mask_threshold == threshold
    out = refine_image(moved, image, coarse=grid)
    np.testing.assert_allclose(out.logits, logits, atol=1e-5)  # the weights are untouched
    assert np.array_equal(out.mask, out.logits > threshold) and 0 < out.mask.mean() < 1
    stored, copied = load_file(str(checkpoint)), load_file(str(shifted))
    assert stored.keys() == copied.keys() and all(torch.equal(stored[k], copied[k]) for k in stored)


def test_the_sweep_picks_the_threshold_of_the_best_fg_iou(checkpoint, tmp_path, capsys):
    data = tmp_path / "select"
    tiny_text_dataset(3, size=64).save_to_disk(str(data))
    out = tmp_path / "calibrated.safetensors"
    calibrate.main(["--checkpoint", str(checkpoint), "--data", str(data), "--grid", "8", "--flips", "h",
                    "--out", str(out)])  # fmt: skip
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    scores = {float(t): r["fgIoU"] for t, r in report["thresholds"].items()}
    assert report["n_images"] == 3 and report["was"] == 0.0 and len(scores) == len(calibrate.THRESHOLDS)
    assert scores[report["chosen"]] == max(scores.values())
    assert len(set(scores.values())) > 1  # the threshold changes the masks
    assert load_refiner(out, text_encoder=text_encoder())[0].sam.mask_threshold == report["chosen"]


def test_best_threshold_prefers_the_one_nearest_zero_among_ties():
    results = {-1.0: {"fgIoU": 0.5}, 0.0: {"fgIoU": 0.5}, 0.5: {"fgIoU": 0.4}}
    assert calibrate.best_threshold(results) == 0.0


def test_the_answer_settings_come_from_the_mllm_folder(checkpoint, tmp_path, capsys):
    from text4seg.core.inference import InferenceSettings, save_inference_settings

    data = tmp_path / "select"
    tiny_text_dataset(1, size=64).save_to_disk(str(data))
    mllm = tmp_path / "mllm"
    with pytest.raises(SystemExit, match="no inference.json"):
        calibrate.main(["--checkpoint", str(checkpoint), "--data", str(data), "--settings", str(mllm)])
    mllm.mkdir()
    settings = InferenceSettings(grid=(4, 6), grid_rule="area", grid_threshold=0.2, refiner_zoom=False)
    save_inference_settings(mllm, settings)
    calibrate.main(["--checkpoint", str(checkpoint), "--data", str(data), "--settings", str(mllm), "--flips"])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (report["grid"], report["grid_threshold"], report["zoom"], report["flips"]) == (
        [4, 6],
        0.2,
        False,
        [],
    )


def test_calibrate_keeps_the_checkpoint_it_reads(checkpoint):
    with pytest.raises(SystemExit, match="--out must differ"):
        calibrate.main(["--checkpoint", str(checkpoint), "--data", "unused", "--out", str(checkpoint)])
