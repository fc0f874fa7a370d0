"""What comes back from the one-GPU build (at most 8 files of at most 16 MiB), and unpacking it here.

    python -m text4seg.app.gpu_return bundle --run-dir RUN --package PKG --out $OUT     (scripts/gpu_job.sh)
    python -m text4seg.app.gpu_return unpack --files DIR --to runs/gpu/package          (here, afterwards)

Files: ``model.tar.00`` … (one tar of the package — or, when the build was cut off before packaging,
of its latest checkpoints — split into parts under the per-file limit), ``logs.tar.gz`` (build log,
stage logs, loss logs, CUDA check output) and ``record.json`` (stage timings, steps and loss curves,
the package's metrics, the CUDA checks, versions, digests of the parts).

Weights come back as trained (float32) when they fit: the package is at most 40 MB, and deciding on
float16 needs a second full evaluation, which costs nothing here on the CPU (``default_eval``) but
device time there. Only a package too large to come back whole is halved to float16, and the record
says so.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import tarfile
import tempfile
from pathlib import Path

MIB = 2**20
MAX_FILES = 8
FILE_LIMIT = 16 * MIB
TOTAL_LIMIT = 64 * MIB
PART_BYTES = FILE_LIMIT - MIB // 4
"""Size of a model part: under the per-file limit with room for rounding."""
LOG_FILES = ("build.log", "mllm.log", "refiner.log", "checks.jsonl", "checks.log", "stages.jsonl", "training.json",
             "vision/log.jsonl", "vision/result.json", "mllm/log.jsonl", "mllm/calibration.json",
             "refiner/log.jsonl")  # fmt: skip
"""Files of the run folder that go into logs.tar.gz (those that exist)."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a log cut off mid-line by the time limit
    return rows


def model_source(run: Path, package: Path) -> tuple[str, dict[str, Path]]:
    """("package", {...}) when packaging finished, else ("checkpoints", the latest trained parts)."""
    if (package / "manifest.json").is_file():
        return "package", {"": package}
    parts = {}
    for name, folder in (("mllm", run / "mllm" / "model"), ("mllm", run / "vision" / "model")):
        if name not in parts and (folder / "config.json").is_file():
            parts[name] = folder
    for folder in (run / "refiner_augment", run / "refiner"):  # the last refiner stage that saved
        if (folder / "refiner.safetensors").is_file():
            parts["refiner/refiner.safetensors"] = folder / "refiner.safetensors"
            break
    return "checkpoints", parts


_SKIPPED = {"state.pt", "optimizer.pt", "training_args.bin"}
PRECISION_NOTES = {
    "float32": "as trained: it fits the return limit; whether float16 loses anything is measured on the CPU "
    "afterwards (python -m text4seg.app.default_eval on both), where it costs no device time",
    "float16": "float32 did not fit the return limit; float32 tensors halved (largest changes in "
    "float16_changes): measure before shipping",
}


def float16_copy(path: Path, target: Path) -> dict:
    """``path``'s float32 tensors as float16 (metadata kept); returns the largest absolute change."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    tensors, worst = {}, 0.0
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
        for key in handle.keys():
            tensor = handle.get_tensor(key)
            if tensor.dtype == torch.float32:
                half = tensor.half()
                if not torch.isfinite(half).all():
                    raise ValueError(f"{path}: {key} overflows float16")
                worst = max(worst, (half.float() - tensor).abs().max().item() if tensor.numel() else 0.0)
                tensor = half
            tensors[key] = tensor.contiguous()
    save_file(tensors, str(target), metadata=metadata)
    return {"file": path.name, "max_abs_change": worst}


def model_tar(parts: dict[str, Path], *, float16: bool) -> tuple[bytes, list[dict]]:
    """One uncompressed tar of the model files (weights do not compress); float16 changes listed."""
    buffer, changes = io.BytesIO(), []
    with tarfile.open(fileobj=buffer, mode="w") as tar, tempfile.TemporaryDirectory() as scratch:
        for prefix, source in parts.items():
            files = sorted(source.rglob("*")) if source.is_dir() else [source]
            for file in files:
                if not file.is_file() or file.name in _SKIPPED:
                    continue
                name = str(Path(prefix) / file.relative_to(source)) if source.is_dir() else prefix
                if float16 and file.suffix == ".safetensors":
                    half = Path(scratch) / file.name
                    changes.append(float16_copy(file, half))
                    file = half
                tar.add(file, arcname=name)
    return buffer.getvalue(), changes


def logs_tar(run: Path, *, limit: int) -> bytes:
    """logs.tar.gz of the run's logs; the longest logs keep only their ends if it would exceed ``limit``."""
    keep = None
    while True:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for name in LOG_FILES:
                path = run / name
                if not path.is_file():
                    continue
                data = path.read_bytes()
                data = data if keep is None else data[-keep:]
                info = tarfile.TarInfo(name)
                info.size, info.mtime = len(data), int(path.stat().st_mtime)
                tar.addfile(info, io.BytesIO(data))
        if len(buffer.getvalue()) <= limit or keep == 0:
            return buffer.getvalue()
        keep = MIB if keep is None else keep // 4


def loss_curves(run: Path, points: int = 60) -> dict:
    """Per training stage: steps reached and (step, loss) pairs, thinned to about ``points``."""
    curves = {}
    for stage, key in (("vision", "loss"), ("mllm", "lm_loss"), ("refiner", "total")):
        rows = [r for r in _read_jsonl(run / stage / "log.jsonl") if key in r]
        if rows:
            stride = -(-len(rows) // points)
            thinned = rows[::stride] + ([rows[-1]] if (len(rows) - 1) % stride else [])
            curves[stage] = {"steps": rows[-1]["step"], "seconds": rows[-1].get("time"),
                             "curve": [[r["step"], round(float(r[key]), 5)] for r in thinned]}  # fmt: skip
    return curves


def environment() -> dict:
    """Device name and the versions of the packages the build ran with."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in ("torch", "transformers", "accelerate", "peft", "datasets", "pyarrow", "fsspec", "deepspeed",
                 "segment-anything", "onnx2torch", "onnx", "safetensors"):  # fmt: skip
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    try:
        import torch

        device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    except Exception as err:  # the record is written whatever broke
        device = f"unknown ({err})"
    return {"device": device, "versions": versions}


def bundle(*, run: Path, package: Path, out: Path) -> dict:
    """Write the returned files into ``out``; returns the record (also ``out/record.json``)."""
    out.mkdir(parents=True, exist_ok=True)
    content, parts = model_source(run, package)
    logs = logs_tar(run, limit=FILE_LIMIT - MIB)
    (out / "logs.tar.gz").write_bytes(logs)
    room = min(TOTAL_LIMIT - len(logs) - MIB, (MAX_FILES - 2) * PART_BYTES)
    data, changes = model_tar(parts, float16=False) if parts else (b"", [])
    precision = "float32"
    if len(data) > room:
        data, changes = model_tar(parts, float16=True)
        precision = "float16"
        if len(data) > room:
            raise ValueError(
                f"model files are {len(data) / MIB:.1f} MiB in float16 > {room / MIB:.1f} MiB room"
            )
    files = []
    for index, start in enumerate(range(0, len(data), PART_BYTES)):
        chunk = data[start : start + PART_BYTES]
        name = f"model.tar.{index:02d}"
        (out / name).write_bytes(chunk)
        files.append({"file": name, "bytes": len(chunk), "sha256": _sha256(chunk)})
    manifest = package / "manifest.json"
    record = {
        "content": content,
        "model_files": sorted(parts) if content == "checkpoints" else ["mllm/", "refiner/", "manifest.json"],
        "precision": precision,
        "precision_note": PRECISION_NOTES[precision],
        "float16_changes": changes,
        "model_tar": {"bytes": len(data), "sha256": _sha256(data), "parts": files},
        "logs": {"file": "logs.tar.gz", "bytes": len(logs)},
        "stages": _read_jsonl(run / "stages.jsonl"),
        "losses": loss_curves(run),
        "metrics": json.loads(manifest.read_text()).get("metrics") if manifest.is_file() else None,
        "checks": _read_jsonl(run / "checks.jsonl"),
        **environment(),
    }
    (out / "record.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def unpack(files: Path, to: Path) -> dict:
    """Join, check and extract the returned model tar into ``to`` (its mllm/ and refiner/ are replaced)."""
    record = json.loads((files / "record.json").read_text())
    data = b""
    for part in record["model_tar"]["parts"]:
        chunk = (files / part["file"]).read_bytes()
        if _sha256(chunk) != part["sha256"]:
            raise ValueError(f"{files / part['file']}: sha256 differs from record.json (damaged transfer)")
        data += chunk
    if not data:
        raise ValueError(f"{files}: the run returned no model files (see record.json and logs.tar.gz)")
    to.mkdir(parents=True, exist_ok=True)
    for part in ("mllm", "refiner"):
        shutil.rmtree(to / part, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        tar.extractall(to, filter="data")
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m text4seg.app.gpu_return", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    pack = sub.add_parser("bundle", help="write the returned files (on the GPU machine)")
    pack.add_argument("--run-dir", required=True, help="the build's --run-dir")
    pack.add_argument("--package", required=True, help="the build's --out")
    pack.add_argument("--out", required=True, help="the device tool's $OUT")
    take = sub.add_parser("unpack", help="join and extract returned files (here)")
    take.add_argument("--files", required=True, help="folder holding record.json and model.tar.*")
    take.add_argument("--to", required=True, help="package folder to write (mllm/, refiner/, manifest.json)")
    args = parser.parse_args(argv)
    if args.command == "bundle":
        record = bundle(run=Path(args.run_dir), package=Path(args.package), out=Path(args.out))
        print(json.dumps({k: record[k] for k in ("content", "precision", "model_tar", "metrics")}))
    else:
        record = unpack(Path(args.files), Path(args.to))
        print(f"unpacked {record['content']} ({record['precision']}) into {args.to}")


if __name__ == "__main__":
    main()
