"""GPU checks of what users run on CUDA and nobody had run: tiny real-format checkpoints, one JSON line each.

    python -m text4seg.app.cuda_checks --work /tmp/checks [--device cuda] [CHECK ...]

- ``llava``: a tiny LLaVA (CLIP tower) written by ``save_pretrained``, loaded by ``load_mllm`` in
  bfloat16 onto the device, one constrained ``generate.segment``.
- ``text_llava``: the same with the text-backbone tower (the default model's architecture).
- ``refiner``: ``stsam_refiner.train`` (accelerate, bf16 autocast) for two steps of the default
  recipe's refiner on the device, then its saved checkpoint loaded for inference there and one image
  refined with flips.
- ``zero2``, ``zero3``: ``scripts/train_mllm.sh`` with torchrun, one process, DeepSpeed ZeRO-2 / ZeRO-3
  (NCCL on a GPU, gloo on the CPU), two LoRA steps of a tiny LLaVA; the backend DeepSpeed reports is
  recorded.

A failing check prints ``{"check": ..., "ok": false, "error": ...}`` and the next one runs; the exit
status is always 0, so a caller's build goes on (``scripts/gpu_job.sh`` runs these beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np

from stsam_refiner.predict import refine_image
from stsam_refiner.train import TrainConfig as RefinerTrainConfig
from stsam_refiner.train import train as train_refiner
from text4seg.app.pipeline import load_pipeline_refiner
from text4seg.core.codec import BACKGROUND, encode_rrle, format_answer
from text4seg.mllm import generate
from text4seg.mllm.loading import load_mllm
from text4seg.mllm.tiny import TinyMllmConfig, build_tiny_llava

REPO = Path(__file__).resolve().parents[2]
RECIPE_REFINER = REPO / "configs/default/refiner_train_backbone.yaml"
QUESTION = "<image>\nPlease segment only the text in the image."
SENTENCE = "Sure, here is the segmentation mask for 'text':"
ZERO_CONFIG = """\
model_path: {model}
data_path: {data}
output_dir: {out}
max_steps: 2
batch_size: 2
lr: 1.0e-3
lr_scheduler: constant
warmup_ratio: 0.0
save_every: 2
log_every: 1
seed: 0
lora: {{r: 4, alpha: 8, dropout: 0.0, projector: train}}
"""


def tiny_images(n: int, *, size: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``n`` HWC uint8 noise images with one bright bar each, and the bar as an H×W bool mask."""
    rng = np.random.default_rng(seed)
    images, masks = [], []
    for _ in range(n):
        image = rng.integers(0, 120, (size, size, 3), dtype=np.uint8)
        mask = np.zeros((size, size), bool)
        top, left = (int(v) for v in rng.integers(0, size // 2, 2))
        mask[top : top + size // 8, left : left + size // 2] = True
        image[mask] = 240
        images.append(image)
        masks.append(mask)
    return images, masks


def write_refiner_rows(path: Path, n: int = 8, size: int = 256) -> Path:
    """An Arrow set with the synthetic corpus's ``image`` / ``mask`` / ``split`` columns."""
    import datasets
    from PIL import Image

    images, masks = tiny_images(n, size=size, seed=0)
    data = datasets.Dataset.from_dict({
        "image": [Image.fromarray(i) for i in images],
        "mask": [Image.fromarray(m.astype(np.uint8) * 255, mode="L") for m in masks],
        "split": ["train"] * n,
    })  # fmt: skip
    data = data.cast_column("image", datasets.Image()).cast_column("mask", datasets.Image())
    data.save_to_disk(str(path))
    return path


def write_chat_rows(path: Path, n: int = 8, grid: int = 4) -> Path:
    """An Arrow set in the conversation builder's format: one scene-text answer per image."""
    import datasets
    from PIL import Image

    images, _ = tiny_images(n, size=32, seed=1)
    rows = {
        k: [] for k in ("image", "messages", "task", "target", "grid_h", "grid_w", "grid_rule", "source_id")
    }
    for i, image in enumerate(images):
        labels = [[BACKGROUND] * grid for _ in range(grid)]
        labels[i % grid][:2] = ["text", "text"]
        answer = format_answer(encode_rrle(labels), sentence=SENTENCE)
        rows["image"].append(Image.fromarray(image))
        rows["messages"].append(
            [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": answer}]
        )
        for key, value in (("task", "scene_text"), ("target", "text"), ("grid_h", grid), ("grid_w", grid),
                           ("grid_rule", "nearest"), ("source_id", f"check/{i}")):  # fmt: skip
            rows[key].append(value)
    data = datasets.Dataset.from_dict(rows).cast_column("image", datasets.Image())
    data.save_to_disk(str(path))
    return path


def _tiny_llava(work: Path, vision: str) -> Path:
    folder = work / f"llava_{vision}"
    if not (folder / "config.json").is_file():
        build_tiny_llava(folder, config=TinyMllmConfig(vision=vision, image_size=64, patch_size=16))
    return folder


def check_llava(work: Path, device: str, *, vision: str = "clip") -> dict:
    """load_mllm in bfloat16 onto ``device`` and one constrained generate."""
    loaded = load_mllm(_tiny_llava(work, vision), dtype="bfloat16", device_map=device)
    image = tiny_images(1, size=64, seed=2)[0][0]
    result = generate.segment(loaded.model, loaded.processor, image, "text", grid=(4, 4))
    params = list(loaded.model.parameters())
    return {"vision": vision, "devices": sorted({str(p.device) for p in params}),
            "dtypes": sorted({str(p.dtype).removeprefix("torch.") for p in params}),
            "tokens": result.num_tokens, "parse_failed": result.failed,
            "generate_seconds": round(result.seconds, 3)}  # fmt: skip


def check_refiner(work: Path, device: str) -> dict:
    """Two bf16 training steps of the recipe's refiner on ``device``, then inference from its file."""
    out = work / "refiner"
    cfg = RefinerTrainConfig.from_yaml(RECIPE_REFINER, overrides={
        "data": str(write_refiner_rows(work / "refiner_rows")), "output_dir": str(out), "steps": 2,
        "batch_size": 2, "save_every": 1000, "log_every": 1, "warmup_steps": 1, "device": device,
        "model_config": str(REPO / RefinerTrainConfig.from_yaml(RECIPE_REFINER).model_config)})  # fmt: skip
    result = train_refiner(cfg)
    model = load_pipeline_refiner(result.checkpoint, device=device)
    images, masks = tiny_images(1, size=200, seed=3)
    coarse = masks[0][::25, ::25]
    start = time.perf_counter()
    refined = refine_image(model, images[0], coarse=coarse, flips=("h",))
    return {"steps": result.step, "losses": [round(v, 4) for v in result.losses], "bf16": cfg.bf16,
            "device": str(next(model.parameters()).device), "mask_shape": list(refined.mask.shape),
            "refine_seconds": round(time.perf_counter() - start, 3)}  # fmt: skip


def free_port() -> int:
    """A TCP port nobody listens on right now (the torchrun rendezvous)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check_zero(work: Path, device: str, *, stage: int, timeout: float = 240) -> dict:
    """scripts/train_mllm.sh, torchrun with one process, DeepSpeed ZeRO-``stage``, two LoRA steps."""
    data = work / "chat_rows"
    if not data.is_dir():
        write_chat_rows(data)
    out = work / f"zero{stage}"
    config = work / f"zero{stage}.yaml"
    config.write_text(ZERO_CONFIG.format(model=_tiny_llava(work, "clip"), data=data, out=out))
    command = ["bash", str(REPO / "scripts" / "train_mllm.sh"), "--config", str(config), "--nproc", "1",
               "--launcher", "torchrun", "--zero", str(stage), "--master_port", str(free_port()),
               "--python", sys.executable]  # fmt: skip
    shutil.rmtree(out, ignore_errors=True)  # the trainer resumes from an earlier run's checkpoints
    env = dict(os.environ)
    if device == "cpu":
        env.update(CUDA_VISIBLE_DEVICES="", DS_ACCELERATOR="cpu")
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    output = proc.stdout + proc.stderr
    (work / f"zero{stage}.log").write_text(output)
    if proc.returncode:
        raise RuntimeError(f"exit {proc.returncode}: {output[-1500:]}")
    summary = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])
    return {"stage": stage, "global_step": summary["global_step"], "last_loss": summary["last_loss"],
            "backend": summary.get("backend"),
            "adapter_saved": (out / "adapter_model.safetensors").is_file()}  # fmt: skip


CHECKS: dict[str, Callable[[Path, str], dict]] = {
    "llava": check_llava,
    "text_llava": lambda work, device: check_llava(work, device, vision="text_backbone"),
    "refiner": check_refiner,
    "zero2": lambda work, device: check_zero(work, device, stage=2),
    "zero3": lambda work, device: check_zero(work, device, stage=3),
}


def run_check(name: str, work: Path, device: str) -> dict:
    """One check as a JSON-ready dict; an exception becomes ``ok: false`` with its message."""
    start = time.perf_counter()
    try:
        record = {"check": name, "ok": True, **CHECKS[name](work, device)}
    except Exception as err:  # every failure is a result to report, never a reason to stop
        tail = traceback.format_exc().strip().splitlines()[-6:]
        record = {"check": name, "ok": False, "error": f"{type(err).__name__}: {str(err)[-1500:]}",
                  "trace": tail}  # fmt: skip
    return {**record, "device": device, "seconds": round(time.perf_counter() - start, 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m text4seg.app.cuda_checks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("checks", nargs="*", help=f"checks to run (default: all of {', '.join(CHECKS)})")
    parser.add_argument("--work", required=True, help="scratch folder for the tiny checkpoints and data")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    args = parser.parse_args(argv)
    unknown = sorted(set(args.checks) - set(CHECKS))
    if unknown:
        parser.error(f"unknown checks {unknown}; known: {', '.join(CHECKS)}")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    for name in args.checks or list(CHECKS):
        print(json.dumps(run_check(name, work, args.device)), flush=True)


if __name__ == "__main__":
    main()
