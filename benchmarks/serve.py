"""Web demo benchmark: what serving adds to a pipeline call, and how a burst of users is answered.

Starts ``text4seg serve``'s app in this process on a free loopback port and compares, for the same
image and query:

- ``direct_s``: median seconds of a direct ``Text4SegPipeline`` call;
- ``served_s``: median seconds of the same request sent with gradio_client (upload, queue,
  decoding, pipeline, overlays, PNG encoding, download);
- a burst of ``--users`` concurrent users (one client each): wall time, and wall time divided by
  ``users × served_s`` (≈1 when model calls take turns, as they do; below 1 when the upload and
  drawing of one request overlap another's model call).

Run: ``.venv/bin/python benchmarks/serve.py [--model DIR --refiner FILE] [--users 4] [--repeats 3]``
(default: the embedded default model). Last line: a JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

QUERY = "segment the text in this image"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _image(folder: Path) -> Path:
    """scikit-image's 172×448 photo of handwriting, as a PNG upload."""
    from PIL import Image
    from skimage import data

    path = folder / "text.png"
    Image.fromarray(data.text()).save(path)
    return path


def _request(url: str, path: Path) -> float:
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    start = time.perf_counter()
    client.predict(handle_file(str(path)), QUERY, True, api_name="/segment")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--refiner", default=None)
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()

    from text4seg.app.pipeline import Text4SegPipeline
    from text4seg.app.web import ServeConfig, build_app, launch

    pipeline = Text4SegPipeline.from_pretrained(model=args.model, refiner=args.refiner)
    config = ServeConfig(port=_free_port(), concurrency=args.concurrency, grid=pipeline.config.grid)
    app = build_app(pipeline=pipeline, config=config)
    url = launch(app, config, block=False, quiet=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = _image(Path(tmp))
        pipeline(path, QUERY)  # warm-up: first call builds grammar masks
        _request(url, path)
        direct = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            pipeline(path, QUERY)
            direct.append(time.perf_counter() - start)
        served = [_request(url, path) for _ in range(args.repeats)]
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.users) as pool:
            burst = list(pool.map(lambda _: _request(url, path), range(args.users)))
        wall = time.perf_counter() - start
    app.close()
    direct_s, served_s = statistics.median(direct), statistics.median(served)
    print(f"{'':24}{'direct':>10}{'served':>10}")
    print(f"{'seconds per request':24}{direct_s:10.3f}{served_s:10.3f}")
    print(
        f"web overhead: {served_s - direct_s:.3f} s per request ({served_s / direct_s:.2f}x the direct call)"
    )
    print(
        f"{args.users} concurrent users: all answered in {wall:.2f} s "
        f"(slowest {max(burst):.2f} s; {wall / (args.users * served_s):.2f}x {args.users} sequential requests)"
    )
    figures = {
        "direct_s": round(direct_s, 4),
        "served_s": round(served_s, 4),
        "web_overhead_s": round(served_s - direct_s, 4),
        "users": args.users,
        "concurrency": args.concurrency,
        "burst_wall_s": round(wall, 4),
        "burst_vs_sequential": round(wall / (args.users * served_s), 3),
        "burst_slowest_s": round(max(burst), 4),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
