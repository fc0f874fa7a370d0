"""Shared helpers for the pipeline, CLI and evaluation tests: tiny random-weight checkpoints written
by the real libraries' own save functions, built once per test session."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class TinyCheckpoints:
    mllm: Path
    """transformers save_pretrained folder of a tiny random LLaVA (text4seg.mllm.tiny)."""
    refiner: Path
    """stsam_refiner checkpoint (save_refiner) of a tiny refiner without text prompts."""
    refiner_text: Path
    """The same with the MiniLM text prompt and alignment on (for description tests)."""


@functools.lru_cache(maxsize=1)
def tiny_checkpoints() -> TinyCheckpoints:
    """Build the tiny MLLM and refiners into a session-wide temporary folder."""
    import torch
    from refiner_support import small_refiner_config, text_encoder

    from stsam_refiner.build import build_refiner, save_refiner
    from text4seg.mllm.tiny import build_tiny_llava

    root = Path(tempfile.mkdtemp(prefix="text4seg-pipeline-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    build_tiny_llava(root / "mllm")
    torch.manual_seed(0)
    plain, _ = build_refiner(
        small_refiner_config(text_prompt={"enabled": False}, alignment={"enabled": False})
    )
    save_refiner(plain, root / "refiner.safetensors")
    with_text, _ = build_refiner(small_refiner_config(), text_encoder=text_encoder())
    save_refiner(with_text, root / "refiner_text.safetensors")
    return TinyCheckpoints(
        mllm=root / "mllm",
        refiner=root / "refiner.safetensors",
        refiner_text=root / "refiner_text.safetensors",
    )


@functools.lru_cache(maxsize=1)
def tiny_pipeline(**settings):
    """A loaded pipeline on the tiny checkpoints (no text-prompt refiner), 4×4 grid for speed;
    ``settings`` override other ``PipelineConfig`` fields."""
    from text4seg.app.pipeline import PipelineConfig, Text4SegPipeline

    ckpt = tiny_checkpoints()
    return Text4SegPipeline.from_pretrained(
        model=ckpt.mllm, refiner=ckpt.refiner, config=PipelineConfig(grid=(4, 4), **settings)
    )


def totaltext_folder(out: Path, *, n: int = 12, seed: int = 7, size: int = 96) -> Path:
    """A Total-Text-layout folder written by the synthetic generator (held-out fonts, ~half Test)."""
    config = out.parent / f"{out.name}.yaml"
    config.write_text(f"test_fraction: 0.5\nsize: {size}\n")
    run_module(
        "data_builders.synthetic", "--n", str(n), "--out", str(out), "--seed", str(seed),
        "--layout", "totaltext", "--workers", "1", "--fonts", "eval", "--config", str(config),
    )  # fmt: skip
    return out


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(REPO),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="1",
        DS_ACCELERATOR="cpu",
    )
    env.update(extra)
    return env


def run_module(module: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    """Run ``python -m module args`` from the repo root; raise with its output if it fails."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        raise AssertionError(f"{module} {args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
