"""The web demo's request handling without a server: settings, refusals, and a real pipeline run."""

from __future__ import annotations

import numpy as np
import pytest
from serve_support import TEST_GRID, bomb_png, noise_png, text_photo, tiny_pipeline

from text4seg.app.cli import build_parser
from text4seg.app.commands.serve import config_from_args
from text4seg.app.web import RequestError, SegmentService, ServeConfig, WebAnswer
from text4seg.app.web.service import RowsSoFar
from text4seg.core.io import MAX_PIXELS


def _never_called(*args, **kwargs):
    raise AssertionError("a refused request must not reach the pipeline")


def _upload(path, name=None) -> dict:
    """The payload Gradio hands over with preprocess=False."""
    return {"path": str(path), "orig_name": name or path.name, "meta": {"_type": "gradio.FileData"}}


def test_defaults_bind_loopback_and_use_the_io_limit():
    cfg = ServeConfig()
    assert (cfg.host, cfg.port, cfg.max_upload_mb, cfg.concurrency) == ("127.0.0.1", 7860, 20.0, 2)
    assert cfg.is_loopback and cfg.max_pixels == MAX_PIXELS
    assert cfg.max_upload_bytes == 20 * 1024 * 1024
    assert ServeConfig(host="::1").is_loopback and ServeConfig(host="localhost").is_loopback
    assert not ServeConfig(host="0.0.0.0").is_loopback


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("port", 0, "port must be in 1..65535, got 0"),
        ("concurrency", 0, "concurrency must be at least 1, got 0"),
        ("max_queue", 1, "max_queue 1 is smaller than concurrency 2"),
        ("max_upload_mb", 0, "max_upload_mb must be in (0, 1024], got 0"),
        ("grid", (16, 0), "grid must be two positive sizes"),
        ("keep_files_minutes", 0, "keep_files_minutes must be at least 1, got 0"),
        ("task", "caption", "task 'caption' not in (None, 'scene_text', 'referring', 'semantic')"),
        ("examples", ["/nonexistent/example.png"], "example image /nonexistent/example.png does not exist"),
    ],
)
def test_config_rejects_bad_values_naming_them(field, value, needle):
    with pytest.raises(ValueError) as err:
        ServeConfig(**{field: value})
    assert needle in str(err.value)


def test_config_loads_from_yaml(tmp_path):
    path = tmp_path / "serve.yaml"
    path.write_text("port: 9000\nconcurrency: 3\ngrid: [8, 12]\n")
    cfg = ServeConfig.from_yaml(path)
    assert (cfg.port, cfg.concurrency, cfg.grid) == (9000, 3, (8, 12))
    assert ServeConfig(**cfg.to_dict()) == cfg


def test_cli_flags_map_to_the_config():
    args = build_parser().parse_args(["serve"])
    cfg = config_from_args(args, model_grid=(16, 16))
    assert (cfg.host, cfg.port, cfg.max_upload_mb, cfg.concurrency) == ("127.0.0.1", 7860, 20.0, 2)
    assert (cfg.constrained, cfg.task, cfg.builtin_examples) == (True, None, True)
    args = build_parser().parse_args(
        ["serve", "--port", "9001", "--max-upload-mb", "5", "--concurrency", "3", "--grid", "8x12"]
        + ["--unconstrained", "--task", "referring", "--no-builtin-examples", "--no-refine"]
    )
    cfg = config_from_args(args, model_grid=(16, 16))
    assert (cfg.port, cfg.max_upload_mb, cfg.concurrency, cfg.grid) == (9001, 5.0, 3, (8, 12))
    assert (cfg.constrained, cfg.task, cfg.builtin_examples, args.no_refine) == (
        False,
        "referring",
        False,
        True,
    )


def test_refusals_name_the_users_file_and_never_reach_the_model(tmp_path):
    service = SegmentService(pipeline=_never_called, config=ServeConfig(max_upload_mb=0.5))
    photo = text_photo(tmp_path / "photo.png")
    cases = {
        "Upload an image first": (None, "segment the text"),
        "Type a query": (_upload(photo), "   "),
        "the limit is 300": (_upload(photo), "x" * 301),
        "board.png: 1.0 MB is larger than the 0.5 MB upload limit": (
            _upload(noise_png(tmp_path / "n.png", 600), "board.png"),
            "segment the text",
        ),
        "big.png: 8200×8000 = 65,600,000 pixels exceeds the limit of 64,000,000 (possible decompression bomb)": (
            _upload(bomb_png(tmp_path / "b.png"), "big.png"),
            "segment the text",
        ),
        "notes.png: not a readable image": (_upload(_write(tmp_path / "t.png", b"hello"), "notes.png"), "q"),
        "empty.png: not a readable image": (_upload(_write(tmp_path / "e.png", b""), "empty.png"), "q"),
    }
    for needle, (upload, query) in cases.items():
        with pytest.raises(RequestError) as err:
            service(upload, query)
        assert needle in str(err.value)
        assert str(tmp_path) not in str(err.value)  # server paths stay on the server


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_real_pipeline_answer_overlays_and_summary(tmp_path):
    pipeline = tiny_pipeline()
    service = SegmentService(pipeline=pipeline, config=ServeConfig(grid=TEST_GRID))
    photo = text_photo(tmp_path / "photo.png")
    out = service(_upload(photo), "segment the text in this image")
    direct = pipeline(photo, "segment the text in this image", grid=TEST_GRID)
    assert out.answer == direct.answer and out.details["answer"] == direct.answer
    assert out.refined_overlay.shape == out.coarse_overlay.shape == (172, 448, 3)
    assert out.refined_overlay.dtype == np.uint8
    assert np.array_equal(out.refined_overlay, direct.overlay(np.asarray(_gray_to_rgb(photo)), refined=True))
    assert "**Timings:**" in out.summary and "mllm" in out.summary and "172" in out.summary
    assert out.details["image_size"] == [172, 448]


def test_large_overlays_are_downscaled_for_display(tmp_path):
    service = SegmentService(
        pipeline=tiny_pipeline(), config=ServeConfig(grid=TEST_GRID, display_max_side=100)
    )
    out = service(_upload(text_photo(tmp_path / "photo.png")), "segment the text in this image", False)
    assert out.refined_overlay.shape == (38, 100, 3)  # 172×448 scaled by 100/448
    assert out.details["refined_labels"] == []  # refine=False: the refiner was not called


def test_stream_yields_each_row_then_the_full_answer(tmp_path):
    service = SegmentService(pipeline=tiny_pipeline(), config=ServeConfig(grid=TEST_GRID))
    *rows, final = service.stream(_upload(text_photo(tmp_path / "p.png")), "segment the text in this image")
    assert isinstance(final, WebAnswer) and rows and all(isinstance(r, RowsSoFar) for r in rows)
    assert [len(r.rows) for r in rows] == list(range(1, len(rows) + 1))
    assert all(r.total == TEST_GRID[0] and all(len(row) == TEST_GRID[1] for row in r.rows) for r in rows)
    # The streamed rows are the first rows of the final descriptor block, in order.
    assert final.answer.split("<seg>", 1)[1].startswith(rows[-1].text)


def test_stream_refuses_before_yielding_and_reraises_pipeline_errors(tmp_path):
    refusing = SegmentService(pipeline=_never_called, config=ServeConfig())
    with pytest.raises(RequestError, match="Upload an image first"):
        next(refusing.stream(None, "segment the text"))

    def broken(*args, **kwargs):
        raise RuntimeError("model exploded")

    failing = SegmentService(pipeline=broken, config=ServeConfig())
    with pytest.raises(RuntimeError, match="model exploded"):
        list(failing.stream(_upload(text_photo(tmp_path / "p.png")), "segment the text"))


def _gray_to_rgb(path):
    from text4seg.core.io import load_image

    return load_image(path)


def test_page_handler_turns_failures_into_messages_without_tracebacks(tmp_path):
    import gradio as gr

    from text4seg.app.web.app import _handler

    def broken(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    handler = _handler(SegmentService(pipeline=broken, config=ServeConfig()))
    with pytest.raises(gr.Error) as err:
        list(handler({"path": str(text_photo(tmp_path / "p.png")), "orig_name": "p.png"}, "text", True))
    assert err.value.message == "Segmentation failed (RuntimeError); the server log has the details."
    with pytest.raises(gr.Error) as err:
        list(handler({"path": str(tmp_path / "gone.png"), "orig_name": "<b>x</b>.png"}, "text", True))
    assert err.value.message.startswith(
        "&lt;b&gt;x&lt;/b&gt;.png: the uploaded file is gone"
    )  # no HTML injection


def test_app_builds_with_example_images_and_exposes_one_segment_endpoint(tmp_path):
    from PIL import Image

    from text4seg.app.web import build_app
    from text4seg.app.web.examples import builtin_examples

    photo = text_photo(tmp_path / "example.png")
    app = build_app(pipeline=_never_called, config=ServeConfig(examples=[str(photo)]))
    api = [fn.api_name for fn in app.fns.values() if fn.api_name]
    assert "segment" in api
    assert all(not fn.preprocess for fn in app.fns.values() if fn.api_name == "segment")
    assert app.delete_cache == (3600, 3600)  # uploads do not pile up on a long-running server
    builtin = builtin_examples(tmp_path / "builtin")
    assert list(builtin) == ["synthetic scene text", "photo of handwriting"]
    assert Image.open(builtin["synthetic scene text"]).size == (256, 256)
    again = builtin_examples(tmp_path / "again")  # deterministic: the same pixels at every start
    for first, second in zip(builtin.values(), again.values(), strict=True):
        assert np.array_equal(np.asarray(Image.open(first)), np.asarray(Image.open(second)))


def test_summary_escapes_user_text_and_names_each_labels_colour():
    from text4seg.app.pipeline import SegmentationResult
    from text4seg.app.web.service import summarize
    from text4seg.core.visualize import PALETTE

    mask = np.zeros((4, 8), dtype=bool)
    mask[1:3, 2:6] = True
    result = SegmentationResult(
        answer="",
        query="<img src=x onerror=alert(1)> the *red* word",
        task="referring",
        labels=["sign", "text"],
        grid=[["others"]],
        repairs=[],
        coarse_masks={"text": mask, "sign": mask},
        refined_masks={"text": mask, "sign": ~mask},
        boxes={"text": (2, 1, 6, 3), "sign": None},
        timings={"mllm": 0.25, "total": 0.5},
    )
    text = summarize(result, (4, 8))
    assert "<img" not in text and "&lt;img src=x onerror=alert(1)&gt; the \\*red\\* word" in text
    r, g, b = (int(v) for v in PALETTE[1])  # "sign" is the second mask drawn
    assert f'rgb({r}, {g}, {b})">■</span> **sign:** coarse 25.0%, refined 75.0% of the image; no box' in text
    assert "**text:** coarse 25.0%, refined 25.0% of the image; box (x0, y0, x1, y1) = (2, 1, 6, 3)" in text
    assert "**Timings:** mllm 0.25 s · total 0.50 s" in text


def test_uploads_of_any_mode_and_exif_rotation_come_out_upright_rgb(tmp_path):
    from PIL import Image

    service = SegmentService(pipeline=tiny_pipeline(), config=ServeConfig(grid=TEST_GRID))
    gray = np.asarray(Image.open(text_photo(tmp_path / "p.png")))  # 172×448
    rotated = Image.fromarray(gray)
    exif = rotated.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": the upright image is 448×172 → 172 wide
    rotated.save(tmp_path / "rot.jpg", exif=exif)
    Image.fromarray(gray).convert("CMYK").save(tmp_path / "cmyk.jpg")
    Image.fromarray(gray).convert("RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "deep.png")  # 16-bit grayscale
    for name, shape in [
        ("rot.jpg", (448, 172)),
        ("cmyk.jpg", (172, 448)),
        ("rgba.png", (172, 448)),
        ("deep.png", (172, 448)),
    ]:
        out = service(_upload(tmp_path / name), "segment the text in this image", False)
        assert out.refined_overlay.shape == (*shape, 3), name
        assert out.details["image_size"] == list(shape), name


def test_cli_rejects_bad_flags_before_loading_any_model(capsys):
    from text4seg.app.cli import main

    assert main(["serve", "--port", "0", "--model", "/nonexistent/model"]) == 2
    assert "text4seg serve: error: port must be in 1..65535, got 0" in capsys.readouterr().err
    assert main(["serve", "--concurrency", "4", "--max-queue", "2"]) == 2
    assert "max_queue 2 is smaller than concurrency 4" in capsys.readouterr().err
