"""Shared pieces of the web-demo tests: a real pipeline on tiny random-weight checkpoints, test
images, and a server running on a free loopback port."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

import numpy as np
import pipeline_support

# A 4×4 grid keeps the random model's answers short (its generation stops at the grid's budget);
# pipeline_support's tiny pipeline is configured with it too.
TEST_GRID = (4, 4)


def tiny_checkpoints() -> tuple[Path, Path]:
    """(MLLM folder, refiner file) of the session's tiny random-weight checkpoints: a LLaVA written
    by ``save_pretrained`` and a refiner written by ``stsam_refiner.build.save_refiner``."""
    ckpt = pipeline_support.tiny_checkpoints()
    return ckpt.mllm, ckpt.refiner


def tiny_pipeline():
    """``Text4SegPipeline.from_pretrained`` on those checkpoints, loaded once per session and
    shared with the pipeline tests."""
    import torch

    torch.set_num_threads(1)
    return pipeline_support.tiny_pipeline()


def text_photo(path: Path) -> Path:
    """scikit-image's photo of handwritten text on a board (172×448, grayscale) as a PNG."""
    from PIL import Image
    from skimage import data

    Image.fromarray(data.text()).save(path)
    return path


def bomb_png(path: Path, size: tuple[int, int] = (8200, 8000)) -> Path:
    """A ~8 kB PNG whose header claims width×height pixels (65.6 M by default, over the 64 M limit)."""
    from PIL import Image

    Image.new("1", size).save(path, optimize=True)
    return path


def noise_png(path: Path, side: int) -> Path:
    """An incompressible RGB PNG of about 3·side² bytes (for upload-size limits)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(path)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_server(pipeline, **config):
    """Serve the demo on a free loopback port in this process; yields (url, app)."""
    from text4seg.app.web import ServeConfig, build_app, launch

    cfg = ServeConfig(port=free_port(), grid=TEST_GRID, **config)
    app = build_app(pipeline=pipeline, config=cfg)
    url = launch(app, cfg, block=False, quiet=True)
    try:
        yield url, app
    finally:
        app.close()


class GatedPipeline:
    """The real pipeline, with a gate after the first streamed row: while ``gate`` is clear,
    generation waits there, so a test can look at the page mid-answer without racing it."""

    def __init__(self, pipeline) -> None:
        import threading

        self.pipeline = pipeline
        self.refiner = pipeline.refiner
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, image, query, *, on_row=None, **kwargs):
        def gated(update):
            if on_row is not None:
                on_row(update)
            if update.index == 0:
                assert self.gate.wait(timeout=300), "gate never opened"

        return self.pipeline(image, query, on_row=gated, **kwargs)
