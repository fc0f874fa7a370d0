"""Words read, said as grid cells in the user turn (text4seg.core.reading) and built into chat rows."""

import numpy as np
import pytest

from data_builders.conversations import ConversationConfig, conversations_from_synthetic
from data_builders.synthetic import SyntheticConfig
from data_builders.synthetic.build import build
from text4seg.core.colours import colour_hint
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


def test_runs_style_says_each_words_rows_as_the_answer_would_write_them():
    words = [
        SeenWord(text="OPEN", box=(10, 20, 39.5, 29)),  # row 3, columns 2-4
        SeenWord(text="GARDEN", box=(5, 35, 60, 58)),  # rows 4-6, columns 1-6
        SeenWord(text="EXIT", box=(70, 60, 80, 79)),  # rows 7-8, column 8
    ]
    context = reading_context(words, image_size=(80, 80), grid=(8, 8), style="runs")
    assert context == (
        "Words read: 'OPEN' row 3: others *1| word *3| others *4; 'GARDEN' rows 4-6: word *6| others *2; "
        "'EXIT' rows 7-8: others *7| word *1."
    )
    # The threshold is the grid rule's. 1 px into column 4 and row 3 is 10 % of an edge cell and 1 %
    # of the corner cell: at 5 % the corner is left out and the rows differ, at 20 % both edges are.
    corner = [SeenWord(text="BIG", box=(0, 0, 31, 21))]
    assert reading_context(corner, image_size=(80, 80), grid=(8, 8), style="runs", threshold=0.05) == (
        "Words read: 'BIG' rows 1-2: word *4| others *4, row 3: word *3| others *5."
    )
    assert reading_context(corner, image_size=(80, 80), grid=(8, 8), style="runs", threshold=0.2) == (
        "Words read: 'BIG' rows 1-2: word *3| others *5."
    )
    assert reading_context(corner, image_size=(80, 80), grid=(8, 8), style="runs", threshold=0.01) == (
        "Words read: 'BIG' rows 1-3: word *4| others *4."
    )
    # A word too small for the threshold keeps the cell of its centre.
    tiny = [SeenWord(text="a", box=(51, 51, 52, 52))]
    assert reading_context(tiny, image_size=(80, 80), grid=(8, 8), style="runs", threshold=0.5) == (
        "Words read: 'a' row 6: others *5| word *1| others *2."
    )
    # A slanted word is gridded by its outline, not its box: of the box's four cells the band covers
    # two by more than 20 % (the other two by 12.5 %).
    slanted = SeenWord(text="UP", box=(0, 0, 40, 40), polygon=((0, 30), (30, 0), (40, 10), (10, 40)))
    assert reading_context([slanted], image_size=(80, 80), grid=(4, 4), style="runs", threshold=0.2) == (
        "Words read: 'UP' row 1: others *1| word *1| others *2, row 2: word *1| others *3."
    )
    boxed = SeenWord(text="UP", box=(0, 0, 40, 40))
    assert reading_context([boxed], image_size=(80, 80), grid=(4, 4), style="runs", threshold=0.2) == (
        "Words read: 'UP' rows 1-2: word *2| others *2."
    )
    with pytest.raises(ValueError, match="style 'none'"):
        reading_context(words, image_size=(80, 80), grid=(8, 8), style="none")


def test_runs_rows_of_the_queried_word_are_the_answers_rows(tmp_path):
    """In ``runs`` chat rows the answer's cells are the queried word's listed cells when the word was
    read right: both follow the answers' grid rule, on the word's rectangle and on its convex hull."""
    from text4seg.core.codec import BACKGROUND, clean_label, decode_rrle

    cfg = SyntheticConfig(size=128, p_no_text=0.0, max_instances=4)
    rows = list(build(cfg, n=16, out=tmp_path / "arrow", seed=5, workers=1))
    conv = ConversationConfig(
        grid_sizes=(8,),
        grid_rule="area",
        area_threshold=0.03,
        grid_regions=True,
        reading="runs",
        max_referring=4,
    )
    ious = []
    for i, row in enumerate(rows):
        samples = conversations_from_synthetic(
            row, cfg=conv, templates=get_template_set("default"), rng=np.random.default_rng(i)
        )
        for sample in samples:
            context = sample.messages[0]["content"].split("\n")[1]
            word = sample.target.split("'")[1] if sample.target.count("'") >= 2 else None
            if not context.startswith("Words read: ") or f"'{word}' row" not in context:
                continue
            listed = context.split(f"'{word}' ", 1)[1].split(";")[0].rstrip(".")
            expected = np.full((8, 8), BACKGROUND, dtype=object)
            for group in listed.split(", "):
                span, runs = group.split(": ")
                first, last = (int(v) for v in (span.split()[1].split("-") * 2)[:2])
                expected[first - 1 : last] = decode_rrle(runs + "\n")[0]
            answer = sample.messages[1]["content"].split("<seg>")[1].split("</seg>")[0]
            grid = np.array(decode_rrle(answer), dtype=object)
            label = clean_label(sample.target)
            answer_cells, listed_cells = grid == label, expected == "word"
            ious.append((answer_cells & listed_cells).sum() / (answer_cells | listed_cells).sum())
    assert len(ious) >= 5
    assert np.mean(ious) >= 0.8, ious


def test_hint_shows_the_outlines_of_the_read_words_the_query_names():
    from text4seg.core.expressions import named_words
    from text4seg.core.reading import hint_mask, matching_words

    slanted = ((10.0, 30.0), (50.0, 10.0), (55.0, 20.0), (15.0, 40.0))
    words = [
        SeenWord(text="OPEN", box=(10, 10, 55, 40), polygon=slanted),
        SeenWord(text="0PEN.", box=(60, 60, 79, 70)),  # one wrong letter and a dot: still OPEN
        SeenWord(text="OPERA", box=(0, 70, 20, 79)),  # ratio 0.67: another word
        SeenWord(text="EXIT", box=(60, 0, 79, 9)),
    ]
    named = matching_words(words, named_words("the text that says 'open'"))
    assert [w.text for w in named] == ["OPEN", "0PEN."]
    mask = hint_mask(named, (80, 80))
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
    # The slanted word gives its quadrilateral, not its box; the box-only word its box.
    assert mask[25, 30] == 255 and mask[12, 12] == 0 and mask[38, 52] == 0
    assert (mask[60:70, 60:79] == 255).all() and not mask[70:, :20].any() and not mask[:10, 60:].any()
    assert not hint_mask(matching_words(words, named_words("the red word")), (80, 80)).any()


def test_hint_rows_carry_the_named_words_outline_and_no_words_read_line(tmp_path):
    from data_builders.conversations import samples_to_dataset
    from text4seg.core.codec import BACKGROUND
    from text4seg.core.masks import grid_from_mask
    from text4seg.core.parser import parse_answer

    cfg = SyntheticConfig(size=96, p_no_text=0.0, max_instances=4)
    rows = list(build(cfg, n=12, out=tmp_path / "arrow", seed=3, workers=1))
    conv = ConversationConfig(
        grid_sizes=(8,),
        grid_rule="area",
        area_threshold=0.03,
        grid_regions=True,
        reading="hint",
        max_referring=4,
    )
    samples, shown = [], 0
    for i, row in enumerate(rows):
        kinds = [e["kind"] for e in row["referring"]][: conv.max_referring]
        made = conversations_from_synthetic(
            row, cfg=conv, templates=get_template_set("default"), rng=np.random.default_rng(i)
        )
        samples += made
        for sample, kind in zip([s for s in made if s.task == "referring"], kinds, strict=True):
            assert (sample.hint is not None) == (kind in ("content", "none_content")), kind
            assert "Words read" not in sample.messages[0]["content"]
            if kind == "content" and sample.hint is not None and sample.hint.any():
                # The hint shows the named word: it meets the answer's cells.
                shown += 1
                answer = parse_answer(sample.messages[1]["content"], height=8, width=8).grid
                cells = np.array(answer) != BACKGROUND
                hinted = grid_from_mask(sample.hint > 0, grid_size=(8, 8), rule="area", threshold=0.03)
                assert (cells & hinted).any(), sample.target
        assert all(s.hint is None for s in made if s.task != "referring")
    assert shown >= 3
    data = samples_to_dataset(samples, hint=True)
    stored = [h for h in data["hint"] if h is not None]
    assert data.features["hint"].mode == "L" and len(stored) == sum(s.hint is not None for s in samples)
    assert "hint" not in samples_to_dataset(samples[:2]).features


def test_with_colour_hint_colour_rows_show_their_colours_pixels(tmp_path):
    cfg = SyntheticConfig(size=96, p_no_text=0.0, max_instances=4)
    rows = list(build(cfg, n=12, out=tmp_path / "arrow", seed=3, workers=1))
    shown = 0
    for colours in (False, True):
        conv = ConversationConfig(grid_sizes=(8,), grid_rule="area", area_threshold=0.03, grid_regions=True,
                                  reading="hint", colour_hint=colours, max_referring=4)  # fmt: skip
        for i, row in enumerate(rows):
            kinds = [e["kind"] for e in row["referring"]][: conv.max_referring]
            made = conversations_from_synthetic(
                row, cfg=conv, templates=get_template_set("default"), rng=np.random.default_rng(i)
            )
            image = np.asarray(row["image"].convert("RGB"))
            for sample, kind in zip([s for s in made if s.task == "referring"], kinds, strict=True):
                if kind not in ("colour", "colour_multi", "none_colour"):
                    continue
                assert (sample.hint is not None) == colours, (kind, sample.target)
                if colours:  # the pixels of the named colour, wherever they are
                    assert np.array_equal(sample.hint, colour_hint(image, sample.target))
                    shown += 1
    assert shown >= 3


def test_with_attribute_hint_attribute_rows_show_their_targets_outlines(tmp_path):
    """colour / position / size rows show the outlines of their target words (the words the selector
    picks at inference); a no-target colour row shows an empty hint (it asked, nothing is picked);
    content rows still show the named words."""
    from data_builders.conversations import ATTRIBUTE_KINDS, word_outline
    from data_builders.synthetic.writers import decode_rle
    from text4seg.core.reading import hint_mask

    cfg = SyntheticConfig(size=96, p_no_text=0.0, max_instances=4)
    rows = list(build(cfg, n=12, out=tmp_path / "arrow", seed=3, workers=1))
    conv = ConversationConfig(grid_sizes=(8,), grid_rule="area", area_threshold=0.03, grid_regions=True,
                              reading="hint", attribute_hint=True, max_referring=4)  # fmt: skip
    shown = nothing = 0
    for i, row in enumerate(rows):
        exprs = row["referring"][: conv.max_referring]
        made = conversations_from_synthetic(
            row, cfg=conv, templates=get_template_set("default"), rng=np.random.default_rng(i)
        )
        for sample, expr in zip([s for s in made if s.task == "referring"], exprs, strict=True):
            if expr["kind"] not in ATTRIBUTE_KINDS:
                assert expr["kind"] != "curved" or sample.hint is None
                continue
            assert sample.hint is not None and sample.hint.shape == (96, 96)
            if expr["kind"] == "none_colour":
                assert not sample.hint.any(), expr
                nothing += 1
            outlines = hint_mask(
                [SeenWord(text="", box=(0, 0, 0, 0), polygon=word_outline(decode_rle(row["instance_masks"][t])))
                 for t in expr["targets"]], (96, 96)
            )  # fmt: skip
            if sample.hint.any():  # the targets' outlines (a word may be dropped, as a reader misses it)
                assert (outlines[sample.hint > 0] > 0).all(), expr
                shown += 1
    assert shown >= 5 and nothing >= 1
    with pytest.raises(ValueError, match="choose one"):
        ConversationConfig(reading="hint", attribute_hint=True, colour_hint=True)
    with pytest.raises(ValueError, match="need reading: hint"):
        ConversationConfig(attribute_hint=True)


def test_with_scene_text_hint_scene_text_rows_show_every_word(tmp_path):
    from data_builders.conversations import word_outline
    from data_builders.synthetic.writers import decode_rle
    from text4seg.core.reading import hint_mask

    cfg = SyntheticConfig(size=96, p_no_text=0.0, max_instances=4)
    rows = list(build(cfg, n=6, out=tmp_path / "arrow", seed=3, workers=1))
    conv = ConversationConfig(grid_sizes=(8,), grid_rule="area", area_threshold=0.03, grid_regions=True,
                              reading="hint", scene_text_hint=True, max_referring=0)  # fmt: skip
    shown = 0
    for i, row in enumerate(rows):
        (scene,) = [s for s in conversations_from_synthetic(
            row, cfg=conv, templates=get_template_set("default"), rng=np.random.default_rng(i)
        ) if s.task == "scene_text"]  # fmt: skip
        outlines = hint_mask(
            [
                SeenWord(text="", box=(0, 0, 0, 0), polygon=word_outline(decode_rle(m)))
                for m in row["instance_masks"]
            ],
            (96, 96),
        )
        assert scene.hint is not None and scene.hint.shape == (96, 96)
        assert (outlines[scene.hint > 0] > 0).all()  # every word's outline, some dropped as a reader would
        shown += int(np.array_equal(scene.hint > 0, outlines > 0))
    assert shown >= 3


def test_closest_takes_one_near_miss_only_when_nothing_matches():
    from text4seg.core.reading import CLOSEST_RATIO, matching_words

    words = [
        SeenWord(text="MAQS", box=(0, 0, 20, 10)),  # "IWAQIS" misread: ratio 0.6
        SeenWord(text="SHOP", box=(30, 0, 50, 10)),
        SeenWord(text="0PEN", box=(0, 20, 20, 30)),
    ]
    assert matching_words(words, ["IWAQIS"]) == []  # under MATCH_RATIO
    assert [w.text for w in matching_words(words, ["IWAQIS"], closest=CLOSEST_RATIO)] == ["MAQS"]
    # A real match wins: the near misses are not added to it.
    assert [w.text for w in matching_words(words, ["OPEN"], closest=CLOSEST_RATIO)] == ["0PEN"]
    # A word nothing read resembles still gets an empty hint (a no-target query stays empty).
    assert matching_words(words, ["EXIT"], closest=CLOSEST_RATIO) == []
    assert matching_words([], ["EXIT"], closest=CLOSEST_RATIO) == []
