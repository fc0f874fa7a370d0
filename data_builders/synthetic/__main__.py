"""python -m data_builders.synthetic --n 2000 --out DIR --seed 0 [--layout arrow|totaltext|textseg]"""

from __future__ import annotations

import argparse
import dataclasses
import time

from data_builders.synthetic.build import build
from data_builders.synthetic.config import FONT_SETS, LAYOUTS, SyntheticConfig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m data_builders.synthetic", description=__doc__)
    parser.add_argument("--n", type=int, required=True, help="number of images")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layout", choices=LAYOUTS, default="arrow")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--config", help="YAML with SyntheticConfig fields (configs/data/synthetic*.yaml)")
    parser.add_argument("--size", type=int, help="image side in pixels (overrides the config)")
    parser.add_argument("--fonts", choices=FONT_SETS, help="font set (overrides the config)")
    parser.add_argument(
        "--assets-dir",
        help="fonts/ + backgrounds/ folder from pack_assets, replacing the packages (overrides the config)",
    )
    args = parser.parse_args(argv)
    cfg = SyntheticConfig.from_yaml(args.config) if args.config else SyntheticConfig()
    pairs = (("size", args.size), ("fonts", args.fonts), ("assets_dir", args.assets_dir))
    overrides = {k: v for k, v in pairs if v is not None}
    cfg = dataclasses.replace(cfg, **overrides)
    start = time.perf_counter()
    build(cfg, n=args.n, out=args.out, seed=args.seed, layout=args.layout, workers=args.workers)
    seconds = time.perf_counter() - start
    print(f"wrote {args.n} {args.layout} samples to {args.out} in {seconds:.1f} s ({args.workers} workers)")


if __name__ == "__main__":
    main()
