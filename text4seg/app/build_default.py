"""Build the embedded default model from nothing in one run, inside a time budget.

    python -m text4seg.app.build_default --device cpu --minutes 60 [--out text4seg/app/assets/default]

Stages (each a command of its own, timed into ``RUN/stages.jsonl``; budgets are shares of
``--minutes`` from ``configs/default/build.yaml``, and every trainer saves and stops when its share
is spent, so a cut-off run still packages a usable model):

1. data: the corpus (``configs/data/corpus_{train,select,test}.yaml``: train font families and
   photos; held-out families and photos; held-out families, photos and generator setting);
2. in parallel: (a) the MLLM on the pretrained text backbone — base checkpoint, vision
   pretraining, chat rows, MLLM training (with ``mllm_regrid_steps``, then moved to a finer answer
   grid and trained on its rows; with ``mllm_hint_steps``, its tower grown and a reading adapter
   trained on rows with the reading hint); (b) the refiner on the same backbone;
3. package: copy into ``--out`` (with the MLLM's ``inference.json``), measure on the selection
   split, write the manifest with the stage record.

The reported figures come from the test split afterwards (``python -m text4seg.app.default_eval``),
never from anything this recipe chose on.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from data_builders.conversations import ConversationConfig
from text4seg.app.default_model import DEFAULT_ROOT
from text4seg.core.config import Config

BUILD_CONFIG = Path("configs/default/build.yaml")
REGRID_ROWS = "configs/default/conversations_regrid.yaml"
"""The rows (and so the answer grid and rule) of the regrid stage (``BuildProfile.mllm_regrid_steps``)."""
MIN_TRAIN_MINUTES = 0.25
"""MLLM training runs at least this long, even when the stages before it used up the chain's share."""


@dataclass(frozen=True, kw_only=True)
class BudgetSplit(Config):
    """Shares of ``--minutes`` per stage (the refiner runs beside vision + MLLM, so shares overlap)."""

    data: float = 0.15
    """Corpus generation (not enforced: it comes first and its size is fixed)."""
    vision: float = 0.12
    """Vision pretraining."""
    mllm: float = 0.5
    """Chat rows + MLLM training (training gets what is left of vision + mllm after the stages before it)."""
    refiner: float = 0.65
    """Refiner training (in parallel with vision + MLLM), both of its stages together."""
    refiner_base: float = 0.3
    """The stroke refiner, the first part of ``refiner`` (only with ``refiner_base_steps``)."""
    package: float = 0.15
    """Packaging and measuring on the selection split."""

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not 0.0 < value <= 1.0:
                raise ValueError(f"split.{name} {value} outside (0, 1]")
        if self.refiner_base >= self.refiner:
            raise ValueError(
                f"split.refiner_base {self.refiner_base} must be below split.refiner {self.refiner}"
            )
        if self.data + max(self.vision + self.mllm, self.refiner) + self.package > 1.0 + 1e-9:
            raise ValueError("split: data + max(vision + mllm, refiner) + package exceeds the whole budget")


@dataclass(frozen=True, kw_only=True)
class BuildProfile(Config):
    """Sizes and steps of one device's build."""

    train_images: int = 2400
    """Images of corpus_train.yaml (train font families and photos)."""
    select_images: int = 100
    """Images of corpus_select.yaml (held-out families and photos; the recipe measures on these)."""
    test_images: int = 200
    """Images of corpus_test.yaml (held-out families, photos and generator setting; reported only)."""
    data_workers: int = 2
    """Processes drawing the corpus."""
    threads_per_trainer: int = 1
    """torch threads of the refiner process."""
    vision_steps: int = 300
    """Vision pretraining schedule length."""
    mllm_steps: int = 2000
    """MLLM training schedule length."""
    mllm_continue_steps: int = 0
    """With more than ``mllm_steps``: the MLLM run is resumed to this many steps under
    ``configs/default/mllm_continue_backbone.yaml`` (0: no continuation)."""
    mllm_regrid_steps: int = 0
    """With > 0: the trained (and continued) MLLM is moved to the answer grid of
    ``configs/default/conversations_regrid.yaml`` (``python -m text4seg.mllm.text_vision regrid``: that
    file's grid side and area threshold; no weight changes shape) and trained this many steps on that
    file's rows under ``configs/default/mllm_regrid.yaml``, a fresh schedule. The hint stage then starts
    from it, its rows on its grid (0: the answer keeps the grid of ``conversations.yaml``)."""
    mllm_hint_steps: int = 0
    """With > 0: the trained MLLM's tower is grown with the reading hint (``python -m
    text4seg.mllm.text_vision grow``) and a reading adapter is trained this many steps on the rows of
    ``configs/default/conversations_hint.yaml`` that show a read word, under
    ``configs/default/mllm_hint.yaml``; the package takes that model, whose own weights are the trained
    MLLM's (0: none)."""
    refiner_steps: int = 1500
    """Schedule length of the text-backbone refiner."""
    refiner_base_steps: int = 0
    """With > 0: a stroke refiner (``configs/default/refiner_train.yaml``, no backbone) is trained
    first for this many steps and grown into the text-backbone refiner
    (``configs/default/refiner_warm_backbone.yaml``); 0: the text-backbone refiner from scratch
    (``configs/default/refiner_train_backbone.yaml``)."""
    refiner_augment_steps: int = 0
    """With > 0: the text-backbone refiner then continues this many steps under
    ``configs/default/refiner_augment.yaml`` (rotation, scale, perspective and bend augmentation; warm-started
    tensor for tensor, a fresh schedule), and the package takes it (0: none)."""
    calibrate_refiner: bool = False
    """Choose the refiner's mask threshold on the selection split's ``measure_images`` images before
    packaging (``python -m stsam_refiner.calibrate``: true grids refined as the pipeline refines); the
    package takes that copy (False: segment-anything's threshold 0)."""
    measure_images: int = 100
    """Selection-split images scored when packaging."""
    refiner_flips: tuple[str, ...] = ()
    """The packaged refiner's test-time flips (``h``, ``v``), chosen on the selection split."""
    hint_clip: int | None = None
    """The package's ``inference.json`` ``hint_clip`` (pixels; None: off), chosen on the selection
    splits with ``benchmarks/hint_clip.py``."""
    hint_snap: int = 0
    """The package's ``inference.json`` ``hint_snap`` (cell rows; 0: off), chosen likewise."""
    text_gate: int | None = None
    """The package's ``inference.json`` ``text_gate`` (pixels; None: off): text masks kept near the
    detector's text regions, chosen on the selection split and the real dev photos."""
    split: BudgetSplit = field(default_factory=BudgetSplit)
    """Stage budgets."""

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if name in ("split", "refiner_flips", "calibrate_refiner", "hint_clip", "text_gate"):
                continue
            optional = ("refiner_base_steps", "refiner_augment_steps", "mllm_continue_steps", "mllm_regrid_steps",
                        "mllm_hint_steps", "hint_snap")  # fmt: skip
            least = 0 if name in optional else 1
            if value < least:
                raise ValueError(f"{name} {value} must be >= {least}")
        if self.hint_clip is not None and self.hint_clip < 0:
            raise ValueError(f"hint_clip {self.hint_clip} must be >= 0 pixels (or null: off)")
        if self.text_gate is not None and self.text_gate < 0:
            raise ValueError(f"text_gate {self.text_gate} must be >= 0 pixels (or null: off)")
        if 0 < self.mllm_continue_steps <= self.mllm_steps:
            raise ValueError(
                f"mllm_continue_steps {self.mllm_continue_steps} must exceed mllm_steps {self.mllm_steps} (or be 0)"
            )


@dataclass(frozen=True, kw_only=True)
class BuildConfig(Config):
    """``configs/default/build.yaml``: one profile per device."""

    cpu: BuildProfile = field(default_factory=BuildProfile)
    """This project's 2-core machines."""
    cuda: BuildProfile = field(default_factory=BuildProfile)
    """One GPU with its host's cores."""


@dataclass(frozen=True)
class Plan:
    """Where everything goes and how long each stage may take."""

    run: Path
    data: Path
    out: Path
    minutes: float
    profile: BuildProfile
    device: str = "cpu"
    """Where every trainer and the measurement run (``cpu`` or ``cuda``); the profile is this device's."""
    assets_dir: Path | None = None
    """A ``pack_assets`` folder of fonts and photos for the corpus, on a machine without the packages."""

    def budget(self, stage: str) -> float:
        """Minutes of ``stage`` (its share of the total)."""
        return round(self.minutes * getattr(self.profile.split, stage), 2)


def _stage(plan: Plan, name: str, command: list[str], *, log: Path | None = None) -> None:
    """Run one command, append {"stage", "seconds", "command"} to stages.jsonl; a failure stops the build."""
    start = time.time()
    print(f"[{time.strftime('%H:%M:%S')}] == {name}: {' '.join(command)}", flush=True)
    if log is None:
        subprocess.run(command, check=True)
    else:
        with open(log, "a", encoding="utf-8") as handle:
            subprocess.run(command, check=True, stdout=handle, stderr=subprocess.STDOUT)
    record = {"stage": name, "seconds": round(time.time() - start, 1), "command": " ".join(command)}
    with open(plan.run / "stages.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def _py(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]


def data_stage(plan: Plan) -> None:
    workers = str(plan.profile.data_workers)
    assets = ["--assets-dir", str(plan.assets_dir)] if plan.assets_dir is not None else []
    for split, count, seed in (("train", "train_images", 100), ("select", "select_images", 200),
                               ("test", "test_images", 300)):  # fmt: skip
        out = plan.data / f"corpus_{split}"
        if (out / "dataset_info.json").is_file() or (out / "state.json").is_file():
            continue  # already generated by an earlier (cut-off) run of the same recipe
        _stage(plan, f"data_{split}", _py("data_builders.synthetic", "--config", f"configs/data/corpus_{split}.yaml",
                                          "--n", str(getattr(plan.profile, count)), "--out", str(out), "--seed", str(seed),
                                          "--workers", workers, *assets))  # fmt: skip


def mllm_commands(plan: Plan) -> list[tuple[str, list[str]]]:
    """The MLLM chain up to its training: base checkpoint, vision pretraining, chat rows."""
    run, data, p = plan.run, plan.data, plan.profile
    return [
        ("base", _py("text4seg.app.default_package", "base", "--config", "configs/default/mllm_backbone.yaml",
                     "--out", str(run / "base"))),
        ("vision_pretrain", _py("text4seg.mllm.vision_pretrain", "--config", "configs/default/vision_pretrain_backbone.yaml",
                                "--model-path", str(run / "base"), "--data", str(data / "corpus_train"),
                                "--output-dir", str(run / "vision"), "--steps", str(p.vision_steps),
                                "--minutes", str(plan.budget("vision")), "--device", plan.device)),
        ("conversations", _py("data_builders.conversations", "--synthetic", str(data / "corpus_train"),
                              "--out", str(data / "conv_train"), "--config", "configs/default/conversations.yaml",
                              "--seed", "0")),
    ]  # fmt: skip


def regrid_arguments() -> list[str]:
    """``text_vision regrid`` arguments for the grid and rule of ``REGRID_ROWS``."""
    rows = ConversationConfig.from_yaml(REGRID_ROWS)
    if len(rows.grid_sizes) != 1 or rows.grid_rule != "area":
        raise ValueError(f"{REGRID_ROWS}: the regrid stage needs one grid side and the area rule")
    return ["--patches", str(rows.grid_sizes[0]), "--grid-threshold", str(rows.area_threshold)]


def _train_from(
    plan: Plan, config: str, *, model: Path, head: Path, data: Path, out: Path, steps: int, minutes: float
) -> list[str]:
    """A ``full_train`` stage that starts a fresh run from the checkpoint ``model``, with the patch
    head of the run folder ``head``."""
    return _py("text4seg.mllm.full_train", "--config", config, "--model-path", str(model),
               "--head-path", str(head / "patch_head.safetensors"), "--data", str(data), "--output-dir", str(out),
               "--steps", str(steps), "--minutes", str(minutes), "--device", plan.device)  # fmt: skip


def mllm_trainers(plan: Plan, minutes: float) -> list[tuple[str, list[str]]]:
    """MLLM training, then (with ``mllm_continue_steps``) the same run resumed under the longer
    schedule of ``configs/default/mllm_continue_backbone.yaml``, then (with ``mllm_regrid_steps``) the
    model moved to another answer grid and trained on its rows, then (with ``mllm_hint_steps``) the
    grown tower's stage; ``minutes`` is shared by steps."""
    run, data, p = plan.run, plan.data, plan.profile
    total = max(p.mllm_steps, p.mllm_continue_steps) + p.mllm_regrid_steps + p.mllm_hint_steps
    common = ["--model-path", str(run / "vision" / "model"), "--head-path", str(run / "vision" / "patch_head.safetensors"),
              "--data", str(data / "conv_train"), "--output-dir", str(run / "mllm"), "--device", plan.device]  # fmt: skip
    stages = [("mllm_train", _py("text4seg.mllm.full_train", "--config", "configs/default/mllm_train_backbone.yaml",
                                 "--steps", str(p.mllm_steps),
                                 "--minutes", str(round(minutes * p.mllm_steps / total, 2)), *common))]  # fmt: skip
    if p.mllm_continue_steps > p.mllm_steps:
        share = round(minutes * (p.mllm_continue_steps - p.mllm_steps) / total, 2)
        stages.append(("mllm_continue", _py("text4seg.mllm.full_train", "--config", "configs/default/mllm_continue_backbone.yaml",
                                            "--steps", str(p.mllm_continue_steps), "--minutes", str(share), *common)))  # fmt: skip
    trained = run / "mllm"
    if p.mllm_regrid_steps:
        share = round(minutes * p.mllm_regrid_steps / total, 2)
        stages += [
            ("mllm_regrid", _py("text4seg.mllm.text_vision", "regrid", str(trained / "model"), str(run / "mllm_regrid_base"),
                                *regrid_arguments())),
            ("conversations_regrid", _py("data_builders.conversations", "--synthetic", str(data / "corpus_train"),
                                         "--out", str(data / "conv_train_regrid"), "--config", REGRID_ROWS, "--seed", "0")),
            ("mllm_regrid_train", _train_from(plan, "configs/default/mllm_regrid.yaml", model=run / "mllm_regrid_base",
                                              head=trained, data=data / "conv_train_regrid", out=run / "mllm_regrid",
                                              steps=p.mllm_regrid_steps, minutes=share)),
        ]  # fmt: skip
        trained = run / "mllm_regrid"
    if p.mllm_hint_steps:
        share = round(minutes * p.mllm_hint_steps / total, 2)
        stages += [
            ("mllm_grow", _py("text4seg.mllm.text_vision", "grow", str(trained / "model"), str(run / "mllm_grown"),
                              "--reading-hint")),
            ("conversations_hint", _py("data_builders.conversations", "--synthetic", str(data / "corpus_train"),
                                       "--out", str(data / "conv_train_hint"), "--config",
                                       "configs/default/conversations_hint.yaml", "--grid-from", str(trained / "model"),
                                       "--seed", "0")),
            ("mllm_hint", _train_from(plan, "configs/default/mllm_hint.yaml", model=run / "mllm_grown", head=trained,
                                      data=data / "conv_train_hint", out=run / "mllm_hint", steps=p.mllm_hint_steps,
                                      minutes=share)),
        ]  # fmt: skip
    return stages


def final_mllm(plan: Plan) -> Path:
    """The MLLM checkpoint the package takes: the last stage's."""
    p = plan.profile
    last = "mllm_hint" if p.mllm_hint_steps else "mllm_regrid" if p.mllm_regrid_steps else "mllm"
    return plan.run / last / "model"


def final_refiner(plan: Plan) -> Path:
    """The refiner checkpoint the package takes: the last stage's."""
    last = "refiner_augment" if plan.profile.refiner_augment_steps else "refiner"
    return plan.run / last / "refiner.safetensors"


def refiner_commands(plan: Plan, *, last_minutes: float | None = None) -> list[tuple[str, list[str]]]:
    """The refiner chain; its last stage trains for ``last_minutes`` (default: its part of the refiner's
    share, which the text-backbone stages split by their steps after the stroke refiner's part)."""
    run, p = plan.run, plan.profile
    common = ["--data", str(plan.data / "corpus_train"), "--threads", str(p.threads_per_trainer),
              "--device", plan.device]  # fmt: skip
    stages: list[tuple[str, list[str]]] = []
    share = plan.budget("refiner")
    if p.refiner_base_steps:
        base = run / "refiner_base"
        share -= plan.budget("refiner_base")
        stages.append(("refiner_base", _py("stsam_refiner.train", "--config", "configs/default/refiner_train.yaml",
                                           "--output-dir", str(base), "--steps", str(p.refiner_base_steps),
                                           "--minutes", str(plan.budget("refiner_base")), *common)))  # fmt: skip
        config, start = (
            "configs/default/refiner_warm_backbone.yaml",
            ["--warm-start", str(base / "refiner.safetensors")],
        )
    else:
        config, start = "configs/default/refiner_train_backbone.yaml", []
    main = share * p.refiner_steps / (p.refiner_steps + p.refiner_augment_steps)
    stages.append(("refiner_train", _py("stsam_refiner.train", "--config", config, *start,
                                        "--output-dir", str(run / "refiner"), "--steps", str(p.refiner_steps),
                                        "--minutes", str(round(main, 2)), *common)))  # fmt: skip
    if p.refiner_augment_steps:
        stages.append(("refiner_augment", _py("stsam_refiner.train", "--config", "configs/default/refiner_augment.yaml",
                                              "--warm-start", str(run / "refiner" / "refiner.safetensors"),
                                              "--output-dir", str(run / "refiner_augment"),
                                              "--steps", str(p.refiner_augment_steps),
                                              "--minutes", str(round(share - main, 2)), *common)))  # fmt: skip
    if last_minutes is not None:
        name, command = stages[-1]
        at = command.index("--minutes") + 1
        stages[-1] = (name, [*command[:at], str(last_minutes), *command[at + 1 :]])
    return stages


def refiner_chain(plan: Plan, started: float) -> None:
    """The refiner's stages one after another (log ``RUN/refiner.log``); the last one gets what the
    refiner's share has left."""
    commands = refiner_commands(plan)
    for name, command in commands[:-1]:
        _stage(plan, name, command, log=plan.run / "refiner.log")
    spent = (time.time() - started) / 60
    left = max(MIN_TRAIN_MINUTES, round(plan.budget("refiner") - spent, 2))
    name, command = refiner_commands(plan, last_minutes=left)[-1]
    _stage(plan, name, command, log=plan.run / "refiner.log")


def train_stage(plan: Plan) -> None:
    """The refiner chain in a background thread while the MLLM stages run one after another."""
    start = time.time()
    failures: list[BaseException] = []

    def refiners() -> None:
        try:
            refiner_chain(plan, start)
        except BaseException as error:  # reported after the MLLM chain, which keeps going
            failures.append(error)

    print(
        f"[{time.strftime('%H:%M:%S')}] == refiner chain (background, log {plan.run / 'refiner.log'})",
        flush=True,
    )
    background = threading.Thread(target=refiners, name="refiner-chain")
    background.start()
    try:
        for name, command in mllm_commands(plan):
            _stage(plan, name, command, log=plan.run / "mllm.log")
        # MLLM training gets what the chain's share has left after base, vision pretraining and chat rows
        # (their time scales with the corpus), so the chain ends with its share, as the refiner does.
        spent = (time.time() - start) / 60
        left = max(MIN_TRAIN_MINUTES, round(plan.budget("vision") + plan.budget("mllm") - spent, 2))
        for name, command in mllm_trainers(plan, left):
            _stage(plan, name, command, log=plan.run / "mllm.log")
    finally:
        background.join()
    if failures:
        raise RuntimeError(f"refiner training failed; see {plan.run / 'refiner.log'}") from failures[0]


def package_stage(plan: Plan) -> None:
    training = {
        "train_images": plan.profile.train_images,
        "train_data": "configs/data/corpus_train.yaml (train font families and photos), seed 100",
        "select_data": "configs/data/corpus_select.yaml (held-out families and photos), seed 200",
        "test_data": "configs/data/corpus_test.yaml (held-out families, photos and generator setting), seed 300",
        "budget_minutes": plan.minutes,
        "profile": plan.profile.to_dict(),
    }
    (plan.run / "training.json").write_text(json.dumps(training, indent=1) + "\n")
    refiner = final_refiner(plan)
    if plan.profile.calibrate_refiner:
        calibrated = plan.run / "refiner_calibrated" / "refiner.safetensors"
        _stage(plan, "refiner_calibrate", _py("stsam_refiner.calibrate", "--checkpoint", str(refiner),
                                              "--data", str(plan.data / "corpus_select"),
                                              "--limit", str(plan.profile.measure_images),
                                              "--settings", str(final_mllm(plan)),
                                              "--flips", *plan.profile.refiner_flips, "--out", str(calibrated),
                                              "--threads", str(2 * plan.profile.threads_per_trainer),
                                              "--device", plan.device))  # fmt: skip
        refiner = calibrated
    _stage(plan, "package", _py("text4seg.app.default_package", "package",
                                "--mllm", str(final_mllm(plan)),
                                "--refiner", str(refiner),
                                "--val-data", str(plan.data / "corpus_select"),
                                "--val-seed", "200", "--val-config", "configs/data/corpus_select.yaml",
                                "--limit", str(plan.profile.measure_images),
                                "--stages", str(plan.run / "stages.jsonl"),
                                "--training", str(plan.run / "training.json"), "--out", str(plan.out),
                                "--device", plan.device, "--refiner-flips", *plan.profile.refiner_flips,
                                *(("--hint-clip", str(plan.profile.hint_clip)) if plan.profile.hint_clip is not None else ()),
                                "--hint-snap", str(plan.profile.hint_snap),
                                *(("--text-gate", str(plan.profile.text_gate)) if plan.profile.text_gate is not None else ())))  # fmt: skip


def build(plan: Plan) -> None:
    plan.run.mkdir(parents=True, exist_ok=True)
    plan.data.mkdir(parents=True, exist_ok=True)
    started = time.time()
    data_stage(plan)
    train_stage(plan)
    package_stage(plan)
    print(
        f"[{time.strftime('%H:%M:%S')}] built {plan.out} in {(time.time() - started) / 60:.1f} min",
        flush=True,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m text4seg.app.build_default", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where the stages run, and the profile of configs/default/build.yaml")  # fmt: skip
    parser.add_argument("--minutes", type=float, required=True, help="time budget of the whole build")
    parser.add_argument("--run-dir", default="runs/default", help="checkpoints, logs, stage record")
    parser.add_argument("--data-dir", default="data/default", help="generated corpus")
    parser.add_argument("--out", default=str(DEFAULT_ROOT), help="package folder (the embedded default)")
    parser.add_argument(
        "--assets-dir", help="pack_assets folder for the corpus (a machine without the font packages)"
    )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a field of the device's profile (e.g. train_images=48), for dry runs")  # fmt: skip
    args = parser.parse_args(argv)
    if args.minutes <= 0:
        parser.error(f"--minutes {args.minutes} must be > 0")
    config = BuildConfig.from_yaml(BUILD_CONFIG, overrides=[f"{args.device}.{item}" for item in args.set])
    profile = getattr(config, args.device)
    assets = Path(args.assets_dir) if args.assets_dir else None
    build(Plan(run=Path(args.run_dir), data=Path(args.data_dir), out=Path(args.out), minutes=args.minutes,
               profile=profile, device=args.device, assets_dir=assets))  # fmt: skip


if __name__ == "__main__":
    main()
