"""Shared helpers of the training tests: a tiny chat dataset in the conversation builder's format."""

from __future__ import annotations

from pathlib import Path

QUESTION = "<image>\nPlease segment only the text in the image."
SENTENCE = "Sure, here is the segmentation mask for 'text':"


def chat_rows(n: int, *, grid: int = 4, seed: int = 0) -> dict:
    """Columns of ``n`` samples: random RGB images and an R-RLE answer with one text box each."""
    import numpy as np
    from PIL import Image

    from text4seg.codec import BACKGROUND, encode_rrle, format_answer

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
