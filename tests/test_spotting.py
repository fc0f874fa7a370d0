"""Word spotting (text4seg.core.spotting): CTC's forward algorithm over a recognizer's folded steps, and
the content-query hint that falls back on it (text4seg.core.reading.matching_words)."""

import numpy as np
import pytest
import torch

from text4seg.backbone.recognition import ctc_greedy, fold_table
from text4seg.core.reading import SeenWord, matching_words, spotted_word
from text4seg.core.spotting import ALPHABET, BLANK, COLUMNS, OTHER, folded, word_log_likelihood


@pytest.mark.parametrize(
    "steps, word", [(12, "abba"), (5, "ab"), (20, "hello"), (3, "aa"), (1, "7"), (9, "0z")]
)
def test_the_forward_algorithm_is_torch_ctc_loss(steps, word):
    log_probs = torch.log_softmax(
        torch.from_numpy(np.random.default_rng(steps).normal(size=(steps, COLUMNS)) * 2), -1
    )
    target = torch.tensor([[2 + ALPHABET.index(c) for c in word]])
    loss = torch.nn.functional.ctc_loss(
        log_probs[:, None, :],
        target,
        torch.tensor([steps]),
        torch.tensor([len(word)]),
        blank=BLANK,
        reduction="none",
    )
    assert word_log_likelihood(log_probs.numpy(), word) == pytest.approx(-loss.item() / len(word), abs=1e-9)


def test_too_few_steps_cannot_spell_a_word_and_bad_input_is_refused():
    steps = np.log(np.full((2, COLUMNS), 1 / COLUMNS))
    assert word_log_likelihood(steps, "aa") == -np.inf  # a repeat needs a blank between: 3 steps
    assert np.isfinite(word_log_likelihood(steps, "ab"))
    with pytest.raises(ValueError, match="T×38"):
        word_log_likelihood(np.zeros((4, 10)), "ab")
    with pytest.raises(ValueError, match="ALPHABET"):
        word_log_likelihood(steps, "A")


def test_words_are_folded_to_the_case_free_alphabet():
    assert folded("Open!") == "open" and folded("Ｅxit 2") == "exit2" and folded("no-entry") == "noentry"
    assert folded("品") is None and folded("--") is None and folded("café") is None


def test_the_fold_table_adds_each_class_to_its_column():
    characters = [
        "",
        "A",
        "a",
        "Ａ",
        "品",
        "1",
        " ",
    ]  # blank, three spellings of one letter, other, digit, space
    table = fold_table(characters)
    assert table.shape == (7, COLUMNS) and (table.sum(axis=1) == 1).all()
    a, one = 2 + ALPHABET.index("a"), 2 + ALPHABET.index("1")
    assert [int(table[i].argmax()) for i in range(7)] == [BLANK, a, a, a, OTHER, one, OTHER]
    probs = np.array([[0.1, 0.3, 0.3, 0.1, 0.1, 0.05, 0.05]], np.float32)
    reading = ctc_greedy(probs, characters, table)
    assert np.exp(reading.folded[0, a]) == pytest.approx(0.7) and np.exp(
        reading.folded[0, OTHER]
    ) == pytest.approx(0.15)
    assert ctc_greedy(probs, characters).folded is None


def _steps(spelled: str, second: str | None = None, p: float = 0.9) -> np.ndarray:
    """Folded log-probabilities of steps that read ``spelled`` (each letter then a blank); with
    ``second``, each letter step gives ``second``'s letter the rest of the mass (a near miss)."""
    rows = []
    for k, c in enumerate(spelled):
        row = np.full(COLUMNS, 1e-6)
        row[2 + ALPHABET.index(c)] = p
        if second is not None and second[k] != c:
            row[2 + ALPHABET.index(second[k])] = 1 - p
        elif second is not None:
            row[2 + ALPHABET.index(c)] = 1.0
        rows += [row, np.eye(COLUMNS)[BLANK] + 1e-6]
    return np.log(np.asarray(rows) / np.sum(rows, axis=1, keepdims=True))


def test_a_misread_word_is_found_by_its_steps_only_when_no_text_matches():
    # "CYB" decoded as "7YB" (its C just second-best) and the neighbour "SHOP" read well
    misread = SeenWord(text="7YB", box=(0, 0, 10, 5), score=0.4, spotting=_steps("7yb", second="cyb", p=0.6))
    shop = SeenWord(text="SHOP", box=(20, 0, 40, 5), score=0.95, spotting=_steps("shop"))
    words = [misread, shop]
    assert matching_words(words, ["CYB"], min_score=0.5) == []  # no text match, spotting off
    assert matching_words(words, ["CYB"], spot=-5.0, min_score=0.5) == [misread]
    assert spotted_word(words, ["CYB"], floor=-0.1) is None  # 0.4 per letter on C: under that floor
    assert matching_words(words, ["shop"], spot=-5.0, min_score=0.5) == [shop]  # the text match comes first
    assert matching_words(words, ["EXIT"], spot=-5.0, min_score=0.5) == []  # nothing spells it
    assert matching_words(words, ["7YB"], min_score=0.5) == []  # text is matched on confident words only
    assert (
        matching_words([SeenWord(text="7YB", box=(0, 0, 1, 1))], ["品"], spot=-5.0) == []
    )  # no steps, no alphabet
