"""Conversation samples: user turn format, and answers that decode back to the ground-truth grid."""

from pathlib import Path

import numpy as np
import pytest

from data_builders.conversations import (
    ConversationConfig,
    conversations_from_record,
    conversations_from_synthetic,
    describe_instances,
    samples_to_dataset,
)
from data_builders.readers import build_reader
from data_builders.synthetic import SyntheticConfig
from data_builders.synthetic.build import build
from text4seg.core.codec import SEG_CLOSE, SEG_OPEN, decode_rrle
from text4seg.core.masks import descriptor_from_mask, grid_from_mask
from text4seg.core.parser import parse_answer
from text4seg.core.templates import TEMPLATE_SETS, TemplateSet, get_template_set

FIXTURES = Path(__file__).parent / "fixtures"
TEMPLATES = get_template_set("default")


def block_of(answer: str) -> str:
    assert answer.count(SEG_OPEN) == 1 and answer.endswith(SEG_CLOSE)
    return answer.split(SEG_OPEN, 1)[1][: -len(SEG_CLOSE)]


@pytest.fixture(scope="module")
def synthetic_rows(tmp_path_factory):
    out = tmp_path_factory.mktemp("syn") / "arrow"
    cfg = SyntheticConfig(size=64, p_no_text=0.0)
    return list(build(cfg, n=4, out=out, seed=11, workers=1))


@pytest.mark.parametrize("rule", ["nearest", "area"])
def test_synthetic_answers_round_trip_to_the_gt_grid(synthetic_rows, rule):
    cfg = ConversationConfig(grid_sizes=(8, 16), grid_rule=rule)
    tasks = set()
    for i, row in enumerate(synthetic_rows):
        mask = np.asarray(row["mask"]) > 127
        for sample in conversations_from_synthetic(
            row, cfg=cfg, templates=TEMPLATES, rng=np.random.default_rng(i)
        ):
            tasks.add(sample.task)
            user, assistant = sample.messages
            assert user["role"] == "user" and user["content"].startswith("<image>\n")
            assert assistant["role"] == "assistant"
            if sample.task == "describe":
                assert assistant["content"] == describe_instances(row["instances"])
                continue
            size = (sample.grid_h, sample.grid_w)
            assert sample.grid_h in (8, 16) and sample.grid_rule == rule
            grid = decode_rrle(block_of(assistant["content"]))
            if sample.task == "scene_text":
                expected = descriptor_from_mask(mask, label="text", grid_size=size, rule=rule, threshold=0.25)
                assert grid == expected and sample.target == "text"
            labels = {label for r in grid for label in r} - {"others"}
            assert labels <= {sample.target}
            parsed = parse_answer(assistant["content"], height=size[0], width=size[1])
            assert not parsed.failed and parsed.grid == grid and parsed.repairs == []
    assert tasks == {"scene_text", "referring", "describe"}


def test_referring_answer_covers_exactly_the_target_instances(synthetic_rows):
    from data_builders.synthetic.writers import decode_rle

    cfg = ConversationConfig(grid_sizes=(16,))
    row = next(r for r in synthetic_rows if any(e["targets"] for e in r["referring"]))
    samples = conversations_from_synthetic(row, cfg=cfg, templates=TEMPLATES, rng=np.random.default_rng(0))
    referring = [s for s in samples if s.task == "referring"]
    instance_masks = [decode_rle(t) for t in row["instance_masks"]]
    for sample, expr in zip(referring, row["referring"], strict=False):
        target = np.zeros_like(instance_masks[0]) if instance_masks else None
        for i in expr["targets"]:
            target |= instance_masks[i]
        expected = grid_from_mask(target, grid_size=(16, 16), rule="nearest")
        grid = decode_rrle(block_of(sample.messages[1]["content"]))
        assert np.array_equal(np.array([[c != "others" for c in r] for r in grid]), expected)
        assert sample.target == expr["sentence"]


def test_grid_regions_grids_each_words_hull_for_scene_text_and_referring(synthetic_rows):
    from data_builders.synthetic.writers import decode_rle
    from text4seg.core.masks import word_regions

    cfg = ConversationConfig(grid_sizes=(8,), grid_rule="area", area_threshold=0.1, grid_regions=True)
    row = next(r for r in synthetic_rows if any(e["targets"] for e in r["referring"]))
    instance_masks = [decode_rle(t) for t in row["instance_masks"]]
    samples = conversations_from_synthetic(row, cfg=cfg, templates=TEMPLATES, rng=np.random.default_rng(0))
    expected = {"scene_text": word_regions(instance_masks, instance_masks[0].shape)}
    for sample, expr in zip([s for s in samples if s.task == "referring"], row["referring"], strict=False):
        expected[sample.target] = word_regions(
            [instance_masks[i] for i in expr["targets"]], instance_masks[0].shape
        )
    for sample in samples:
        if sample.task == "describe":
            continue
        region = expected["scene_text" if sample.task == "scene_text" else sample.target]
        truth = grid_from_mask(region, grid_size=(8, 8), rule="area", threshold=0.1)
        grid = decode_rrle(block_of(sample.messages[1]["content"]))
        assert np.array_equal(np.array([[c != "others" for c in r] for r in grid]), truth)
    strokes = np.asarray(row["mask"]) > 127
    assert expected["scene_text"].sum() > strokes.sum()  # hulls cover the counters and gaps of letters


def test_real_records_give_samples_that_round_trip():
    cfg = ConversationConfig(grid_sizes=(16,))
    rng = np.random.default_rng(0)
    (rec,) = build_reader("cocostuff", root=FIXTURES / "cocostuff").records("val2017")
    (sem,) = conversations_from_record(rec, cfg=cfg, templates=TEMPLATES, rng=rng)
    assert sem.task == "semantic" and sem.target == "person|grass|sky-other"
    grid = decode_rrle(block_of(sem.messages[1]["content"]))
    assert {label for row in grid for label in row} == {"person", "grass", "sky-other"}
    ref = next(iter(build_reader("refcoco", root=FIXTURES / "refcoco").records("train")))
    (sample,) = conversations_from_record(ref, cfg=cfg, templates=TEMPLATES, rng=rng)
    assert sample.target == "yellow sign" and "yellow sign" in sample.messages[0]["content"]
    grid = decode_rrle(block_of(sample.messages[1]["content"]))
    assert grid == descriptor_from_mask(ref.mask, label="yellow sign", grid_size=(16, 16))
    text = next(iter(build_reader("textseg", root=FIXTURES / "textseg").records("train")))
    (scene,) = conversations_from_record(text, cfg=cfg, templates=TEMPLATES, rng=rng)
    assert decode_rrle(block_of(scene.messages[1]["content"])) == descriptor_from_mask(
        text.mask & ~text.ignore, label="text", grid_size=(16, 16)
    )


def test_dataset_columns_and_types(synthetic_rows):
    cfg = ConversationConfig()
    samples = conversations_from_synthetic(
        synthetic_rows[0], cfg=cfg, templates=TEMPLATES, rng=np.random.default_rng(0)
    )
    data = samples_to_dataset(samples)
    assert data.column_names == [
        "image",
        "messages",
        "task",
        "target",
        "grid_h",
        "grid_w",
        "grid_rule",
        "source_id",
    ]
    assert data[0]["image"].mode == "RGB" and data[0]["messages"][0]["content"].startswith("<image>\n")


def test_templates_are_frozen_and_validated():
    assert set(TEMPLATE_SETS) == {"default", "fixed"}
    with pytest.raises(TypeError):
        TEMPLATES.questions["scene_text"] = ("hijacked {target}",)
    with pytest.raises(ValueError, match="exactly one"):
        TemplateSet(
            name="bad",
            questions={**TEMPLATES.questions, "referring": ("no slot",)},
            answers=TEMPLATES.answers,
        )
    with pytest.raises(ValueError, match="no phrasings"):
        TemplateSet(name="bad", questions={}, answers={})
    fixed = get_template_set("fixed")
    assert fixed.question("scene_text", "text", index=5) == TEMPLATES.question("scene_text", "text", index=0)
    assert TEMPLATES.question("scene_text", "text") == "<image>\nSegment the text in this image."


def test_conversation_config_rejects_bad_values():
    with pytest.raises(ValueError, match="grid_rule 'bilinear'"):
        ConversationConfig(grid_rule="bilinear")
    with pytest.raises(ValueError, match="area_threshold 0.0"):
        ConversationConfig(area_threshold=0.0)


def test_chunked_save_keeps_every_sample_in_order(synthetic_rows, tmp_path):
    from data_builders.conversations import save_conversations

    cfg = ConversationConfig()
    samples = [
        s for i, row in enumerate(synthetic_rows)
        for s in conversations_from_synthetic(row, cfg=cfg, templates=TEMPLATES, rng=np.random.default_rng(i))
    ]  # fmt: skip
    data = save_conversations(samples, tmp_path / "conv", chunk=3)
    assert len(data) == len(samples) and data["source_id"] == [s.source_id for s in samples]
    assert data[len(samples) - 1]["messages"] == samples[-1].messages
    assert not (tmp_path / ".conv.parts").exists()


def test_grid_from_a_model_builds_the_rows_on_the_grid_it_answers_on(tmp_path):
    from data_builders.conversations import main
    from text4seg.core.inference import InferenceSettings, save_inference_settings

    syn = tmp_path / "syn"
    list(build(SyntheticConfig(size=64, p_no_text=0.0), n=2, out=syn, seed=3, workers=1))
    model = tmp_path / "model"
    model.mkdir()
    save_inference_settings(model, InferenceSettings(grid=(16, 16), grid_rule="area", grid_threshold=0.07))
    main(["--synthetic", str(syn), "--out", str(tmp_path / "rows"), "--config",
          "configs/default/conversations_hint.yaml", "--grid-from", str(model)])  # fmt: skip
    import json

    from datasets import load_from_disk

    written = json.loads((tmp_path / "rows" / "conversation_config.json").read_text())
    assert (written["grid_sizes"], written["grid_rule"], written["area_threshold"]) == ([16], "area", 0.07)
    assert written["reading"] == "hint" and written["attribute_hint"]  # the rest is the YAML's
    rows = load_from_disk(str(tmp_path / "rows"))
    assert set(rows["grid_h"]) == set(rows["grid_w"]) == {16}
    save_inference_settings(model, InferenceSettings(grid=(16, 8)))
    with pytest.raises(ValueError, match="16x8"):
        main(["--synthetic", str(syn), "--out", str(tmp_path / "bad"), "--grid-from", str(model)])
    with pytest.raises(ValueError, match="no inference.json"):
        main(["--synthetic", str(syn), "--out", str(tmp_path / "bad"), "--grid-from", str(tmp_path)])
