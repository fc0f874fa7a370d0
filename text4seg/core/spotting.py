"""Word spotting: how likely a recognizer's frames are to spell a given word, whatever it decoded.

A CTC recognizer outputs, per step of a crop, a probability over its characters; greedy decoding keeps
the best character per step, so a word whose letters are each second-best is decoded as something else
("CYB" read as "7B", "MAIL" as "1A"). A content query knows which word it wants, so it can ask instead
how likely the steps are to spell *that* word: CTC's forward algorithm sums the probability of every
alignment of the word to the steps (Graves et al. 2006), as ``torch.nn.functional.ctc_loss`` does.

Here the recognizer's classes are first folded onto a small alphabet (``ALPHABET``: digits and
case-free Latin letters, after Unicode NFKC, so "Ａ", "A" and "a" are one class), plus the blank and one
class for every other character (``backbone.recognition.fold_table`` builds the map from a
recognizer's dictionary). A word is scored by its mean log-probability per character
(``word_log_likelihood``), comparable across word lengths: 0 for steps that spell it with certainty.
"""

from __future__ import annotations

import unicodedata

import numpy as np

ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
"""The characters a word is spotted in; column ``2 + ALPHABET.index(c)`` of folded log-probabilities."""
BLANK, OTHER = 0, 1
"""Columns of the CTC blank and of every character outside ``ALPHABET``."""
COLUMNS = 2 + len(ALPHABET)


def folded(word: str) -> str | None:
    """``word`` as ``ALPHABET`` characters (NFKC, lower case, punctuation and spaces dropped); None when
    nothing is left or a character is outside the alphabet (a word in another script is not spotted)."""
    kept = [c for c in unicodedata.normalize("NFKC", word).lower() if c.isalnum()]
    return "".join(kept) if kept and all(c in ALPHABET for c in kept) else None


def fold_character(character: str) -> int:
    """The folded column of one recognizer character (``OTHER`` for anything outside the alphabet)."""
    normal = unicodedata.normalize("NFKC", character).lower()
    return 2 + ALPHABET.index(normal) if len(normal) == 1 and normal in ALPHABET else OTHER


def word_log_likelihood(log_probs: np.ndarray, word: str) -> float:
    """Mean log-probability per character that the T×``COLUMNS`` folded ``log_probs`` (column ``BLANK``
    the CTC blank) spell ``word`` (``folded`` form): log P(word | steps) / len(word), by CTC's forward
    algorithm; −inf when the steps are too few to spell it."""
    log_probs = np.asarray(log_probs, np.float64)
    if log_probs.ndim != 2 or log_probs.shape[1] != COLUMNS:
        raise ValueError(f"log_probs must be T×{COLUMNS}, got shape {log_probs.shape}")
    if not word or any(c not in ALPHABET for c in word):
        raise ValueError(f"word must be non-empty ALPHABET characters (see folded), got {word!r}")
    labels = [2 + ALPHABET.index(c) for c in word]
    # The extended sequence: blank, w1, blank, w2, ..., wL, blank.
    extended = np.full(2 * len(labels) + 1, BLANK)
    extended[1::2] = labels
    # A step may skip the blank between two different characters, not between a repeated one.
    can_skip = np.zeros(len(extended), bool)
    can_skip[3::2] = np.asarray(labels[1:]) != np.asarray(labels[:-1])
    alpha = np.full(len(extended), -np.inf)
    alpha[:2] = log_probs[0, extended[:2]]
    for step in log_probs[1:]:
        stay_or_advance = np.logaddexp(alpha, np.r_[-np.inf, alpha[:-1]])
        skipped = np.where(can_skip, np.r_[-np.inf, -np.inf, alpha[:-2]], -np.inf)
        alpha = np.logaddexp(stay_or_advance, skipped) + step[extended]
    return float(np.logaddexp(alpha[-1], alpha[-2])) / len(labels)
