"""CTC text recognition pieces: crop rectification, recognizer input, greedy decoding, word spans.

PaddleOCR's conventions (``tools/infer/predict_rec.py`` ``resize_norm_img``, ``ppocr/postprocess``
``CTCLabelDecode``, ``get_rotate_crop_image``), written for this project. Images are BGR here, as the
recognizer was trained on cv2 images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from text4seg.backbone.db_boxes import opencv
from text4seg.core.spotting import BLANK, COLUMNS, fold_character


def load_characters(path: Path, classes: int) -> list[str]:
    """The recognizer's class → character table: ``""`` for the CTC blank (class 0), then one
    character per dictionary line, then ``" "`` when the model has exactly one class more (PaddleOCR's
    ``use_space_char``). ``ValueError`` when ``classes`` fits neither."""
    # Only line ends are stripped: the first PP-OCRv5 entry is U+3000, an ideographic space.
    lines = [line.rstrip("\r\n") for line in path.read_text(encoding="utf-8").splitlines(keepends=True)]
    characters = ["", *lines]
    if classes == len(characters) + 1:
        characters.append(" ")
    if classes != len(characters):
        raise ValueError(
            f"recognizer has {classes} classes but {path} has {len(lines)} characters "
            f"(expected {len(lines) + 1} or {len(lines) + 2} classes with the blank and an optional space)"
        )
    return characters


def fold_table(characters: list[str]) -> np.ndarray:
    """C×``spotting.COLUMNS`` float32 0/1: which folded column (``text4seg.core.spotting``) each of the
    recognizer's classes adds its probability to (class 0, the CTC blank, to ``BLANK``)."""
    table = np.zeros((len(characters), COLUMNS), np.float32)
    table[0, BLANK] = 1.0
    for index, character in enumerate(characters[1:], start=1):
        table[index, fold_character(character)] = 1.0
    return table


@dataclass(frozen=True)
class CtcReading:
    """A greedy CTC decoding of one T×C sequence: one entry per decoded character."""

    text: str
    """The characters (blank dropped, repeats merged)."""
    confidences: np.ndarray
    """len(text) float32: each character's probability at the first step of its run."""
    starts: np.ndarray
    """len(text) int: the step where each character's run begins."""
    ends: np.ndarray
    """len(text) int: the step after each character's run ends."""
    folded: np.ndarray | None = None
    """T×``spotting.COLUMNS`` float32 log-probabilities of the steps folded onto the spotting alphabet
    (``text4seg.core.spotting``), when ``ctc_greedy`` was given a ``fold_table``."""


def ctc_greedy(probs: np.ndarray, characters: list[str], table: np.ndarray | None = None) -> CtcReading:
    """Best class per step of a T×C probability sequence, runs of one class merged, blanks dropped;
    with ``table`` (``fold_table``) the steps folded for word spotting too."""
    best = probs.argmax(axis=1)
    starts = np.flatnonzero(np.r_[True, best[1:] != best[:-1]])
    ends = np.r_[starts[1:], len(best)]
    kept = best[starts] != 0
    starts, ends = starts[kept], ends[kept]
    return CtcReading(
        text="".join(characters[i] for i in best[starts]),
        confidences=probs[starts, best[starts]].astype(np.float32),
        starts=starts,
        ends=ends,
        folded=None if table is None else np.log(probs @ table + 1e-12).astype(np.float32),
    )


def word_spans(reading: CtcReading) -> list[tuple[str, float, float, float]]:
    """(word, mean confidence, start step, end step) of each space-separated word of a reading.

    Neighbouring words split the steps between them at the middle of their gap; the first word starts
    at step 0 and the last ends at ``inf`` (the caller clips to the text's extent).
    """
    groups, current = [], []
    for k, char in enumerate(reading.text):
        if char.isspace():
            if current:
                groups.append(current)
            current = []
        else:
            current.append(k)
    if current:
        groups.append(current)
    spans = []
    for g, group in enumerate(groups):
        left = 0.0 if g == 0 else (reading.ends[groups[g - 1][-1]] + reading.starts[group[0]]) / 2
        right = (
            math.inf
            if g == len(groups) - 1
            else (reading.ends[group[-1]] + reading.starts[groups[g + 1][0]]) / 2
        )
        text = "".join(reading.text[k] for k in group)
        spans.append((text, float(reading.confidences[group].mean()), float(left), float(right)))
    return spans


def rectify(image: np.ndarray, corners: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(crop, reading corners) of the rectangle ``corners`` (4×2, clockwise from the top-left) of an
    H×W×3 image, or ``None`` for a box under one pixel.

    The crop is the rectangle warped upright (crop_h×crop_w×3), turned a quarter counter-clockwise when
    it is tall (height ≥ 1.5 × width), as PaddleOCR reads vertical lines. The reading corners are the
    4 corners reordered so the first two span the crop's top edge from left to right.
    """
    cv2 = opencv()
    width = int(max(np.linalg.norm(corners[0] - corners[1]), np.linalg.norm(corners[2] - corners[3])))
    height = int(max(np.linalg.norm(corners[0] - corners[3]), np.linalg.norm(corners[1] - corners[2])))
    if width < 1 or height < 1:
        return None
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    matrix = cv2.getPerspectiveTransform(corners.astype(np.float32), target)
    crop = cv2.warpPerspective(
        image, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )
    if height >= 1.5 * width:
        # np.rot90: the crop's right edge becomes its top, read downwards.
        return np.rot90(crop).copy(), np.roll(corners, -1, axis=0)
    return crop, corners


def resized_width(crop: np.ndarray, *, height: int) -> int:
    """Width of ``crop`` resized to ``height`` with its aspect ratio kept (rounded up, at least 1)."""
    return max(1, math.ceil(height * crop.shape[1] / crop.shape[0]))


def recognizer_batch(crops: list[np.ndarray], *, height: int, min_width: int, max_width: int) -> np.ndarray:
    """N×3×height×W float32: each crop resized to ``height`` keeping its aspect ratio (width capped at
    W), scaled to [-1, 1] ((x/255 − 0.5)/0.5) and zero-padded on the right. W is the widest crop's
    width, at least ``min_width`` and at most ``max_width``."""
    cv2 = opencv()
    widths = [resized_width(c, height=height) for c in crops]
    batch_width = min(max_width, max(min_width, *widths))
    out = np.zeros((len(crops), 3, height, batch_width), np.float32)
    for k, (crop, width) in enumerate(zip(crops, widths, strict=True)):
        width = min(width, batch_width)
        resized = cv2.resize(crop, (width, height), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        out[k, :, :, :width] = (resized.transpose(2, 0, 1) / 255.0 - 0.5) / 0.5
    return out


def sub_rectangle(corners: np.ndarray, start: float, end: float) -> np.ndarray:
    """4×2: the part of the rectangle ``corners`` (reading order) between fractions ``start`` and
    ``end`` of its reading direction (0 = left edge, 1 = right edge)."""
    top_left, top_right, bottom_right, bottom_left = np.asarray(corners, np.float32)
    top, bottom = top_right - top_left, bottom_right - bottom_left
    return np.array(
        [
            top_left + start * top,
            top_left + end * top,
            bottom_left + end * bottom,
            bottom_left + start * bottom,
        ],
        np.float32,
    )
