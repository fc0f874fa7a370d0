"""The one-GPU build's carry folder and returned files, and what makes the build run without the wheels.

The pack runs its real code path with the pip download skipped and a tiny font/photo budget; the
bundle is made from a small package of the real layout and unpacked again.
"""

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from stsam_refiner.config import TextPromptConfig
from stsam_refiner.text_encoders import EMBEDDINGS_ENV, TEXT_ENCODERS, build_text_encoder
from text4seg.app import gpu_job, gpu_return
from text4seg.app.cuda_checks import run_check
from text4seg.backbone.registry import DETECTOR_DIR_ENV, locate_onnx

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    out = tmp_path_factory.mktemp("pack") / "gpu_job"
    gpu_job.main(["--out", str(out), "--no-download", "--assets-mb", "0.3"])
    return out, json.loads((out / "manifest.json").read_text())


def test_pack_writes_what_the_gpu_machine_lacks_under_the_limit(packed):
    out, manifest = packed
    assert manifest["travel"]["total_mib"] <= manifest["travel"]["limit_mib"] - 1.0
    assert manifest["travel"]["repo_files_mib"] > 1.0 and manifest["travel"]["git_archive_mib"] > 1.0
    carried = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**20
    assert manifest["travel"]["carried_mib"] == pytest.approx(carried, abs=0.02)
    # Every carried package is pinned, at the lock file's version; no wheel fetched in this run.
    pins = gpu_job.pinned_versions()
    assert [r.split("==")[0] for r in manifest["requirements"]] == list(gpu_job.CARRIED)
    for requirement in manifest["requirements"]:
        name, version = requirement.split("==")
        assert pins[gpu_job._normalise(name)] == version
    assert manifest["wheels"] == [] and not manifest["wheels_downloaded"]
    # The detector copy passes the registry's hash check; the assets hold each corpus split's kind of files.
    (detector,) = manifest["detectors"]
    assert detector["detector"] == "ppocrv5"
    assert locate_onnx("ppocrv5", override=str(out / "detectors" / "ppocrv5.onnx")).is_file()
    assets = manifest["assets"]
    assert assets["splits"] == ["train", "select", "test"] and assets["megabytes"] < 1.0  # licences on top
    assert assets["families"] + assets["photos"] >= 1
    assert sorted(p.name for p in (out / "assets").iterdir()) >= ["backgrounds", "fonts"]
    assert manifest["env"][EMBEDDINGS_ENV] == "gpu_job/text_embeddings/minilm.safetensors"


def test_pack_refuses_more_than_the_limit(tmp_path):
    with pytest.raises(ValueError, match="no room for the corpus assets"):
        gpu_job.pack(gpu_job.PackSettings(out=tmp_path / "p", limit_mib=20.0, download=False))


def test_carried_detector_and_sentence_embeddings_replace_the_wheels(packed, monkeypatch):
    out, _ = packed
    monkeypatch.setenv(DETECTOR_DIR_ENV, str(out / "detectors"))
    assert locate_onnx("ppocrv5") == out / "detectors" / "ppocrv5.onnx"
    with pytest.raises(ValueError, match="sha256"):
        bad = out.parent / "bad"
        bad.mkdir(exist_ok=True)
        (bad / "ppocrv5.onnx").write_bytes(b"not a detector")
        monkeypatch.setenv(DETECTOR_DIR_ENV, str(bad))
        locate_onnx("ppocrv5")

    prompt = TextPromptConfig()
    sentences = json.loads(load_file_metadata(out / "text_embeddings" / "minilm.safetensors")["sentences"])
    real = TEXT_ENCODERS["minilm"](prompt).encode(sentences)
    monkeypatch.setenv(EMBEDDINGS_ENV, str(out / "text_embeddings" / "minilm.safetensors"))
    table = build_text_encoder(prompt)
    assert table.name == "minilm" and table.dim == real.shape[1]
    assert torch.equal(table.encode(sentences[::-1]), real.flip(0))
    with pytest.raises(ValueError, match="holds no embedding"):
        table.encode(["a sentence nobody encoded"])


def load_file_metadata(path: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return handle.metadata()


def _fake_run(root: Path, *, packaged: bool, weights: int = 1000) -> tuple[Path, Path]:
    """A run folder and package of the build's layout with random float32 weights."""
    run, package = root / "run", root / "package"
    rng = np.random.default_rng(0)
    tensor = {"w": torch.from_numpy(rng.standard_normal(weights).astype(np.float32))}
    mllm = (package / "mllm") if packaged else (run / "mllm" / "model")
    refiner = (package / "refiner") if packaged else (run / "refiner")
    for folder in (mllm, refiner, run / "mllm"):
        folder.mkdir(parents=True, exist_ok=True)
    (mllm / "config.json").write_text("{}")
    save_file(tensor, str(mllm / "model.safetensors"), metadata={"format": "pt"})
    save_file(tensor, str(refiner / "refiner.safetensors"), metadata={"config": "{}"})
    (run / "mllm" / "state.pt").write_bytes(b"optimizer state stays there")
    if packaged:
        (package / "manifest.json").write_text(json.dumps({"metrics": {"refined": {"fgIoU": 0.5}}}))
    (run / "stages.jsonl").write_text('{"stage": "data_train", "seconds": 1.0}\n')
    (run / "mllm" / "log.jsonl").write_text("".join(
        json.dumps({"step": s, "lm_loss": 1.0 / s, "aux_loss": 0.1, "time": s}) + "\n" for s in range(1, 200)
    ) + '{"step": 200, "lm_lo')  # fmt: skip
    (run / "build.log").write_text("[00:00:00] == data_train\n")
    (run / "checks.jsonl").write_text('{"check": "llava", "ok": true}\n')
    return run, package


def test_bundle_returns_few_small_files_that_unpack_to_the_package(tmp_path):
    run, package = _fake_run(tmp_path, packaged=True)
    out = tmp_path / "OUT"
    record = gpu_return.bundle(run=run, package=package, out=out)
    files = sorted(out.iterdir())
    assert len(files) <= gpu_return.MAX_FILES and all(
        f.stat().st_size <= gpu_return.FILE_LIMIT for f in files
    )
    assert record["content"] == "package" and record["precision"] == "float32"
    assert record["metrics"] == {"refined": {"fgIoU": 0.5}} and record["checks"][0]["check"] == "llava"
    assert record["losses"]["mllm"]["steps"] == 199 and len(record["losses"]["mllm"]["curve"]) <= 62
    with tarfile.open(out / "logs.tar.gz") as tar:
        assert {"build.log", "stages.jsonl", "mllm/log.jsonl", "checks.jsonl"} <= set(tar.getnames())

    target = tmp_path / "unpacked"
    gpu_return.unpack(out, target)
    for name in (
        "mllm/model.safetensors",
        "mllm/config.json",
        "refiner/refiner.safetensors",
        "manifest.json",
    ):
        assert (target / name).read_bytes() == (package / name).read_bytes(), name
    (out / "model.tar.00").write_bytes(b"damaged")
    with pytest.raises(ValueError, match="sha256 differs"):
        gpu_return.unpack(out, target)


def test_cut_off_build_returns_its_checkpoints_in_float16_when_float32_does_not_fit(tmp_path, monkeypatch):
    run, package = _fake_run(tmp_path, packaged=False, weights=300_000)
    monkeypatch.setattr(gpu_return, "TOTAL_LIMIT", 3 * 2**20)  # room ~2 MiB: float32 ~2.3, float16 ~1.2
    record = gpu_return.bundle(run=run, package=package, out=tmp_path / "OUT")
    assert record["content"] == "checkpoints" and record["precision"] == "float16"
    assert record["model_files"] == ["mllm", "refiner/refiner.safetensors"]
    assert all(change["max_abs_change"] < 2e-3 for change in record["float16_changes"])
    gpu_return.unpack(tmp_path / "OUT", tmp_path / "unpacked")
    weights = load_file(str(tmp_path / "unpacked" / "refiner" / "refiner.safetensors"))
    assert weights["w"].dtype == torch.float16
    assert not (tmp_path / "unpacked" / "mllm" / "state.pt").exists()


@pytest.mark.parametrize("check", ["llava", "text_llava"])
def test_bf16_checks_of_the_tiny_llavas_pass_on_the_cpu(tmp_path, check):
    record = run_check(check, tmp_path, "cpu")
    assert record["ok"], record
    assert record["devices"] == ["cpu"] and "bfloat16" in record["dtypes"] and not record["parse_failed"]
