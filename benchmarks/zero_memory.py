"""Per-rank bytes of parameters + gradients + optimizer state: DDP vs DeepSpeed ZeRO-2 vs ZeRO-3, 2 ranks.

Usage (re-launches itself under ``torchrun --nproc_per_node 2`` when started directly):

    python benchmarks/zero_memory.py [--text-hidden 256 --text-layers 4]

Method: the same tiny LLaVA (CLIP vision + Qwen2 LM, every weight trainable, AdamW) is trained for
two steps with each strategy on the same batch. During the second step, after ``backward`` and
before ``step`` (gradients and optimizer state both alive: the steady-state peak), each rank walks
the tensors it holds - model parameters and ZeRO-3 shards (``param.ds_tensor``), ``param.grad``,
the optimizer's state, and every tensor in the ZeRO optimizer's attributes (flat fp32 master
partitions, gradient partitions, reduce buckets) - and sums the sizes of their *storages*, each
storage once (see ``text4seg.mllm.distributed.state_bytes``). DDP uses ``gradient_as_bucket_view``
so its reduce buckets are the gradients (no second copy). Activations and the process's other
memory are not counted. The ZeRO configs are the training configs in ``text4seg/mllm/deepspeed/`` with
their "auto" fields filled here; ZeRO-3's persistence threshold is set to 0 so every parameter is
partitioned (the training default keeps parameters smaller than 10×hidden whole on every rank).

Precision: DDP keeps fp32 weights (what AMP does too, so its bytes are the same with bf16 autocast).
ZeRO runs twice: fp32 (this CPU's training default) and bf16 weights with fp32 master copies (the
GPU setting). DeepSpeed keeps a separate fp32 master copy of each partition even when the weights
are fp32 already, which is why fp32 ZeRO saves less than the ideal 1/ranks.

The last line is a JSON object with the per-strategy bytes of rank 0, the ratios ``zero2_vs_ddp``
and ``zero3_vs_ddp`` (total bytes of rank 0 over DDP's, bf16 mixed precision) and the same for
fp32 as ``zero2_vs_ddp_fp32`` / ``zero3_vs_ddp_fp32``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--text-hidden", type=int, default=256, help="Qwen2 width of the benchmark model")
    parser.add_argument("--text-layers", type=int, default=4, help="Qwen2 depth of the benchmark model")
    parser.add_argument("--nproc", type=int, default=2, help="ranks (processes) to launch")
    return parser.parse_args(argv)


def _zero_config(stage: int, *, hidden: int, bf16: bool) -> dict:
    config = json.loads((REPO / "configs" / "deepspeed" / f"zero{stage}.json").read_text())
    config.update(
        train_micro_batch_size_per_gpu=1,
        gradient_accumulation_steps=1,
        train_batch_size=int(os.environ["WORLD_SIZE"]),
        gradient_clipping=1.0,
        bf16={"enabled": bf16},
        zero_allow_untested_optimizer=True,
    )
    config["fp16"]["enabled"] = False
    zero = config["zero_optimization"]
    zero["reduce_bucket_size"] = hidden * hidden
    if stage == 3:
        zero.update(
            stage3_prefetch_bucket_size=int(0.9 * hidden * hidden), stage3_param_persistence_threshold=0
        )
    return config


def _batch(processor):
    import numpy as np
    from PIL import Image

    from text4seg.core.codec import encode_rrle, format_answer
    from text4seg.mllm.collator import ChatCollator

    grid = [["others"] * 8 for _ in range(8)]
    grid[3][2:6] = ["text"] * 4
    answer = format_answer(encode_rrle(grid), sentence="Sure, here is the segmentation mask for 'text':")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    row = {
        "image": image,
        "messages": [
            {"role": "user", "content": "<image>\nPlease segment only the text in the image."},
            {"role": "assistant", "content": answer},
        ],
    }
    return ChatCollator(processor=processor)([row])


def _measure(mode: str, model_dir: str, args, *, bf16: bool) -> dict:
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from text4seg.mllm.distributed import state_bytes

    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(model_dir).train()
    batch = _batch(AutoProcessor.from_pretrained(model_dir))
    n_params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    if mode == "ddp":
        engine = torch.nn.parallel.DistributedDataParallel(
            model, gradient_as_bucket_view=True, find_unused_parameters=True
        )
        for step in range(2):
            engine(**batch).loss.backward()
            if step == 1:
                held = state_bytes(model, optimizer)
            optimizer.step()
            optimizer.zero_grad(set_to_none=False)
    else:
        import deepspeed

        config = _zero_config(int(mode[4]), hidden=args.text_hidden, bf16=bf16)
        engine, zero_optimizer, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=config)
        if bf16:
            batch["pixel_values"] = batch["pixel_values"].bfloat16()
        for step in range(2):
            engine.backward(engine(**batch).loss)
            if step == 1:
                held = state_bytes(engine.module, zero_optimizer)
            engine.step()
    return {
        "params": held.params,
        "grads": held.grads,
        "optimizer": held.optimizer,
        "total": held.total,
        "n": n_params,
    }


def _worker(args) -> None:
    import torch
    import torch.distributed as dist

    from text4seg.mllm.tiny import TinyMllmConfig, build_tiny_llava

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    model_dir = Path(tempfile.gettempdir()) / f"zero_memory_model_{os.environ.get('MASTER_PORT', '0')}"
    if rank == 0:
        config = TinyMllmConfig(text_hidden=args.text_hidden, text_layers=args.text_layers, vision_hidden=64)
        build_tiny_llava(model_dir, config=config)
    dist.barrier()
    results = {}
    for mode in ("ddp", "zero2_fp32", "zero3_fp32", "zero2_bf16", "zero3_bf16"):
        mine = _measure(mode, str(model_dir), args, bf16=mode.endswith("bf16"))
        everyone = [None] * dist.get_world_size()
        dist.all_gather_object(everyone, mine)
        results[mode] = everyone
    if rank == 0:
        _report(results, args)
    dist.barrier()


def _report(results: dict, args) -> None:
    mib = 1 / 2**20
    n = results["ddp"][0]["n"]
    print(f"\nmodel: {n:,} parameters, all trainable; AdamW; ranks: {len(results['ddp'])}")
    print(
        f"{'strategy':<10} {'rank':>4} {'params MiB':>11} {'grads MiB':>10} {'optim MiB':>10} {'total MiB':>10} {'vs DDP':>7}"
    )
    ddp_total = results["ddp"][0]["total"]
    for mode, ranks in results.items():
        for rank, r in enumerate(ranks):
            print(
                f"{mode:<10} {rank:>4} {r['params'] * mib:>11.2f} {r['grads'] * mib:>10.2f} "
                f"{r['optimizer'] * mib:>10.2f} {r['total'] * mib:>10.2f} {r['total'] / ddp_total:>7.3f}"
            )
    figures = {mode: {k: v for k, v in ranks[0].items() if k != "n"} for mode, ranks in results.items()}
    figures.update(
        n_params=n,
        ranks=len(results["ddp"]),
        zero2_vs_ddp=round(results["zero2_bf16"][0]["total"] / ddp_total, 4),
        zero3_vs_ddp=round(results["zero3_bf16"][0]["total"] / ddp_total, 4),
        zero2_vs_ddp_fp32=round(results["zero2_fp32"][0]["total"] / ddp_total, 4),
        zero3_vs_ddp_fp32=round(results["zero3_fp32"][0]["total"] / ddp_total, 4),
    )
    print(json.dumps(figures))


def main(argv=None) -> None:
    args = _args(argv)
    if "RANK" in os.environ:
        _worker(args)
        return
    env = {**os.environ, "DS_ACCELERATOR": os.environ.get("DS_ACCELERATOR", "cpu"), "OMP_NUM_THREADS": "1"}
    torchrun = Path(sys.executable).with_name("torchrun")
    with socket.socket() as sock:  # a free rendezvous port: other jobs may hold the default one
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [str(torchrun), "--nproc_per_node", str(args.nproc), "--master_port", str(port), __file__]
    subprocess.run(command + sys.argv[1:], env=env, check=True)


if __name__ == "__main__":
    main()
