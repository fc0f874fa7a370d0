"""A real browser (Debian's chromium, driven by Playwright) uses the demo served with the real tiny
pipeline: upload → query → click → overlay, and the refusal messages shown in the page."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from serve_support import (
    TEST_GRID,
    GatedPipeline,
    bomb_png,
    noise_png,
    running_server,
    text_photo,
    tiny_pipeline,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
QUERY = "segment the text in this image"
WAIT_MS = 120_000  # upper bound for one request on a busy 2-core machine; normally ~2 s


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).is_file(), f"{CHROMIUM} missing: apt-get install -y chromium (see docs/serve.md)"
    profile = tmp_path_factory.mktemp("chromium-profile")
    gated = GatedPipeline(tiny_pipeline())
    with running_server(gated, max_upload_mb=1) as (url, _), sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 1000},
        )
        try:
            page = context.new_page()
            page.set_default_timeout(WAIT_MS)
            page.requested = []  # every URL the page asks for, to check it stays on the server
            page.on("request", lambda request: page.requested.append(request.url))
            page.goto(url, wait_until="networkidle")
            page.gate = gated.gate
            yield url, page
        finally:
            context.close()


def _upload(page, path: Path) -> None:
    page.locator("#input-image input[type=file]").set_input_files(str(path))
    page.locator("#input-image img").first.wait_for(state="attached")


def _error_shown(page, text: str) -> None:
    page.get_by_text(text).first.wait_for(state="visible")
    for close in page.get_by_role("button", name="Close").all():  # dismiss the error modals
        if close.is_visible():
            close.click()


def test_upload_query_click_shows_the_overlay(browser_page, tmp_path):
    from PIL import Image

    url, page = browser_page
    photo = text_photo(tmp_path / "board.png")  # grayscale photo: the page must cope with mode L
    expected = tiny_pipeline()(photo, QUERY, grid=TEST_GRID)
    _upload(page, photo)
    page.locator("#query textarea").fill(QUERY)
    page.locator("#segment").click()
    overlay_img = page.locator("#refined img[src*='gradio_api/file=']").first
    overlay_img.wait_for(state="visible")
    response = page.request.get(overlay_img.get_attribute("src"))
    assert response.ok
    overlay = np.asarray(Image.open(io.BytesIO(response.body())).convert("RGB"))
    original = np.asarray(Image.open(photo).convert("RGB"))
    assert overlay.shape == original.shape == (172, 448, 3)
    assert np.array_equal(overlay, expected.overlay(photo, refined=True))  # exactly the pipeline's overlay
    page.get_by_text("Timings:").first.wait_for(state="visible")
    assert page.locator("#answer textarea").input_value() == expected.answer
    # Offline-safe page: no fonts, analytics or scripts fetched from anywhere but the demo itself.
    outside = [u for u in page.requested if not u.startswith((url, "data:", "blob:"))]
    assert page.requested and not outside
    shot = tmp_path / "page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert Image.open(shot).size[0] == 1280


def test_bomb_and_oversized_uploads_show_a_message(browser_page, tmp_path):
    _, page = browser_page
    _upload(page, bomb_png(tmp_path / "bomb.png"))
    page.locator("#segment").click()
    _error_shown(page, "bomb.png: 8200×8000 = 65,600,000 pixels exceeds the limit of 64,000,000")
    big = noise_png(tmp_path / "big.png", 700)  # ~1.4 MiB against the 1 MiB limit of this server
    page.locator("#input-image input[type=file]").set_input_files(str(big))
    _error_shown(page, "exceed the maximum allowed size")
    assert page.get_by_text("Traceback").count() == 0


def test_answer_rows_stream_into_the_page_before_the_overlay(browser_page, tmp_path):
    url, page = browser_page
    photo = text_photo(tmp_path / "stream.png")
    first_row = tiny_pipeline()(photo, QUERY, grid=TEST_GRID).grid[0]
    _upload(page, photo)
    page.gate.clear()  # generation will stop after its first row
    try:
        page.locator("#segment").click()
        page.get_by_text(f"row 1 of {TEST_GRID[0]}").first.wait_for(state="visible")
        streamed = page.locator("#answer textarea").input_value()
        assert streamed.startswith(f"{first_row[0]} *")  # R-RLE of the first row only
        assert streamed.count("\n") == 1
    finally:
        page.gate.set()
    page.get_by_text("Timings:").first.wait_for(state="visible")
    assert "<seg>" in page.locator("#answer textarea").input_value()


def test_builtin_example_segments_in_one_click(browser_page):
    from PIL import Image

    _, page = browser_page
    page.get_by_text("synthetic scene text").first.click()
    page.locator("#input-image img").first.wait_for(state="attached")
    page.locator("#segment").click()
    page.get_by_text("Image 256×256").first.wait_for(state="visible")
    src = page.locator("#refined img[src*='gradio_api/file=']").first.get_attribute("src")
    assert Image.open(io.BytesIO(page.request.get(src).body())).size == (256, 256)
