"""Where the embedded default model lives inside the package, and how to read its manifest.

Layout (written by ``scripts/build_default_model.sh``)::

    text4seg/app/assets/default/
      mllm/            a plain transformers ``save_pretrained`` folder (LoRA merged) with its processor
      refiner/         one stsam_refiner checkpoint (``*.safetensors`` holding its config as metadata)
      manifest.json    how the model was trained and what it expects at inference (fields below)

The MLLM folder carries its inference settings (``mllm/inference.json``, ``text4seg.core.inference``)
like any checkpoint; the manifest names the refiner file (``refiner_file``, when ``refiner/`` holds
more than one ``.safetensors``) and records the training data, commands, time and measured metrics.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_ROOT = Path(__file__).resolve().parent / "assets" / "default"
BUILD_HINT = (
    "build it with `bash scripts/build_default_model.sh` (trains the tiny MLLM and refiner on synthetic "
    "data, on CPU), or pass real checkpoints: --model MLLM_DIR --refiner REFINER.safetensors "
    "(or --no-refine)"
)


class DefaultModelMissing(FileNotFoundError):
    """The embedded default model has not been built (or is incomplete); the message says how to fix it."""


@dataclass(frozen=True)
class DefaultModel:
    """Paths of a complete default-model asset folder and its manifest."""

    root: Path
    """The asset folder (``text4seg/app/assets/default`` unless another root was given)."""
    mllm: Path
    """transformers ``save_pretrained`` folder of the MLLM (config.json, weights, processor files)."""
    refiner: Path
    """The refiner's ``.safetensors`` checkpoint."""
    manifest: dict[str, Any] = field(default_factory=dict)
    """The parsed manifest.json."""


def _single_checkpoint(folder: Path, manifest: dict[str, Any]) -> Path:
    if "refiner_file" in manifest:
        path = folder / str(manifest["refiner_file"])
        if not path.is_file():
            raise DefaultModelMissing(
                f"{path}: refiner checkpoint named in the manifest is missing; {BUILD_HINT}"
            )
        return path
    found = sorted(folder.glob("*.safetensors"))
    if len(found) != 1:
        raise DefaultModelMissing(
            f"{folder}: expected one refiner .safetensors, found {len(found)}; "
            f"name it with manifest key 'refiner_file' or {BUILD_HINT}"
        )
    return found[0]


def read_manifest(root: str | Path = DEFAULT_ROOT) -> dict[str, Any]:
    """The manifest as a dict; raises :class:`DefaultModelMissing` when absent."""
    path = Path(root) / "manifest.json"
    if not path.is_file():
        raise DefaultModelMissing(f"the default model is not built: {path} does not exist; {BUILD_HINT}")
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: manifest must be a JSON object, got {type(data).__name__}")
    return data


def locate_default_model(root: str | Path = DEFAULT_ROOT) -> DefaultModel:
    """Find the default model's parts; each missing part raises :class:`DefaultModelMissing` naming it."""
    root = Path(root)
    manifest = read_manifest(root)
    mllm = root / "mllm"
    if not (mllm / "config.json").is_file():
        raise DefaultModelMissing(
            f"the default MLLM is missing: {mllm / 'config.json'} not found; {BUILD_HINT}"
        )
    refiner_dir = root / "refiner"
    if not refiner_dir.is_dir():
        raise DefaultModelMissing(f"the default refiner is missing: {refiner_dir} not found; {BUILD_HINT}")
    return DefaultModel(
        root=root, mllm=mllm, refiner=_single_checkpoint(refiner_dir, manifest), manifest=manifest
    )


def default_model_available(root: str | Path = DEFAULT_ROOT) -> bool:
    """True when :func:`locate_default_model` would succeed."""
    try:
        locate_default_model(root)
    except DefaultModelMissing:
        return False
    return True
