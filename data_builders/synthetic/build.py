"""Building a synthetic corpus with parallel workers: same (seed, index) -> same sample, any worker count."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path

from data_builders.synthetic.config import LAYOUTS, SyntheticConfig
from data_builders.synthetic.corpus_scene import prepare_sources
from data_builders.synthetic.writers import arrow_features, render_index


def iter_rendered(
    cfg: SyntheticConfig,
    *,
    n: int,
    seed: int,
    layout: str,
    out: Path | None,
    workers: int,
    progress: bool = True,
) -> Iterator[dict]:
    """Yield worker results for indices 0..n-1 in order (rows for "arrow", {id, split} otherwise)."""
    from tqdm import tqdm

    if cfg.extended:
        for warning in prepare_sources(cfg):
            print(f"warning: {warning}", file=sys.stderr)
    job = partial(render_index, cfg, seed, layout=layout, out=out)
    bar = tqdm(total=n, desc=f"synthetic {layout}", unit="img", disable=not progress)
    try:
        if workers <= 1:
            for i in range(n):
                yield job(i)
                bar.update()
            return
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers) as pool:
            for result in pool.imap(job, range(n), chunksize=8):
                yield result
                bar.update()
    finally:
        bar.close()


def _arrow_generator(cfg: SyntheticConfig, n: int, seed: int, workers: int):
    yield from iter_rendered(cfg, n=n, seed=seed, layout="arrow", out=None, workers=workers)


def build(
    cfg: SyntheticConfig, *, n: int, out: str | Path, seed: int, layout: str = "arrow", workers: int = 2
):
    """Write `n` samples to `out` in `layout`; returns the Dataset for "arrow", else the split lists."""
    import datasets

    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r} not in {LAYOUTS}")
    if n < 1:
        raise ValueError(f"n {n} < 1")
    out = Path(out)
    if layout == "arrow":
        cache = out.parent / f".{out.name}.cache"
        data = datasets.Dataset.from_generator(
            _arrow_generator,
            gen_kwargs={"cfg": cfg, "n": n, "seed": seed, "workers": workers},
            features=arrow_features(),
            cache_dir=str(cache),
        )
        data.save_to_disk(str(out))
        (out / "synthetic_config.json").write_text(
            json.dumps({**cfg.to_dict(), "seed": seed, "n": n}, indent=2)
        )
        shutil.rmtree(cache, ignore_errors=True)
        return datasets.load_from_disk(str(out))
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for result in iter_rendered(cfg, n=n, seed=seed, layout=layout, out=out, workers=workers):
        splits[result["split"]].append(result["id"])
    if layout == "textseg":
        (out / "split.json").write_text(json.dumps(splits, indent=1))
    (out / "synthetic_config.json").write_text(json.dumps({**cfg.to_dict(), "seed": seed, "n": n}, indent=2))
    return splits
