"""segment(): typed coarse-mask result, streamed rows, both architectures, the constrained switch."""

import numpy as np
import pytest
import torch

from text4seg.mllm.generate import CoarseMaskResult, default_max_new_tokens, query_labels, segment
from text4seg.mllm.loading import load_mllm
from text4seg.mllm.tiny import TinyMllmConfig, build_tiny_llava, build_tiny_qwen2vl

torch.set_num_threads(1)
IMAGE = np.random.default_rng(0).integers(0, 255, (45, 70, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("generate")
    return {
        "llava": load_mllm(build_tiny_llava(root / "a")),
        "qwen2_vl": load_mllm(
            build_tiny_qwen2vl(root / "b", config=TinyMllmConfig(image_size=56, patch_size=14))
        ),
    }


@pytest.mark.parametrize("model_type", ["llava", "qwen2_vl"])
def test_segment_returns_a_typed_streamed_result(models, model_type):
    loaded = models[model_type]
    rows = []
    cache = {}
    result = segment(
        loaded.model, loaded.processor, IMAGE, "text", grid=(8, 8), on_row=rows.append, masks_cache=cache
    )
    assert list(cache) == [(8, 8, ("text",), None)]
    again = segment(loaded.model, loaded.processor, IMAGE, "text", grid=(8, 8), masks_cache=cache)
    assert again.text == result.text and len(cache) == 1
    assert isinstance(result, CoarseMaskResult)
    assert result.repairs == [] and not result.failed
    assert len(result.grid) == 8 and all(len(row) == 8 for row in result.grid)
    assert set(result.labels) <= {"others", "text"}
    assert set(result.masks) == {"text"}
    mask = result.masks["text"]
    assert mask.shape == IMAGE.shape[:2] and mask.dtype == bool
    # Nearest upsampling: the mask's area follows the grid's count of "text" cells.
    cells = sum(label == "text" for row in result.grid for label in row)
    assert abs(mask.mean() - cells / 64) < 0.1
    # Streaming delivered every row, in order, matching the final grid, before generation ended.
    assert [update.index for update in rows] == list(range(8))
    assert [update.labels for update in rows] == result.grid
    assert 0 < result.first_row_seconds <= result.seconds
    assert 0 < result.num_tokens <= default_max_new_tokens(8, 8)
    assert result.text.endswith("\n</seg>")


def test_template_sentence_and_semantic_labels(models):
    loaded = models["llava"]
    result = segment(
        loaded.model,
        loaded.processor,
        IMAGE,
        "person|car",
        task="semantic",
        grid=(4, 6),
        answer_sentence="template",
    )
    assert result.text.startswith("Sure, here is the segmentation mask for 'person|car':\n<seg>")
    assert result.repairs == []
    assert set(result.masks) == {"person", "car"}
    assert query_labels("semantic", "person| car") == ["person", "car"]


def test_switching_the_grammar_off(models):
    loaded = models["llava"]
    result = segment(
        loaded.model, loaded.processor, IMAGE, "text", grid=(8, 8), constrained=False, max_new_tokens=40
    )
    # An untrained model decoding freely writes no descriptor; the parser says so instead of hiding it.
    assert result.failed and result.repairs
    assert result.masks["text"].sum() == 0


def test_bad_sentence_mode_is_refused(models):
    loaded = models["llava"]
    with pytest.raises(ValueError, match="answer_sentence 'fixed'"):
        segment(loaded.model, loaded.processor, IMAGE, "text", answer_sentence="fixed")


def test_iter_segment_yields_rows_then_the_result(models):
    from text4seg.mllm.generate import RowUpdate, iter_segment

    loaded = models["llava"]
    events = list(iter_segment(loaded.model, loaded.processor, IMAGE, "text", grid=(6, 6)))
    assert all(isinstance(e, RowUpdate) for e in events[:-1]) and len(events) == 7
    result = events[-1]
    assert isinstance(result, CoarseMaskResult)
    assert [e.labels for e in events[:-1]] == result.grid
    with pytest.raises(ValueError, match="answer_sentence"):
        list(iter_segment(loaded.model, loaded.processor, IMAGE, "text", answer_sentence="nope"))
