"""Generation cost of R-RLE vs full descriptors, and of grammar-constrained vs free decoding.

One model (a random-weight LLaVA of the embedded default architecture, configs/mllm/default_llava.yaml)
and one image set (synthetic scene-text images from data_builders, fixed seed), all in one run.

Method. An untrained model would not write the ground-truth answers by itself, and free-running
random decoding gives answers of arbitrary length, so every condition *force-decodes* a known answer:
`model.generate` runs as usual (prompt prefill, then one token per step with the KV cache, greedy),
with a logits processor that leaves only the ground-truth token allowed at each step. The wall time
is thus the cost of generating that answer token by token, prompt included.
- R-RLE vs full: the same ground-truth grid (16×16, nearest rule) written as R-RLE and as a full
  descriptor (one label per patch), each after the same template sentence. Speedup = full time / R-RLE time.
- Constrained vs unconstrained: the same forced R-RLE answers, with the R-RLE grammar processor
  (`text4seg.mllm.constrained`) running before the forcing processor; it tracks the grammar state
  and adds its mask every step, so the token sequences are identical and the difference is its cost.
  "warm": the grammar's mask cache is shared across images (as `segment(masks_cache=...)` allows);
  "cold": a fresh cache per answer (every mask computed on first use). Overhead = extra time / time.
  Because that difference is small next to machine noise, the processor is also timed alone: the
  same answers replayed through it step by step without the model (CPU time), divided by the CPU
  time of unconstrained decoding ("constrained_overhead_isolated").
Conditions are interleaved per image and repeated; per image and condition the fastest repeat is
kept (other processes on a shared machine only ever add time), then summed over images. Process CPU
time (single-threaded torch) is reported beside wall time: it is less sensitive to other load.

Prints a side-by-side table, then one JSON line with rrle_tokens, full_tokens, rrle_vs_full_speedup
(wall time), constrained_overhead and the rest of the figures. constrained_overhead is the CPU-time
figure (warm cache): a few percent is below what wall time resolves on a shared machine (the wall
figures, constrained_overhead_wall*, came out between -9% and +10% for the same code in repeated
runs; the CPU-time figure between -5% and +5%). constrained_overhead_isolated is the most precise
(it leaves out the model) and the one to compare between versions of the processor.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import LogitsProcessor

ROOT = Path(__file__).resolve().parents[1]


class ForceAnswer(LogitsProcessor):
    """Leaves exactly one allowed token per step: the next one of a fixed answer (ending with eos)."""

    def __init__(self, answer_ids: list[int]) -> None:
        self.answer_ids = answer_ids
        self.prompt_length: int | None = None

    def __call__(self, input_ids, scores):
        if self.prompt_length is None:
            self.prompt_length = input_ids.shape[1]
        step = input_ids.shape[1] - self.prompt_length
        forced = torch.full_like(scores, float("-inf"))
        forced[:, self.answer_ids[step]] = 0.0
        return forced


def image_set(n: int, size: int, seed: int):
    """`n` synthetic scene-text images (HWC uint8) with their text masks (HxW bool)."""
    from data_builders.synthetic.build import iter_rendered
    from data_builders.synthetic.config import SyntheticConfig

    cfg = SyntheticConfig(size=size, p_no_text=0.0)
    from PIL import Image

    def decode(field) -> np.ndarray:  # Arrow rows hold PNG bytes
        return np.asarray(Image.open(io.BytesIO(field["bytes"])))

    rows = iter_rendered(cfg, n=n, seed=seed, layout="arrow", out=None, workers=1, progress=False)
    return [(np.array(decode(row["image"])[..., :3]), decode(row["mask"]) > 127) for row in rows]


def answers(mask: np.ndarray, grid: int, sentence: str) -> dict[str, str]:
    from text4seg.core.codec import BACKGROUND, encode_full, encode_rrle, format_answer
    from text4seg.core.masks import descriptor_from_index, grid_from_mask

    cells = grid_from_mask(mask, grid_size=(grid, grid), rule="nearest")
    labels = descriptor_from_index(np.asarray(cells, np.int64), [BACKGROUND, "text"])
    return {
        "rrle": format_answer(encode_rrle(labels), sentence=sentence),
        "full": format_answer(encode_full(labels), sentence=sentence),
    }


def timed_generate(model, inputs, answer_ids, extra=()) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of force-decoding `answer_ids`."""
    processors = [*extra, ForceAnswer(answer_ids)]
    start, cpu = time.perf_counter(), time.process_time()
    with torch.no_grad():
        out = model.generate(
            **inputs, max_new_tokens=len(answer_ids), do_sample=False, logits_processor=processors
        )
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    produced = out[0, inputs["input_ids"].shape[1] :].tolist()
    if produced != answer_ids:
        raise RuntimeError("forced decoding did not reproduce the answer: the grammar rejected a token?")
    return seconds, cpu_seconds


def processor_seconds(masks, answers: list[list[int]], budget: int, vocab_size: int) -> float:
    """CPU seconds the grammar processor alone spends on `answers`, replayed step by step as
    `generate` would call it (growing input ids, one scores row), without the model."""
    from text4seg.mllm.constrained import RrleLogitsProcessor

    scores = torch.zeros(1, vocab_size)
    prompt = torch.zeros(1, 8, dtype=torch.long)
    total = 0.0
    for ids in answers:
        processor = RrleLogitsProcessor(masks=masks, max_new_tokens=budget)
        prefixes = [
            torch.cat([prompt, torch.tensor([ids[:k]], dtype=torch.long)], dim=1) for k in range(len(ids))
        ]
        start = time.process_time()
        for prefix in prefixes:
            processor(prefix, scores)
        total += time.process_time() - start
    return total


def prepare(args):
    """The model, its processor and per image (processor inputs, {"rrle"|"full": answer ids + eos})."""
    from text4seg.core.templates import get_template_set
    from text4seg.mllm.generate import build_inputs
    from text4seg.mllm.loading import load_mllm
    from text4seg.mllm.tiny import TinyMllmConfig, build_tiny_llava

    config = TinyMllmConfig.from_yaml(args.config)
    with tempfile.TemporaryDirectory() as tmp:
        loaded = load_mllm(build_tiny_llava(Path(tmp) / "model", config=config))
    tokenizer = loaded.processor.tokenizer
    templates = get_template_set("fixed")
    question = templates.question("scene_text", "text")
    sentence = templates.answer_sentence("scene_text", "text")
    samples = []
    for image, mask in image_set(args.images, config.image_size, args.seed):
        ids = {
            name: tokenizer.encode(text, add_special_tokens=False) + [tokenizer.eos_token_id]
            for name, text in answers(mask, args.grid, sentence).items()
        }
        samples.append((build_inputs(loaded.processor, image, question), ids))
    return loaded.model, loaded.processor, samples


def fastest(conditions: dict, samples, repeats: int) -> tuple[dict, dict]:
    """Per condition: (sum over images of the fastest wall time, same for CPU time)."""
    best = {name: [(float("inf"), float("inf"))] * len(samples) for name in conditions}
    for _ in range(repeats):
        for index, (inputs, ids) in enumerate(samples):
            for name, fn in conditions.items():  # interleaved, so slow spells hit every condition
                wall, cpu = fn(inputs, ids)
                old = best[name][index]
                best[name][index] = (min(old[0], wall), min(old[1], cpu))
    wall = {name: sum(w for w, _ in times) for name, times in best.items()}
    cpu = {name: sum(c for _, c in times) for name, times in best.items()}
    return wall, cpu


def run(args) -> dict:
    from text4seg.mllm.constrained import RrleLogitsProcessor, masks_for
    from text4seg.mllm.generate import default_max_new_tokens

    torch.set_num_threads(args.threads)
    model, processor, samples = prepare(args)
    budget = default_max_new_tokens(args.grid, args.grid)  # what segment() gives the processor
    if budget < max(len(ids["rrle"]) for _, ids in samples):
        raise ValueError(f"an R-RLE answer is longer than the generation budget {budget}")

    def grammar(masks=None):
        masks = masks or masks_for(processor.tokenizer, height=args.grid, width=args.grid, labels=["text"])
        return [RrleLogitsProcessor(masks=masks, max_new_tokens=budget)]

    warm = masks_for(processor.tokenizer, height=args.grid, width=args.grid, labels=["text"])
    for inputs, ids in samples:  # fill the warm cache and check every answer is grammatical
        timed_generate(model, inputs, ids["rrle"], grammar(warm))
    conditions = {
        "rrle": lambda inputs, ids: timed_generate(model, inputs, ids["rrle"]),
        "full": lambda inputs, ids: timed_generate(model, inputs, ids["full"]),
        "warm": lambda inputs, ids: timed_generate(model, inputs, ids["rrle"], grammar(warm)),
        "cold": lambda inputs, ids: timed_generate(model, inputs, ids["rrle"], grammar()),
    }
    wall, cpu = fastest(conditions, samples, args.repeats)
    rrle_answers = [ids["rrle"] for _, ids in samples]
    vocab = model.config.text_config.vocab_size
    isolated = min(processor_seconds(warm, rrle_answers, budget, vocab) for _ in range(3))
    n = len(samples)
    rrle_tokens = sum(map(len, rrle_answers)) / n
    full_tokens = sum(len(ids["full"]) for _, ids in samples) / n
    return {
        "model_params": sum(p.numel() for p in model.parameters()),
        "images": n,
        "grid": args.grid,
        "repeats": args.repeats,
        "rrle_tokens": round(rrle_tokens, 1),
        "full_tokens": round(full_tokens, 1),
        "token_reduction": round(1 - rrle_tokens / full_tokens, 3),
        "rrle_seconds_per_answer": round(wall["rrle"] / n, 4),
        "full_seconds_per_answer": round(wall["full"] / n, 4),
        "rrle_vs_full_speedup": round(wall["full"] / wall["rrle"], 2),
        "constrained_seconds_per_answer": round(wall["warm"] / n, 4),
        "constrained_overhead_wall": round(wall["warm"] / wall["rrle"] - 1, 4),
        "constrained_overhead_wall_cold_cache": round(wall["cold"] / wall["rrle"] - 1, 4),
        "cpu_rrle_vs_full_speedup": round(cpu["full"] / cpu["rrle"], 2),
        "constrained_overhead": round(cpu["warm"] / cpu["rrle"] - 1, 4),
        "constrained_overhead_cold_cache": round(cpu["cold"] / cpu["rrle"] - 1, 4),
        "processor_us_per_token": round(isolated / (rrle_tokens * n) * 1e6, 1),
        "constrained_overhead_isolated": round(isolated / cpu["rrle"], 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--config", default=str(ROOT / "configs/mllm/default_llava.yaml"), help="TinyMllmConfig YAML"
    )
    parser.add_argument("--images", type=int, default=8, help="synthetic images in the set")
    parser.add_argument("--grid", type=int, default=16, help="descriptor grid side")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (median is reported)")
    parser.add_argument("--seed", type=int, default=0, help="image-set seed")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    figures = run(parser.parse_args())
    print(f"{'':28s}{'R-RLE':>12s}{'full':>12s}")
    print(f"{'tokens per answer':28s}{figures['rrle_tokens']:12.1f}{figures['full_tokens']:12.1f}")
    print(
        f"{'seconds per answer':28s}{figures['rrle_seconds_per_answer']:12.4f}{figures['full_seconds_per_answer']:12.4f}"
    )
    print(
        f"R-RLE vs full: {figures['rrle_vs_full_speedup']:.2f}x faster, {figures['token_reduction']:.0%} fewer tokens"
    )
    print(f"{'':28s}{'free':>12s}{'constrained':>12s}")
    print(
        f"{'seconds per R-RLE answer':28s}{figures['rrle_seconds_per_answer']:12.4f}"
        f"{figures['constrained_seconds_per_answer']:12.4f}"
    )
    print(
        f"constrained overhead, wall time: {figures['constrained_overhead_wall']:+.1%} (warm mask cache), "
        f"{figures['constrained_overhead_wall_cold_cache']:+.1%} (cold)"
    )
    print(
        f"grammar processor alone: {figures['processor_us_per_token']:.1f} us/token, "
        f"{figures['constrained_overhead_isolated']:+.1%} of R-RLE decoding CPU time"
    )
    print(
        f"CPU time: R-RLE vs full {figures['cpu_rrle_vs_full_speedup']:.2f}x, constrained overhead "
        f"{figures['constrained_overhead']:+.1%} warm / {figures['constrained_overhead_cold_cache']:+.1%} cold"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
