"""Shared helpers of the training tests: a tiny chat dataset in the conversation builder's format."""

from __future__ import annotations

from pathlib import Path

QUESTION = "<image>\nPlease segment only the text in the image."
SENTENCE = "Sure, here is the segmentation mask for 'text':"


def chat_rows(n: int, *, grid: int = 4, seed: int = 0) -> dict:
    """Columns of ``n`` samples: random RGB images and an R-RLE answer with one text box each."""
    import numpy as np
    from PIL import Image

    from text4seg.core.codec import BACKGROUND, encode_rrle, format_answer

    rng = np.random.default_rng(seed)
    columns = {
        k: [] for k in ("image", "messages", "task", "target", "grid_h", "grid_w", "grid_rule", "source_id")
    }
    for i in range(n):
        labels = [[BACKGROUND] * grid for _ in range(grid)]
        row, start = int(rng.integers(grid)), int(rng.integers(grid - 1))
        labels[row][start : start + 2] = ["text", "text"]
        answer = format_answer(encode_rrle(labels), sentence=SENTENCE)
        columns["image"].append(Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)))
        columns["messages"].append(
            [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": answer}]
        )
        columns["task"].append("scene_text")
        columns["target"].append("text")
        columns["grid_h"].append(grid)
        columns["grid_w"].append(grid)
        columns["grid_rule"].append("nearest")
        columns["source_id"].append(f"synthetic/{i}")
    return columns


def write_chat_dataset(path: Path, n: int, *, grid: int = 4, seed: int = 0) -> Path:
    """Save ``n`` samples with the datasets library (Arrow, ``Image`` feature) to ``path``."""
    import datasets

    data = datasets.Dataset.from_dict(chat_rows(n, grid=grid, seed=seed))
    data = data.cast_column("image", datasets.Image())
    data.save_to_disk(str(path))
    return path


def free_port() -> int:
    """A TCP port nobody listens on right now (for the rendezvous of a multi-process test run)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _kill_at_step_callback(step: int):
    """A Trainer callback that SIGKILLs its own process right after optimizer step ``step``."""
    import os
    import signal

    from transformers import TrainerCallback

    class KillAtStep(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == step:
                # No cleanup, no flush: what a preempted node or the OOM killer does.
                os.kill(os.getpid(), signal.SIGKILL)

    return KillAtStep()


if __name__ == "__main__":
    # python tests/train_support.py KILL_AT_STEP --config ... [overrides]: train, dying at that step.
    import sys

    from text4seg.mllm.train import main

    main(sys.argv[2:], callbacks=[_kill_at_step_callback(int(sys.argv[1]))])
