"""Build steps around the embedded default model: the random base checkpoint, and packaging.

``base`` writes the untrained LLaVA (``text4seg.mllm.tiny.build_tiny_llava``) the training stages
start from. ``package`` copies a trained MLLM folder and refiner checkpoint into
``text4seg/app/assets/default/`` (layout in :mod:`text4seg.app.default_model`), measures them on a held-out
synthetic set with :mod:`text4seg.app.default_eval`, and writes ``manifest.json``: what the pipeline
needs at inference (grid, grid rule, ...) plus how the model was trained and what it scored.

    python -m text4seg.app.default_package base --config configs/default/mllm.yaml --out runs/default/base
    python -m text4seg.app.default_package package --mllm DIR --refiner FILE --val-data DIR --stages FILE
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

from text4seg.app.default_eval import evaluate_default, teacher_forced_gap
from text4seg.app.default_model import DEFAULT_ROOT
from text4seg.app.pipeline import Text4SegPipeline
from text4seg.core.inference import InferenceSettings, load_inference_settings, save_inference_settings
from text4seg.mllm.lora import READING_ADAPTER
from text4seg.mllm.tiny import TinyMllmConfig, build_tiny_llava

MAX_TOTAL_MB = 40.0
REFINER_FILE = "refiner.safetensors"
# How the default MLLM was taught to answer; written to mllm/inference.json, which the pipeline reads.
DEFAULT_INFERENCE = InferenceSettings(
    grid=(8, 8),
    grid_rule="area",
    grid_threshold=0.1,
    refiner_flips=("h", "v"),  # +0.035 refined fgIoU on the selection split (val 200-299), 3x refiner time
)
_SKIPPED = {"state.pt", "optimizer.pt", "training_args.bin", "README.md"}  # README: peft's model card


def build_base(config_path: str | Path, out: str | Path) -> Path:
    """The random-weight LLaVA + processor of ``config_path`` (a TinyMllmConfig YAML) at ``out``."""

    return build_tiny_llava(out, config=TinyMllmConfig.from_yaml(config_path))


def folder_mb(path: Path) -> float:
    """Total size of the files under ``path`` in MiB."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def packaged_settings(
    mllm: Path,
    refiner_flips: Sequence[str] | None = None,
    hint_clip: int | None = None,
    hint_snap: int | None = None,
    text_gate: int | None = None,
) -> InferenceSettings:
    """What the packaged MLLM's ``inference.json`` says: the settings its training wrote (grid, rule,
    reading), ``DEFAULT_INFERENCE`` (the CLIP-era build's settings) for a folder without them; with
    ``refiner_flips``, the refiner's test-time flips chosen for this package, with ``hint_clip`` and
    ``hint_snap`` how its hinted queries are refined, with ``text_gate`` how near the detector's text
    regions its text masks are kept (all chosen on the selection split)."""
    settings = load_inference_settings(mllm) or DEFAULT_INFERENCE
    if refiner_flips is not None:
        settings = dataclasses.replace(settings, refiner_flips=tuple(refiner_flips))
    if hint_clip is not None:
        settings = dataclasses.replace(settings, hint_clip=hint_clip)
    if hint_snap is not None:
        settings = dataclasses.replace(settings, hint_snap=hint_snap)
    if text_gate is not None:
        settings = dataclasses.replace(settings, text_gate=text_gate)
    return settings


def copy_assets(
    *, mllm: Path, refiner: Path, out: Path, settings: InferenceSettings | None = None
) -> dict[str, float]:
    """Replace ``out/mllm`` and ``out/refiner`` with the given model files and write the MLLM's
    ``inference.json`` (``settings``, default :func:`packaged_settings`); returns their sizes (MiB)."""
    settings = settings or packaged_settings(mllm)
    if not (mllm / "config.json").is_file():
        raise FileNotFoundError(f"{mllm} is not a save_pretrained folder (no config.json)")
    if not refiner.is_file():
        raise FileNotFoundError(f"refiner checkpoint {refiner} does not exist")
    for part in ("mllm", "refiner"):
        shutil.rmtree(out / part, ignore_errors=True)
    (out / "mllm").mkdir(parents=True)
    for item in mllm.iterdir():
        if item.is_file() and item.name not in _SKIPPED:
            shutil.copy2(item, out / "mllm" / item.name)
    if settings.reading_adapter:
        shutil.copytree(mllm / READING_ADAPTER, out / "mllm" / READING_ADAPTER)
    save_inference_settings(out / "mllm", settings)
    (out / "refiner").mkdir()
    shutil.copy2(refiner, out / "refiner" / REFINER_FILE)
    sizes = {"mllm": folder_mb(out / "mllm"), "refiner": folder_mb(out / "refiner")}
    total = sum(sizes.values())
    if total > MAX_TOTAL_MB:
        raise ValueError(f"default model is {total:.1f} MB > {MAX_TOTAL_MB} MB allowed in the package")
    return {k: round(v, 2) for k, v in sizes.items()}


def measure(
    out: Path, *, val_data: str, limit: int | None, threads: int, shuffled: bool = True, device: str = "cpu"
) -> dict:
    """Score the packaged model (as loaded from ``out`` onto ``device``, with its own inference.json) on
    ``val_data``."""
    import torch

    from data_builders.synthetic import load_synthetic  # lazy: only the packaging step reads data

    torch.set_num_threads(threads)
    pipeline = Text4SegPipeline.from_pretrained(
        model=out / "mllm", refiner=out / "refiner" / REFINER_FILE, device=device
    )
    return evaluate_default(pipeline, load_synthetic(val_data), limit=limit, shuffled_control=shuffled)


def image_dependence(out: Path, *, conv_val: str, rows: int = 32) -> dict:
    """Teacher-forced answer loss with own vs shuffled images, per segmentation task (see default_eval)."""
    import datasets

    from text4seg.mllm.loading import load_mllm  # lazy: pulls transformers

    loaded = load_mllm(out / "mllm")
    data = datasets.load_from_disk(conv_val)
    report = {}
    for task in ("scene_text", "referring"):
        subset = data.filter(lambda t, task=task: t == task, input_columns="task")
        report[task] = teacher_forced_gap(loaded.model, loaded.processor, subset, limit=rows)
    return report


def read_jsonl(path: str | Path | None) -> list[dict]:
    """Rows of a JSON-lines file (the build script's stage timings); [] when no path is given."""
    if path is None:
        return []
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def write_manifest(
    out: Path, *, sizes: dict, metrics: dict, training: dict, check: dict | None = None
) -> dict:
    """``out/manifest.json`` = refiner file + sizes + training record + measured metrics.

    ``check`` holds the figures of the first few validation images alone, which a test regenerates
    (same generator seed and fonts) and re-scores to show the shipped files reproduce them.
    """
    manifest = {
        "refiner_file": REFINER_FILE,
        "format": 2,
        "size_mb": sizes,
        "training": training,
        "metrics": metrics,
    }
    if check is not None:
        manifest["check"] = check
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def package(args: argparse.Namespace) -> dict:
    out = Path(args.out)
    settings = packaged_settings(
        Path(args.mllm), args.refiner_flips, args.hint_clip, args.hint_snap, args.text_gate
    )
    sizes = copy_assets(mllm=Path(args.mllm), refiner=Path(args.refiner), out=out, settings=settings)
    metrics = measure(out, val_data=args.val_data, limit=args.limit, threads=args.threads, device=args.device)
    metrics["device"] = args.device
    # Always on the CPU: tests regenerate these images and re-score them here.
    check = measure(
        out, val_data=args.val_data, limit=args.check_images, threads=args.threads, shuffled=False
    )
    check["val_seed"], check["val_config"] = args.val_seed, args.val_config
    check["refiner_zoom"] = settings.refiner_zoom  # how the pipeline refined when the check was made
    check["text_gate"] = settings.text_gate
    if args.conv_val:
        metrics["teacher_forced"] = image_dependence(out, conv_val=args.conv_val)
    extra = json.loads(Path(args.training).read_text()) if args.training else {}
    training = {**extra, "stages": read_jsonl(args.stages)}
    return write_manifest(out, sizes=sizes, metrics=metrics, training=training, check=check)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m text4seg.app.default_package", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    base = sub.add_parser("base", help="write the random-weight base checkpoint")
    base.add_argument("--config", required=True, help="TinyMllmConfig YAML (configs/default/mllm.yaml)")
    base.add_argument("--out", required=True)
    pack = sub.add_parser("package", help="copy, measure and describe the trained model")
    pack.add_argument("--mllm", required=True, help="trained MLLM save_pretrained folder")
    pack.add_argument("--refiner", required=True, help="trained refiner .safetensors")
    pack.add_argument("--val-data", required=True, help="held-out synthetic Arrow set (eval fonts, own seed)")
    pack.add_argument("--conv-val", help="chat rows of the validation images (own-vs-shuffled image loss)")
    pack.add_argument("--stages", help="JSON lines of stage commands and timings (from the build script)")
    pack.add_argument("--training", help="JSON with data sizes / notes to record in the manifest")
    pack.add_argument("--limit", type=int, help="measure on the first N validation images only")
    pack.add_argument(
        "--check-images", type=int, default=8, help="images in the manifest's re-checkable block"
    )
    pack.add_argument(
        "--val-seed", type=int, default=4242, help="generator seed of --val-data (for the check)"
    )
    pack.add_argument(
        "--val-config", default="configs/data/synthetic_eval.yaml", help="generator config of --val-data"
    )
    pack.add_argument(
        "--refiner-flips", nargs="*", choices=("h", "v"),
        help="the refiner's test-time flips for inference.json (default: what the MLLM's training wrote)",
    )  # fmt: skip
    pack.add_argument(
        "--hint-clip", type=int, default=None,
        help="inference.json hint_clip: pixels a hinted query's refined mask may reach past its hint (default: off)",
    )  # fmt: skip
    pack.add_argument(
        "--hint-snap", type=int, default=None,
        help="inference.json hint_snap: cell rows a hinted query's refiner prompt reaches to the hint (default: as trained, 0)",
    )  # fmt: skip
    pack.add_argument(
        "--text-gate", type=int, default=None,
        help="inference.json text_gate: pixels text masks may reach past the detector's text regions (default: off)",
    )  # fmt: skip
    pack.add_argument("--out", default=str(DEFAULT_ROOT))
    pack.add_argument("--threads", type=int, default=1)
    pack.add_argument(
        "--device", default="cpu", help="where the measurement runs (cpu, cuda); the check block: cpu"
    )
    args = parser.parse_args(argv)
    if args.command == "base":
        print(build_base(args.config, args.out))
        return
    manifest = package(args)
    print(json.dumps({"out": args.out, "size_mb": manifest["size_mb"], "metrics": manifest["metrics"]}))


if __name__ == "__main__":
    main()
