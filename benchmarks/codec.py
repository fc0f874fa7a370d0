"""Codec benchmark: R-RLE speed on one core, and descriptor length for R-RLE vs full vs image-wise RLE.

Grids are realistic scene text: masks of the project's synthetic scenes (data_builders.synthetic,
256×256, stroke-level masks) downsampled to G×G by Text4Seg's nearest rule, and also the same masks
dilated to word boxes (what a referring answer for a word looks like at patch level).

Speed: encode_rrle + decode_rrle per 16×16 grid, CPU time of this process pinned to one core.
``cold`` clears the decoder's row memo first and runs each grid once; ``warm`` is the steady state
over repeated passes (real answers repeat rows; the memo is part of the codec).

Length: characters of each block, and tokens under two real BPE tokenizers: CLIP's (open_clip's
SimpleTokenizer, a general-purpose English BPE; it drops whitespace, so it undercounts the
separators every format has) and this project's tokenizer trained for descriptors
(text4seg.mllm.tokenizer). ``rrle_token_reduction`` = 1 − R-RLE tokens / full tokens (CLIP BPE,
16×16, stroke masks), summed over all grids.

Run: ``.venv/bin/python benchmarks/codec.py [--n 200]``. Last line: a JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from scipy import ndimage

from text4seg.core.codec import FORMATS, _decode_runs_cached, decode_rrle, encode_rrle
from text4seg.core.masks import descriptor_from_mask


def scene_masks(n: int, seed: int) -> list[np.ndarray]:
    from data_builders.synthetic.config import SyntheticConfig
    from data_builders.synthetic.scene import compose_scene, scene_rng

    cfg = SyntheticConfig()
    return [compose_scene(cfg, scene_rng(seed, i)).mask for i in range(n)]


def word_boxes(mask: np.ndarray) -> np.ndarray:
    """Fill each connected stroke group's bounding box (strokes closed first, so letters join up)."""
    joined = ndimage.binary_closing(mask, iterations=4)
    out = np.zeros_like(mask)
    labels, _ = ndimage.label(joined)
    for sl in ndimage.find_objects(labels):
        out[sl] = True
    return out


def _rate(fn, items, repeats: int) -> float:
    start = time.process_time()
    for _ in range(repeats):
        for item in items:
            fn(item)
    return repeats * len(items) / (time.process_time() - start)


def speed(grids: list) -> dict[str, float]:
    def round_trip(grid):
        return decode_rrle(encode_rrle(grid))

    _decode_runs_cached.cache_clear()
    cold = _rate(round_trip, grids, 1)
    warm = _rate(round_trip, grids, 20)
    enc = _rate(encode_rrle, grids, 20)
    blocks = [encode_rrle(g) for g in grids]
    dec = _rate(decode_rrle, blocks, 20)
    return {"cold": cold, "warm": warm, "encode": enc, "decode": dec}


def lengths(grids: list, tokenizers: dict) -> dict[str, dict[str, int]]:
    out = {}
    for name, fmt in FORMATS.items():
        blocks = [fmt.encode(g) for g in grids]
        row = {"chars": sum(map(len, blocks))}
        for tok_name, encode in tokenizers.items():
            row[f"tokens_{tok_name}"] = sum(len(encode(b)) for b in blocks)
        out[name] = row
    return out


def load_tokenizers() -> dict:
    from open_clip.tokenizer import SimpleTokenizer

    from text4seg.mllm.tokenizer import TokenizerConfig, train_tokenizer

    clip = SimpleTokenizer()
    project = train_tokenizer(TokenizerConfig())
    return {
        "clip_bpe": clip.encode,
        "project_bpe": lambda text: project(text, add_special_tokens=False)["input_ids"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200, help="synthetic scenes (default 200)")
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    masks = scene_masks(args.n, args.seed)
    tokenizers = load_tokenizers()
    grids16 = [descriptor_from_mask(m, label="text", grid_size=(16, 16)) for m in masks]
    rates = speed(grids16)
    print(
        f"R-RLE 16x16 on one core: encode+decode {rates['warm']:,.0f}/s warm, {rates['cold']:,.0f}/s cold; "
        f"encode {rates['encode']:,.0f}/s, decode {rates['decode']:,.0f}/s  ({args.n} scenes)"
    )

    boxes = [word_boxes(m) for m in masks]
    figures: dict = {
        "n_scenes": args.n,
        "rrle_encode_decode_per_s": round(rates["warm"]),
        "rrle_encode_decode_per_s_cold": round(rates["cold"]),
    }
    print(
        f"\n{'grid':>8} {'masks':>12} {'format':>6} {'chars':>9} {'clip tok':>9} {'proj tok':>9}  vs full (clip tok)"
    )
    for side in (16, 24, 32):
        for kind, source, rule in (
            ("strokes", masks, {"rule": "nearest"}),
            ("strokes_area", masks, {"rule": "area", "threshold": 0.15}),
            ("boxes", boxes, {"rule": "nearest"}),
        ):
            grids = [descriptor_from_mask(m, label="text", grid_size=(side, side), **rule) for m in source]
            table = lengths(grids, tokenizers)
            full = table["full"]["tokens_clip_bpe"]
            for name, row in table.items():
                ratio = row["tokens_clip_bpe"] / full
                print(
                    f"{side:>5}x{side:<2} {kind:>12} {name:>6} {row['chars']:>9,} {row['tokens_clip_bpe']:>9,} "
                    f"{row['tokens_project_bpe']:>9,}  {ratio:.3f}"
                )
                figures[f"tokens_{name}_{kind}_{side}"] = row["tokens_clip_bpe"]
            figures[f"rrle_token_reduction_{kind}_{side}"] = round(
                1 - table["rrle"]["tokens_clip_bpe"] / full, 4
            )
            figures[f"rrle_token_reduction_project_bpe_{kind}_{side}"] = round(
                1 - table["rrle"]["tokens_project_bpe"] / table["full"]["tokens_project_bpe"], 4
            )
    figures["rrle_token_reduction"] = figures["rrle_token_reduction_strokes_16"]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
