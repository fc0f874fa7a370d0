"""Words read, said as grid cells in the user turn (text4seg.core.reading) and built into chat rows."""

import numpy as np
import pytest

from data_builders.conversations import ConversationConfig, conversations_from_synthetic
from data_builders.synthetic import SyntheticConfig
from data_builders.synthetic.build import build
from text4seg.core.reading import SeenWord, noisy_reading, reading_context, with_reading
from text4seg.core.templates import get_template_set


def test_context_lists_words_in_reading_order_with_one_based_cells():
    words = [
        SeenWord(text="EXIT", box=(70, 60, 80, 79)),  # rows 7-8 (of 8 on 80 px), column 8
        SeenWord(text="OPEN", box=(10, 20, 39.5, 29)),  # row 3, columns 2-4
        SeenWord(text="   ", box=(0, 0, 5, 5)),  # nothing readable: skipped
    ]
    context = reading_context(words, image_size=(80, 80), grid=(8, 8))
    assert context == "Words read: 'OPEN' row 3 columns 2-4; 'EXIT' rows 7-8 column 8."
    assert reading_context([], image_size=(80, 80), grid=(8, 8)) == "Words read: none."
    # A quote inside a word cannot end it early; a box outside the image is clipped to the edge cells.
    odd = [SeenWord(text="it's", box=(-5, 75, 200, 90))]
    assert reading_context(odd, image_size=(80, 80), grid=(8, 8)) == "Words read: 'its' row 8 columns 1-8."


def test_context_goes_after_the_image_line_and_a_question_without_it_is_refused():
    question = get_template_set("default").question("referring", "the word 'OPEN'")
    asked = with_reading(question, "Words read: none.")
    assert asked.startswith("<image>\nWords read: none.\n") and asked.endswith(question.split("\n", 1)[1])
    with pytest.raises(ValueError, match="does not start with"):
        with_reading("no image here", "Words read: none.")


def test_noise_drops_and_edits_some_words_and_keeps_boxes():
    words = [SeenWord(text=f"WORD{i}", box=(i, i, i + 5, i + 5)) for i in range(400)]
    noisy = noisy_reading(words, np.random.default_rng(0))
    assert 320 < len(noisy) < 390  # ~10% dropped
    changed = sum(n.text != f"WORD{int(n.box[0])}" for n in noisy)
    assert 15 < changed < 70  # ~10% of the kept ones get one edit
    assert all(abs(len(n.text) - len(f"WORD{int(n.box[0])}")) <= 1 for n in noisy)


def test_content_referring_rows_get_the_context_and_other_rows_do_not(tmp_path):
    cfg = SyntheticConfig(size=96, p_no_text=0.0, max_instances=4)
    rows = list(build(cfg, n=12, out=tmp_path / "arrow", seed=3, workers=1))
    conv = ConversationConfig(grid_sizes=(8,), grid_rule="area", reading="content", max_referring=4)
    templates = get_template_set("default")
    seen = {"content": 0, "other": 0}
    for i, row in enumerate(rows):
        kinds = [e["kind"] for e in row["referring"]][: conv.max_referring]
        samples = conversations_from_synthetic(
            row, cfg=conv, templates=templates, rng=np.random.default_rng(i)
        )
        referring = [s for s in samples if s.task == "referring"]
        for sample, kind in zip(referring, kinds, strict=True):
            has = sample.messages[0]["content"].split("\n")[1].startswith("Words read: ")
            key = "content" if kind in ("content", "none_content") else "other"
            assert has == (key == "content"), (kind, sample.messages[0]["content"])
            seen[key] += 1
        assert not any("Words read" in s.messages[0]["content"] for s in samples if s.task != "referring")
    assert seen["content"] and seen["other"]
    with pytest.raises(ValueError, match="reading 'all'"):
        ConversationConfig(reading="all")
