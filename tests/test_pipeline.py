"""The pipeline on tiny random-weight checkpoints: any image in, masks at its size out; per-class
refinement that skips empty classes; instance answers; the default-model path and its clear error."""

from __future__ import annotations

import json
import shutil
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image
from pipeline_support import random_image, tiny_checkpoints, tiny_pipeline

from text4seg.app.default_model import DefaultModelMissing
from text4seg.app.pipeline import PipelineConfig, Text4SegPipeline
from text4seg.core.inference import InferenceSettings, save_inference_settings
from text4seg.core.io import ImageLoadError
from text4seg.core.query import interpret_query
from text4seg.core.visualize import overlay_masks
from text4seg.mllm.generate import CoarseMaskResult

torch.set_num_threads(1)


@pytest.mark.parametrize(
    ("query", "task", "target", "labels"),
    [
        ("segment the text in this image", "scene_text", "text", ("text",)),
        ("Please segment all the text in the image.", "scene_text", "text", ("text",)),
        ("text", "scene_text", "text", ("text",)),
        ("the red word", "referring", "the red word", ("the red word",)),
        ("Segment the text at the top left in this image.", "referring", "the text at the top left",
         ("the text at the top left",)),
        ("person|car", "semantic", "person|car", ("person", "car")),
        ("segment sky | road", "semantic", "sky|road", ("sky", "road")),
    ],
)  # fmt: skip
def test_queries_are_read_as_the_trained_tasks(query, task, target, labels):
    q = interpret_query(query)
    assert (q.task, q.target, q.labels) == (task, target, labels)


def test_query_options_and_errors():
    assert interpret_query("the red word", referring_label="target").labels == ("text",)
    assert interpret_query("the red word", task="scene_text").target == "text"
    assert interpret_query("text", task="referring").task == "referring"
    with pytest.raises(ValueError, match="empty"):
        interpret_query("   ")
    with pytest.raises(ValueError, match="'describe'"):
        interpret_query("text", task="describe")


def test_config_checks_name_the_values():
    with pytest.raises(ValueError, match=r"\(0, 16\)"):
        PipelineConfig(grid=(0, 16))
    with pytest.raises(ValueError, match="'bilinear'"):
        PipelineConfig(grid_rule="bilinear")
    with pytest.raises(ValueError, match="'sparkles'"):
        PipelineConfig(refine_mode="sparkles")
    with pytest.raises(ValueError, match=r"refiner_flips \['d'\]"):
        PipelineConfig(refiner_flips=["d"])
    cfg = PipelineConfig.from_dict({"grid": [8, 12], "grid_rule": "area", "refiner_flips": ["h", "v"]})
    assert cfg.grid == (8, 12) and cfg.grid_rule == "area" and cfg.refiner_flips == ("h", "v")
    with pytest.raises(ValueError, match="unknown key 'training_minutes'"):
        PipelineConfig.from_dict({"grid": [8, 12], "training_minutes": 90})


def test_overlay_tints_only_masked_pixels():
    image = np.full((20, 30, 3), 100, np.uint8)
    mask = np.zeros((20, 30), bool)
    mask[5:15, 10:20] = True
    out = overlay_masks(image, {"text": mask})
    assert (out[~mask] == 100).all()
    assert tuple(out[10, 15]) != (100, 100, 100)  # inside: blended
    assert tuple(out[5, 10]) == (255, 48, 48)  # outline: the label's colour
    with pytest.raises(ValueError, match=r"\(4, 4\)"):
        overlay_masks(image, {"x": np.zeros((4, 4), bool)})


def _exif_rotated(path):
    img = Image.fromarray(random_image(30, 50, 1))
    exif = img.getexif()
    exif[0x0112] = 6  # displayed rotated by 90°: upright size is 50×30
    img.save(path, exif=exif)
    return (50, 30)


def _write(kind, path):
    if kind == "exif":
        return _exif_rotated(path)
    arrays = {
        "rgba": (Image.fromarray(np.dstack([random_image(40, 64), np.full((40, 64), 128, np.uint8)]), "RGBA"), "png"),
        "gray": (Image.fromarray(random_image(33, 47)[..., 0], "L"), "png"),
        "cmyk": (Image.fromarray(random_image(36, 36)).convert("CMYK"), "jpg"),
        "16bit": (Image.fromarray((np.arange(24 * 80).reshape(24, 80) * 30).astype(np.uint16)), "png"),
        "thin": (Image.fromarray(random_image(7, 300)), "png"),
    }  # fmt: skip
    img, _ = arrays[kind]
    img.save(path)
    return img.size[1], img.size[0]


@pytest.mark.parametrize("kind", ["rgba", "gray", "cmyk", "16bit", "exif", "thin"])
def test_any_image_mode_and_shape_gives_masks_at_its_size(tmp_path, kind):
    path = tmp_path / f"img.{'jpg' if kind in ('cmyk', 'exif') else 'png'}"
    size = _write(kind, path)
    result = tiny_pipeline()(path, "segment the text in this image")
    assert result.coarse_masks["text"].shape == size
    assert result.refined_masks["text"].shape == size and result.refined_masks["text"].dtype == bool
    assert result.overlay(path).shape == (*size, 3)
    assert set(result.timings) == {"load_image", "mllm", "parse", "refine", "total"}
    assert len(result.grid) == 4 and all(len(row) == 4 for row in result.grid)
    json.dumps(result.to_json())  # serialisable


def _png_header_only(path, width, height):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def test_bad_inputs_raise_errors_naming_the_file(tmp_path):
    (tmp_path / "junk.jpg").write_bytes(b"definitely not a JPEG")
    (tmp_path / "empty.png").write_bytes(b"")
    _png_header_only(tmp_path / "bomb.png", 20000, 20000)
    for name in ("junk.jpg", "empty.png", "bomb.png", "missing.png"):
        with pytest.raises(ImageLoadError, match=name):
            tiny_pipeline()(tmp_path / name, "text")
    with pytest.raises(ImageLoadError, match="non-empty"):
        tiny_pipeline()(np.zeros((0, 5, 3), np.uint8), "text")


def _fake_answer(grid, labels):
    return CoarseMaskResult(
        text="<seg>…</seg>", grid=grid, labels=labels, repairs=[], masks={}, num_tokens=1, seconds=0.01
    )


@pytest.fixture
def refine_calls(monkeypatch):
    """Spy on the refiner: records (label area in grid cells, description) per call."""
    import stsam_refiner.predict as predict

    calls = []
    real = predict.refine_image

    def spy(model, image, *, coarse=None, description=None, **kw):
        calls.append((int(np.count_nonzero(coarse)), description))
        return real(model, image, coarse=coarse, description=description, **kw)

    monkeypatch.setattr(predict, "refine_image", spy)
    return calls


def test_multi_class_refines_per_class_and_skips_empty_ones(monkeypatch, refine_calls):
    grid = [["person", "person", "others", "others"]] + [["others"] * 4] * 3
    monkeypatch.setattr(
        "text4seg.mllm.generate.segment", lambda *a, **k: _fake_answer(grid, ["others", "person"])
    )
    # refine_image once per class: without zoom, which would cut each class into windows
    result = tiny_pipeline(refiner_zoom=False)(random_image(64, 96), "person|car")
    assert result.task == "semantic" and result.labels == ["person"]
    assert refine_calls == [(2, None)]  # one call, for person only
    assert result.refined_labels == ["person"]
    assert not result.coarse_masks["car"].any() and not result.refined_masks["car"].any()
    assert result.coarse_masks["person"][:16, :48].all() and not result.coarse_masks["person"][16:].any()
    assert result.boxes["car"] is None


def test_all_background_answer_never_calls_the_refiner(monkeypatch, refine_calls):
    monkeypatch.setattr(
        "text4seg.mllm.generate.segment", lambda *a, **k: _fake_answer([["others"] * 4] * 4, ["others"])
    )
    result = tiny_pipeline()(random_image(32, 32), "text")
    assert refine_calls == [] and result.refined_labels == []
    assert not result.refined_masks["text"].any()


def test_instance_answers_give_instance_masks_and_a_class_union(monkeypatch, refine_calls):
    grid = [["text 1", "others", "others", "text 2"]] + [["others"] * 4] * 3
    labels = ["others", "text 1", "text 2"]
    monkeypatch.setattr("text4seg.mllm.generate.segment", lambda *a, **k: _fake_answer(grid, labels))
    result = tiny_pipeline(refiner_zoom=False)(random_image(40, 40), "text")
    assert set(result.instances) == {"text 1", "text 2"}
    assert result.coarse_masks["text"].sum() == 2 * 10 * 10  # union of the two instances
    assert sorted(area for area, _ in refine_calls) == [1, 1, 2]


def test_refiner_gets_the_query_as_description_when_configured(refine_calls):
    ckpt = tiny_checkpoints()
    pipe = Text4SegPipeline.from_pretrained(
        model=ckpt.mllm,
        refiner=ckpt.refiner_text,
        config=PipelineConfig(grid=(4, 4), refiner_description="query"),
    )
    rows = []
    result = pipe(random_image(48, 48, 3), "the red word", constrained=True, on_row=rows.append)
    assert [r.index for r in rows] == [0, 1, 2, 3]  # rows streamed as they completed
    assert all(desc == "the red word" for _, desc in refine_calls)
    assert len(refine_calls) == len(result.refined_labels)


def test_refiner_flips_reach_the_refiner(monkeypatch):
    import stsam_refiner.predict as predict

    ckpt = tiny_checkpoints()
    grid = [["text", "text", "others", "others"]] + [["others"] * 4] * 3
    monkeypatch.setattr(
        "text4seg.mllm.generate.segment", lambda *a, **k: _fake_answer(grid, ["others", "text"])
    )
    seen, real = [], predict.refine_image

    def spy(*args, **kw):
        seen.append(kw.get("flips"))
        return real(*args, **kw)

    monkeypatch.setattr(predict, "refine_image", spy)
    image = random_image(40, 40)
    masks = {}
    for flips in ((), ("h", "v")):
        pipe = Text4SegPipeline.from_pretrained(
            model=ckpt.mllm, refiner=ckpt.refiner, config=PipelineConfig(grid=(4, 4), refiner_flips=flips)
        )
        masks[flips] = pipe(image, "text").refined_masks["text"]
    assert seen == [(), ("h", "v")]
    assert masks[()].shape == masks[("h", "v")].shape == (40, 40)


def test_missing_default_model_error_says_how_to_build_it(tmp_path):
    with pytest.raises(DefaultModelMissing, match=r"build_default_model\.sh.*--model"):
        Text4SegPipeline.from_pretrained(default_root=tmp_path)


def test_default_model_layout_is_loaded_with_its_inference_settings(tmp_path, capsys):
    ckpt = tiny_checkpoints()
    shutil.copytree(ckpt.mllm, tmp_path / "mllm")
    save_inference_settings(tmp_path / "mllm", InferenceSettings(grid=(4, 6), grid_rule="area"))
    (tmp_path / "refiner").mkdir()
    shutil.copy(ckpt.refiner, tmp_path / "refiner" / "refiner.safetensors")
    (tmp_path / "manifest.json").write_text(json.dumps({"format": 2}))
    pipe = Text4SegPipeline.from_pretrained(default_root=tmp_path)
    assert pipe.config.grid == (4, 6) and pipe.config.grid_rule == "area"
    result = pipe(random_image(30, 60), "segment the text in this image")
    assert len(result.grid) == 4 and len(result.grid[0]) == 6
    no_refiner = Text4SegPipeline.from_pretrained(default_root=tmp_path, refiner="none")
    assert no_refiner.parts.stsam is None and no_refiner.refiner.mode == "none"
    # Another MLLM with the default refiner: its own folder (no inference.json) decides, and we say so.
    capsys.readouterr()
    other = Text4SegPipeline.from_pretrained(model=ckpt.mllm, default_root=tmp_path)
    assert other.config.grid == (16, 16) and other.parts.stsam is not None
    assert "has no inference.json: using the default settings" in capsys.readouterr().err
    # A flag overrides the checkpoint's setting visibly.
    flagged = Text4SegPipeline.from_pretrained(default_root=tmp_path, overrides={"grid": (8, 8)})
    assert flagged.config.grid == (8, 8)
    assert "grid (4, 6) from" in capsys.readouterr().err


def test_content_queries_of_a_reading_model_get_the_words_read_in_the_prompt(monkeypatch):
    """A model trained with ``reading: content`` is asked with the reader's words and their cells; its
    other queries, and every query of a model without the setting, are asked exactly as before."""
    import dataclasses

    from PIL import ImageDraw, ImageFont

    from text4seg.mllm import generate

    pipe = tiny_pipeline()
    image = Image.new("RGB", (320, 160), "white")
    font_path = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
    ImageDraw.Draw(image).text((170, 90), "OPEN", fill="black", font=ImageFont.truetype(font_path, 48))
    asked = []
    real = generate.segment
    monkeypatch.setattr(generate, "segment", lambda *a, **k: asked.append(k["context"]) or real(*a, **k))
    saved = pipe.config
    try:
        pipe.config = dataclasses.replace(saved, reading="content")
        result = pipe(np.asarray(image), "the word 'OPEN'")
        pipe(np.asarray(image), "the red word")
        pipe.config = dataclasses.replace(saved, reading="none")
        pipe(np.asarray(image), "the word 'OPEN'")
    finally:
        pipe.config = saved
    # 4x4 grid on 320x160: the word (x 170-290, y ~100-140) lies in the right half, bottom rows.
    assert asked[0] == "Words read: 'OPEN' rows 3-4 columns 3-4.", asked[0]
    assert "reading" in result.timings and asked[1:] == ["", ""]


def test_content_queries_of_a_hint_model_show_the_named_words_outline(monkeypatch):
    """A model trained with ``reading: hint`` gets, for a content query, the outlines of the read words
    the query names as the hint (the prompt unchanged); other queries get no hint."""
    import dataclasses

    from PIL import ImageDraw, ImageFont

    from text4seg.mllm import generate

    pipe = tiny_pipeline()
    image = Image.new("RGB", (320, 160), "white")
    font_path = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
    ImageDraw.Draw(image).text((170, 90), "OPEN", fill="black", font=ImageFont.truetype(font_path, 48))
    asked = []
    grid = [["others"] * 4] * 4

    def spy(*args, **kwargs):
        asked.append((kwargs["context"], kwargs["hint"]))
        return _fake_answer(grid, ["others", "x"])

    monkeypatch.setattr(generate, "segment", spy)
    monkeypatch.setattr(pipe, "config", dataclasses.replace(pipe.config, reading="hint"))  # a shared pipeline
    pipe(np.asarray(image), "the text that says 'open'")
    pipe(np.asarray(image), "the word 'EXIT'")
    pipe(np.asarray(image), "the red word")
    (context, hint), (_, other), (_, none) = asked
    assert context == "" and hint.shape == (160, 320) and none is None
    ys, xs = np.nonzero(hint)
    assert xs.min() >= 160 and xs.max() >= 290 and 85 <= ys.min() and ys.max() <= 150  # the word's outline
    assert not other.any()  # EXIT is not there: an empty hint
    # A model trained with colour hints: a colour query shows its colour's pixels (none here are red).
    monkeypatch.setattr(pipe, "config", dataclasses.replace(pipe.config, colour_hint=True))
    red = np.asarray(image).copy()
    red[10:30, 20:60] = (215, 30, 35)
    pipe(red, "the red word")
    pipe(red, "the largest word")
    (_, colour), (_, size) = asked[3:]
    assert colour.shape == (160, 320) and (colour > 0).sum() == 20 * 40 and colour[10:30, 20:60].all()
    assert size is None


def test_attribute_queries_of_a_hint_model_show_the_words_they_pick(monkeypatch):
    """With ``attribute_hint`` a colour, position or size query gets the outlines of the read words it
    picks (text4seg.core.selection) as the hint; one that picks nothing an empty hint; one that names
    no attribute none. The reading adapter answers a hint with a word, and with ``empty_hint_adapter``
    an empty hint too."""
    import dataclasses

    from PIL import ImageDraw, ImageFont

    from text4seg.mllm import generate

    pipe = tiny_pipeline()
    image = Image.new("RGB", (320, 200), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", 40)
    draw.text((20, 10), "OPEN", fill=(215, 30, 35), font=font)  # red, top left
    draw.text((170, 130), "SHOP", fill=(30, 80, 210), font=font)  # blue, bottom right
    asked = []

    adapter = []

    def spy(*args, **kwargs):
        asked.append(kwargs["hint"])
        adapter.append(kwargs["adapter"])
        return _fake_answer([["others"] * 4] * 4, ["others", "x"])

    monkeypatch.setattr(generate, "segment", spy)
    monkeypatch.setattr(pipe, "config", dataclasses.replace(pipe.config, reading="hint", attribute_hint=True))
    for query in ("the blue word", "the topmost text", "the green word", "the curved text"):
        pipe(np.asarray(image), query)
    blue, top, green, curved = asked
    ys, xs = np.nonzero(blue)
    assert xs.min() >= 150 and ys.min() >= 110  # SHOP's outline only
    ys, xs = np.nonzero(top)
    assert xs.max() <= 170 and ys.max() <= 70  # OPEN's outline only
    assert green.shape == (200, 320) and not green.any()
    assert curved is None
    assert adapter == [None] * 4  # generate.segment's rule: on for a hint with a read word
    monkeypatch.setattr(
        pipe, "config", dataclasses.replace(pipe.config, reading_adapter=True, empty_hint_adapter=True)
    )
    for query in ("the blue word", "the green word", "the curved text"):
        pipe(np.asarray(image), query)
    assert adapter[4:] == [True, True, False]
    with pytest.raises(ValueError, match="needs reading_adapter"):
        dataclasses.replace(pipe.config, reading_adapter=False)
    monkeypatch.setattr(pipe, "config", dataclasses.replace(pipe.config, empty_hint_adapter=False))
    assert np.array_equal(pipe.query_hint(image, "the blue word"), blue)  # what the benchmarks ask
    assert pipe.query_hint(image, "segment the text in this image") is None
    # A model trained with scene-text hints: "segment the text" shows every word read.
    monkeypatch.setattr(pipe, "config", dataclasses.replace(pipe.config, scene_text_hint=True))
    every = pipe.query_hint(image, "segment the text in this image")
    assert every.shape == (200, 320) and (every[blue > 0] > 0).all() and (every[top > 0] > 0).all()


def test_refiner_zoom_setting_chooses_the_windowed_refinement(monkeypatch):
    import stsam_refiner.zoom as zoom

    ckpt = tiny_checkpoints()
    grid = [["text", "others", "others", "others"]] + [["others"] * 4] * 3
    monkeypatch.setattr(
        "text4seg.mllm.generate.segment", lambda *a, **k: _fake_answer(grid, ["others", "text"])
    )
    calls, real = [], zoom.refine_zoomed

    def spy(*args, **kw):
        calls.append(kw["coarse"].sum())
        return real(*args, **kw)

    monkeypatch.setattr(zoom, "refine_zoomed", spy)
    image = random_image(400, 400)  # larger than the tiny refiner's view: zoom cuts a window
    masks = {}
    for setting in (True, False):
        pipe = Text4SegPipeline.from_pretrained(
            model=ckpt.mllm, refiner=ckpt.refiner, config=PipelineConfig(grid=(4, 4), refiner_zoom=setting)
        )
        masks[setting] = pipe(image, "text").refined_masks["text"]
    assert calls == [1]  # only the zoomed pipeline went through refine_zoomed
    assert not masks[True][200:, :].any()  # outside the window around the top-left cell
    assert PipelineConfig().refiner_zoom  # on unless a checkpoint's inference.json turns it off


def _open_sign_marked_everywhere(monkeypatch):
    """A tiny pipeline whose answer and refiner mark the whole image, and a 320×160 white image with
    "OPEN" at its bottom right (x ≥ 170, y ≥ 90)."""
    import types

    from PIL import ImageDraw, ImageFont

    import stsam_refiner.predict as predict
    from text4seg.mllm import generate

    image = Image.new("RGB", (320, 160), "white")
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", 48)
    ImageDraw.Draw(image).text((170, 90), "OPEN", fill="black", font=font)

    def answer_everywhere(*args, **kwargs):  # an answer that strays over the whole image
        return _fake_answer([[kwargs["labels"][0]] * 4] * 4, ["others", kwargs["labels"][0]])

    monkeypatch.setattr(generate, "segment", answer_everywhere)
    monkeypatch.setattr(
        predict,
        "refine_image",
        lambda model, img, **kw: types.SimpleNamespace(mask=np.ones(img.shape[:2], bool)),
    )
    return tiny_pipeline(), np.asarray(image)


def test_hint_clip_keeps_a_hinted_querys_refined_mask_near_the_hinted_words(monkeypatch):
    """``hint_clip``: the refined mask of a query whose reading hint shows a word stays within that many
    pixels of the hint; the coarse answer is untouched, and a query with an empty hint is not clipped."""
    import dataclasses

    from text4seg.core.masks import grow_mask

    pipe, image = _open_sign_marked_everywhere(monkeypatch)
    hinted = dataclasses.replace(pipe.config, reading="hint", refiner_zoom=False)
    monkeypatch.setattr(pipe, "config", hinted)
    unclipped = pipe(image, "the text that says 'open'")
    assert unclipped.mask().all() and unclipped.hint is not None and unclipped.hint.any()
    monkeypatch.setattr(pipe, "config", dataclasses.replace(hinted, hint_clip=3))
    clipped = pipe(image, "the text that says 'open'")
    assert np.array_equal(clipped.hint, unclipped.hint)
    assert np.array_equal(clipped.mask(), grow_mask(clipped.hint > 0, 3))
    assert clipped.mask(refined=False).all()  # the MLLM's answer as it was
    ys, xs = np.nonzero(clipped.mask())
    assert xs.min() >= 160 and ys.min() >= 80  # around OPEN only
    no_word = pipe(image, "the word 'EXIT'")  # the reader finds no EXIT: an empty hint, nothing clipped
    assert not no_word.hint.any() and no_word.mask().all()
    assert pipe(image, "segment the text in this image").hint is None
    with pytest.raises(ValueError, match="hint_clip"):
        InferenceSettings(hint_clip=-1)


def test_hint_snap_prompts_the_refiner_with_the_hinted_word_next_to_the_answer(monkeypatch, refine_calls):
    """``hint_snap``: an answer a cell row off its hinted word has the refiner prompted with the word's
    cells too; the answer itself is kept, and ``refine_answer`` re-refines it without a new answer."""
    import dataclasses

    from PIL import ImageDraw, ImageFont

    from text4seg.core.masks import grid_from_mask
    from text4seg.mllm import generate

    pipe = tiny_pipeline()
    image = Image.new("RGB", (320, 160), "white")
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", 48)
    ImageDraw.Draw(image).text((170, 90), "OPEN", fill="black", font=font)  # rows 2-3, columns 2-3
    image = np.asarray(image)

    def one_row_too_high(*args, **kwargs):
        label = kwargs["labels"][0]
        grid = [["others"] * 4, ["others", "others", label, label], ["others"] * 4, ["others"] * 4]
        return _fake_answer(grid, ["others", label])

    monkeypatch.setattr(generate, "segment", one_row_too_high)
    plain = dataclasses.replace(pipe.config, reading="hint", refiner_zoom=False)
    monkeypatch.setattr(pipe, "config", plain)
    query = "the text that says 'open'"
    before = pipe(image, query)
    monkeypatch.setattr(pipe, "config", dataclasses.replace(plain, hint_snap=1))
    snapped = pipe(image, query)
    hint_cells = grid_from_mask(
        snapped.hint > 0, grid_size=(4, 4), rule=plain.grid_rule, threshold=plain.grid_threshold
    )
    assert hint_cells[2:, 2:].any() and not hint_cells[:2].any()
    assert refine_calls[0][0] == 2 and refine_calls[1][0] == 2 + int(hint_cells.sum())
    assert snapped.grid == before.grid and np.array_equal(
        snapped.mask(refined=False), before.mask(refined=False)
    )
    again = pipe.refine_answer(image, before)  # the first answer, refined under hint_snap
    assert refine_calls[2] == refine_calls[1] and np.array_equal(next(iter(again.values())), snapped.mask())
    with pytest.raises(ValueError, match="hint_snap"):
        InferenceSettings(hint_snap=-1)


def test_text_gate_keeps_a_text_querys_refined_mask_where_the_detector_sees_text(monkeypatch):
    """``text_gate``: a scene-text or referring query's refined mask stays within that many pixels of
    the reader's detector rectangles; the coarse answer is untouched and a semantic query is not gated."""
    import dataclasses

    from text4seg.backbone.reader import WordReader
    from text4seg.core.masks import grow_mask

    pytest.importorskip("onnxruntime")
    pipe, image = _open_sign_marked_everywhere(monkeypatch)
    plain = dataclasses.replace(pipe.config, refiner_zoom=False)
    monkeypatch.setattr(pipe, "config", plain)
    assert pipe(image, "segment the text in this image").mask().all()
    monkeypatch.setattr(pipe, "config", dataclasses.replace(plain, text_gate=3))
    regions = WordReader().text_regions(image, margin=3)
    ys, xs = np.nonzero(regions)
    assert xs.min() >= 160 and ys.min() >= 80 and regions.mean() < 0.2  # a box around OPEN
    assert (regions >= grow_mask(WordReader().text_regions(image), 3)).all()  # 3 px around the box
    for query in ("segment the text in this image", "the black word"):
        gated = pipe(image, query)
        assert np.array_equal(gated.mask(), regions), query
        assert gated.mask(refined=False).all()  # the MLLM's answer as it was
    assert pipe(image, "segment person|car").mask().all()  # not text: never gated
    monkeypatch.setattr(WordReader, "text_regions", lambda *a, **k: pytest.fail("the detector ran"))
    empty = {"text": np.zeros(image.shape[:2], bool)}
    assert (
        pipe.text_gated(image, empty, interpret_query("text", task="scene_text")) is empty
    )  # nothing to gate
    with pytest.raises(ValueError, match="text_gate"):
        InferenceSettings(text_gate=-1)
