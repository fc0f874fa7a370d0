"""Batch evaluation: one shard per process, records on disk, rank 0 merges.

Process ``rank`` of ``world_size`` (torchrun / accelerate set ``RANK`` and ``WORLD_SIZE``) takes
samples ``rank::world_size`` that are not recorded yet, appends one record per sample
(``text4seg.app.evaluation.records``) and marks itself done. Rank 0 then waits for every shard's marker
and computes the report from all records. ``merge`` alone does the last step for a folder whose
shards finished earlier.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from text4seg.app.evaluation.records import (
    RecordWriter,
    check_run_settings,
    mark_done,
    read_done,
    read_records,
)
from text4seg.app.evaluation.report import compute_report, write_report
from text4seg.app.evaluation.samples import EVAL_DATASETS, EvalSample, iter_samples
from text4seg.app.evaluation.scoring import score_sample


@dataclass(kw_only=True)
class EvalConfig:
    """One evaluation run (one process's view of it)."""

    dataset: str
    """Key of ``EVAL_DATASETS``."""
    root: str
    """Dataset folder in its published layout (or the synthetic Arrow folder)."""
    split: str
    """Split name, any case ("Test" = "test")."""
    out: str
    """Evaluation folder: run.json, records/, report.json, per_image.csv, plots."""
    task: str = "scene_text"
    """Synthetic data only: evaluate its scene-text samples or its referring expressions."""
    limit: int | None = None
    """Evaluate only the first ``limit`` samples."""
    grid: tuple[int, int] | None = None
    """Descriptor grid (None: the model's)."""
    refine: bool = True
    """Run the refiner."""
    constrained: bool = True
    """Grammar-constrained decoding."""
    rank: int = 0
    """This process's shard."""
    world_size: int = 1
    """Number of shards."""
    merge_timeout: float = 24 * 3600.0
    """Seconds rank 0 waits for the other shards before giving up (then run ``--merge`` later)."""

    def __post_init__(self) -> None:
        if self.dataset not in EVAL_DATASETS:
            raise ValueError(f"dataset {self.dataset!r} not in {EVAL_DATASETS}")
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} must be in [0, world_size {self.world_size})")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit {self.limit} must be >= 1")

    def settings(self, model: dict[str, Any]) -> dict[str, Any]:
        """What a resumed run must share with the recorded one (everything but the sharding)."""
        return {
            "dataset": self.dataset,
            "root": str(Path(self.root).resolve()),
            "split": self.split.lower(),
            "task": self.task,
            "limit": self.limit,
            "grid": list(self.grid) if self.grid else None,
            "refine": self.refine,
            "constrained": self.constrained,
            "model": model,
        }


def distributed_env() -> tuple[int, int]:
    """(rank, world_size) from torchrun / accelerate's environment, (0, 1) outside of one."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def evaluate_sample(pipeline, sample, cfg: EvalConfig) -> dict[str, Any]:
    """Run the pipeline on one sample and score it; a pipeline error is recorded, not raised, and the
    sample counts with empty predictions."""
    error = None
    try:
        result = pipeline(
            sample.image,
            sample.query,
            task=sample.task,
            grid=cfg.grid,
            refine=cfg.refine,
            constrained=cfg.constrained,
        )
    except Exception as err:  # one bad sample must not end a long run; it is counted and reported
        result, error = None, f"{type(err).__name__}: {err}"
        print(f"eval: {sample.sample_id}: {error}", file=sys.stderr)
    config = pipeline.config
    record = score_sample(
        sample,
        result,
        grid=tuple(cfg.grid or config.grid),
        rule=config.grid_rule,
        threshold=config.grid_threshold,
    )
    record.update(
        index=sample.index,
        id=sample.sample_id,
        task=sample.task,
        query=sample.query,
        answer=result.answer if result is not None else "",
        parse_failed=result.parse_failed if result is not None else True,
        repairs=[r.kind for r in result.repairs] if result is not None else [],
        refined_called=bool(result.refined_labels) if result is not None else False,
        seconds=dict(result.timings) if result is not None else {},
        error=error,
    )
    return record


def open_samples(cfg: EvalConfig) -> Iterator[EvalSample]:
    """The samples ``cfg`` evaluates, in dataset order; opening them checks the root and the split
    (LayoutError / ValueError / FileNotFoundError here, not halfway through a run)."""
    return iter_samples(cfg.dataset, root=cfg.root, split=cfg.split, task=cfg.task)


def run_shard(
    pipeline, cfg: EvalConfig, *, samples: Iterator[EvalSample], model: dict[str, Any]
) -> dict[str, Any]:
    """Evaluate this process's unrecorded ``samples`` (``open_samples(cfg)``); returns the done-marker
    info. The samples come opened, so a wrong root or split leaves no run.json behind to refuse the fix."""
    from tqdm.auto import tqdm

    out = Path(cfg.out)
    check_run_settings(out, cfg.settings(model))
    done_ids = {r["id"] for r in read_records(out)}
    start = time.perf_counter()
    n_samples = n_new = 0
    bar = tqdm(desc=f"eval {cfg.dataset} shard {cfg.rank}/{cfg.world_size}", unit="img", position=cfg.rank)
    with RecordWriter(out, cfg.rank) as writer:
        for sample in samples:
            if cfg.limit is not None and sample.index >= cfg.limit:
                break
            n_samples += 1
            if sample.index % cfg.world_size != cfg.rank or sample.sample_id in done_ids:
                continue
            writer.write(evaluate_sample(pipeline, sample, cfg))
            n_new += 1
            bar.update()
    bar.close()
    info = {"n_samples": n_samples, "new_records": n_new, "wall_seconds": time.perf_counter() - start}
    mark_done(out, cfg.rank, cfg.world_size, info)
    return info


def wait_for_shards(out: Path, world_size: int, timeout: float) -> dict[int, dict[str, Any]]:
    """Block until every shard of a ``world_size`` run has marked itself done (file barrier: it needs
    no process group, so shards may also be started by hand or on different schedules)."""
    deadline = time.monotonic() + timeout
    while True:
        done = read_done(out, world_size)
        if len(done) == world_size:
            return done
        if time.monotonic() > deadline:
            missing = sorted(set(range(world_size)) - set(done))
            raise TimeoutError(
                f"shards {missing} of {world_size} have not finished after {timeout:.0f} s; "
                f"run `text4seg eval ... --merge --out {out}` once they have"
            )
        time.sleep(0.5)


def all_done_markers(out: Path) -> list[dict[str, Any]]:
    """Done markers of every finished shard in ``out``, from any world size."""
    import json

    return [json.loads(p.read_text()) for p in sorted((Path(out) / "records").glob("done-*-of-*.json"))]


def merge(out: str | Path, *, markers: list[dict[str, Any]] | None = None):
    """Report from every record in ``out``; raises if a sample is missing. Returns (records, report)."""

    out = Path(out)
    markers = markers if markers is not None else all_done_markers(out)
    if not markers:
        raise FileNotFoundError(f"{out}: no finished evaluation shard to merge (no records/done-*.json)")
    counts = {m["n_samples"] for m in markers}
    if len(counts) != 1:
        raise ValueError(f"{out}: shards saw different sample counts {sorted(counts)}")
    n_samples = counts.pop()
    records = read_records(out)
    indices = [r["index"] for r in records]
    if indices != list(range(n_samples)):
        missing = sorted(set(range(n_samples)) - set(indices))
        raise ValueError(
            f"{out}: {len(records)} records for {n_samples} samples; missing sample indices {missing[:10]}"
            " (resume the run to fill them)"
        )
    report = compute_report(records, wall_seconds=max(m["wall_seconds"] for m in markers))
    write_report(out, records, report)
    return records, report
