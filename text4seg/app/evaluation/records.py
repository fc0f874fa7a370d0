"""Append-only per-sample records on disk: what makes evaluation resumable and shardable.

Layout of an evaluation folder::

    run.json                       the settings; a resumed run must match them
    records/rank-R.jsonl           one JSON line per finished sample, flushed and fsynced
    records/done-R-of-N.json       shard R of N finished (sample count, wall time)

A sample is recorded only after it is fully scored, and the line is on disk before the next sample
starts, so a kill loses at most the sample in progress. A line cut by the kill is dropped on restart
(and cut off the file before appending). Records are keyed by sample id, so a restart with any number
of processes skips exactly the samples already done, and merging keeps one record per id.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any


class RecordWriter:
    """Appends records to ``records/rank-R.jsonl``, each flushed and fsynced."""

    def __init__(self, folder: Path, rank: int) -> None:
        self.path = Path(folder) / "records" / f"rank-{rank}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _drop_torn_tail(self.path)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, sort_keys=True) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _drop_torn_tail(path: Path) -> None:
    """Cut an unfinished last line (a write interrupted by a kill) off ``path``."""
    if not path.is_file():
        return
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end != len(data):
        with open(path, "r+b") as f:
            f.truncate(end)


def read_records(folder: Path) -> list[dict[str, Any]]:
    """Every complete record in ``folder/records``, one per sample id (the first one seen wins),
    sorted by sample index."""
    by_id: dict[str, dict[str, Any]] = {}
    for path in sorted((Path(folder) / "records").glob("rank-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a kill; its sample is redone
            by_id.setdefault(record["id"], record)
    return sorted(by_id.values(), key=lambda r: r["index"])


def done_path(folder: Path, rank: int, world_size: int) -> Path:
    return Path(folder) / "records" / f"done-{rank}-of-{world_size}.json"


def _write_atomic(path: Path, text: str) -> None:
    """Write ``path`` so a reader never sees half a file. The temporary name is unique to this call:
    shards of one run start together and may write the same file at the same moment."""
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def mark_done(folder: Path, rank: int, world_size: int, info: dict[str, Any]) -> None:
    _write_atomic(done_path(folder, rank, world_size), json.dumps(info))


def read_done(folder: Path, world_size: int) -> dict[int, dict[str, Any]]:
    """rank → done info for the shards of a ``world_size``-process run that have finished."""
    out = {}
    for rank in range(world_size):
        path = done_path(folder, rank, world_size)
        if path.is_file():
            out[rank] = json.loads(path.read_text(encoding="utf-8"))
    return out


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys, so a mismatch names the exact setting."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_run_settings(folder: Path, settings: dict[str, Any]) -> None:
    """Write ``run.json`` on first use; on resume, refuse settings that differ from the recorded ones."""
    path = Path(folder) / "run.json"
    if path.is_file():
        recorded = _flatten(json.loads(path.read_text(encoding="utf-8")))
        now = _flatten(json.loads(json.dumps(settings)))  # as JSON would give it back (tuples → lists)
        diff = {
            k: (recorded.get(k), now.get(k))
            for k in recorded.keys() | now.keys()
            if recorded.get(k) != now.get(k)
        }
        if diff:
            detail = ", ".join(f"{k}: recorded {a!r} vs now {b!r}" for k, (a, b) in sorted(diff.items()))
            raise ValueError(
                f"{folder} holds an evaluation with other settings ({detail}); "
                "use another --out or --overwrite"
            )
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, json.dumps(settings, indent=2, sort_keys=True))  # every shard may get here
