"""The demo served on loopback with the real tiny pipeline, driven over HTTP by gradio_client."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from serve_support import TEST_GRID, bomb_png, noise_png, running_server, text_photo, tiny_pipeline

QUERY = "segment the text in this image"
USERS = 6


@pytest.fixture(scope="module")
def server():
    with running_server(tiny_pipeline(), max_upload_mb=1, concurrency=2, max_queue=8) as (url, app):
        yield url, app


def _client(url):
    from gradio_client import Client

    return Client(url, verbose=False, download_files=True)


def _segment(url, path):
    from gradio_client import handle_file

    return _client(url).predict(handle_file(str(path)), QUERY, True, api_name="/segment")


def test_listens_on_loopback_only(server):
    import psutil

    url, app = server
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    listening = [
        c.laddr
        for c in psutil.Process().net_connections(kind="tcp")
        if c.status == "LISTEN" and c.laddr.port == port
    ]
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening)


def test_several_concurrent_users_all_get_their_own_answer(server, tmp_path):
    from PIL import Image

    url, _ = server
    photo = np.asarray(Image.open(text_photo(tmp_path / "photo.png")))
    # Each user sends a different crop, so a mixed-up response would show.
    paths, expected = [], []
    for k in range(USERS):
        crop = photo[:, 40 * k : 40 * k + 200]
        path = tmp_path / f"user{k}.png"
        Image.fromarray(crop).save(path)
        paths.append(path)
        expected.append((tiny_pipeline()(path, QUERY, grid=TEST_GRID).answer, crop.shape))
    with ThreadPoolExecutor(max_workers=USERS) as pool:
        futures = [pool.submit(_segment, url, p) for p in paths]
        results = [f.result(timeout=180) for f in futures]
    for (refined_path, coarse_path, answer, summary, details), (want, shape) in zip(
        results, expected, strict=True
    ):
        assert answer == want and details["answer"] == want
        assert np.asarray(Image.open(refined_path)).shape == (*shape, 3)
        assert Image.open(coarse_path).size == (shape[1], shape[0])
        assert "**Timings:**" in summary
    # Still answering after the burst.
    assert _segment(url, paths[0])[2] == expected[0][0]


def test_decompression_bomb_and_bad_file_get_a_message(server, tmp_path):
    from gradio_client.exceptions import AppError

    url, _ = server
    with pytest.raises(AppError) as err:
        _segment(url, bomb_png(tmp_path / "bomb.png"))
    assert "bomb.png: 8200×8000 = 65,600,000 pixels exceeds the limit of 64,000,000" in str(err.value)
    not_image = tmp_path / "notes.png"
    not_image.write_text("not an image")
    with pytest.raises(AppError) as err:
        _segment(url, not_image)
    assert "notes.png: not a readable image" in str(err.value) and "/tmp/gradio" not in str(err.value)


def test_oversized_upload_is_refused_by_the_server(server, tmp_path):
    import httpx

    url, _ = server
    big = noise_png(tmp_path / "big.png", 700)  # ~1.4 MiB > the 1 MiB limit
    with big.open("rb") as f:
        response = httpx.post(
            f"{url}gradio_api/upload", files={"files": ("big.png", f, "image/png")}, timeout=60
        )
    assert response.status_code == 413
    assert "exceeded maximum allowed size of 1048576 bytes" in response.text
    small = text_photo(tmp_path / "small.png")
    with small.open("rb") as f:
        response = httpx.post(
            f"{url}gradio_api/upload", files={"files": ("small.png", f, "image/png")}, timeout=60
        )
    assert response.status_code == 200 and response.json()[0].endswith("small.png")


@pytest.mark.slow
def test_cli_serve_starts_answers_and_stops(tmp_path):
    """``text4seg serve`` as a user runs it: a separate process on a free loopback port."""
    import os
    import subprocess
    import sys
    import time

    import httpx
    from serve_support import free_port, tiny_checkpoints

    mllm, refiner = tiny_checkpoints()
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "text4seg.app.cli",
        "serve",
        "--model",
        str(mllm),
        "--refiner",
        str(refiner),
    ]
    command += ["--port", str(port), "--grid", "4", "--concurrency", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 180  # start-up bound on a busy machine, not a speed check
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.5)
        answer = _segment(url, text_photo(tmp_path / "photo.png"))[2]
        assert answer == tiny_pipeline()(tmp_path / "photo.png", QUERY, grid=TEST_GRID).answer
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()
    assert f"Running on local URL:  http://127.0.0.1:{port}" in (tmp_path / "serve.log").read_text()
