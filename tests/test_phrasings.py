"""Referring phrasing pools: canonical sentences unchanged, train and held-out pools disjoint."""

import numpy as np
import pytest

from data_builders.synthetic.config import SyntheticConfig
from data_builders.synthetic.phrasings import _POOLS, _SAME_AS, phrase, pool
from data_builders.synthetic.referring import ReferringExpression, rephrase

KINDS = [*_POOLS, *_SAME_AS]


def test_canonical_sentences_are_the_fixed_ones_every_older_corpus_holds():
    assert phrase("content", "EXIT") == "the word 'EXIT'"
    assert phrase("colour", "red") == "the red word"
    assert phrase("colour_multi", "red") == "the red words"
    assert phrase("position", "top left") == "the text at the top left"
    assert phrase("position", "center") == "the text in the center"
    assert phrase("plate", "blue") == "the text on the blue sign"
    assert phrase("none_colour", "pink") == "the pink word"
    assert phrase("extreme", "left") == "the leftmost word"
    assert [phrase(k, "") for k in ("largest", "smallest", "curved", "all")] == [
        "the largest word", "the smallest word", "the curved text", "all the text",
    ]  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
def test_pools_are_disjoint_and_every_template_names_its_slot(kind):
    train, heldout = set(pool(kind, "train")), set(pool(kind, "heldout"))
    assert train and heldout and not train & heldout
    slot = {"content": "OPEN", "none_content": "OPEN", "position": "top left", "extreme": "left"}.get(
        kind, "teal"
    )
    for template in train | heldout:
        sentence = template.format(
            slot=slot, at="at the top left", where="top left", most="leftmost", alt="left-most"
        )
        if kind not in ("largest", "smallest", "curved", "all"):
            assert slot in sentence, (kind, template)


def test_rephrase_keeps_targets_and_kind_and_draws_only_from_its_pool():
    expressions = [
        ReferringExpression(sentence="the red word", targets=(1,), kind="colour", slot="red"),
        ReferringExpression(sentence="the word 'OPEN'", targets=(), kind="none_content", slot="OPEN"),
    ]
    rng = np.random.default_rng(0)
    said = [rephrase(expressions, split="heldout", rng=rng) for _ in range(30)]
    heldout = {t.format(slot="red") for t in pool("colour", "heldout")}
    assert {s[0].sentence for s in said} == heldout  # every held-out colour template gets drawn
    assert all(s[0].targets == (1,) and s[0].kind == "colour" and s[1].targets == () for s in said)
    assert rephrase(expressions, split="canonical", rng=rng) == expressions
    with pytest.raises(ValueError, match="phrasings 'novel'"):
        SyntheticConfig(phrasings="novel")
    with pytest.raises(ValueError, match="pass an rng"):
        phrase("colour", "red", split="train")
