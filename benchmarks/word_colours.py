"""Colour naming of words: the colour ``text4seg.core.selection`` names for each drawn word, given its
true box, against the colour the generator drew it in.

A colour query ("the red word") picks the read words whose ink has the colour asked
(``selection.colour_shares``). This isolates that naming from the reader: every word of a synthetic
corpus (``python -m data_builders.synthetic``; each instance records its ``colour`` and ``box``) is
given to ``selection.word_colours`` as a box-only word, and the name it returns is compared with the
drawn colour (synonyms mapped, ``colours.SYNONYMS``). Two rows:

- ``ink``: ``word_colours`` as the pipeline uses it (its ink found inside the box);
- ``true_ink``: the word's own stroke pixels named by the same majority rule: what a perfect ink
  finder would score, the ceiling left to ``colours.pixel_names``.

Words under ``--min-area`` box pixels and colours with no name in ``colours.NAMES`` are skipped.

Run: ``python benchmarks/word_colours.py --data DIR [--limit N]``. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

import numpy as np
from tqdm.auto import tqdm

from data_builders.synthetic.writers import decode_rle
from text4seg.core.colours import NAMES, SYNONYMS, pixel_names
from text4seg.core.reading import SeenWord
from text4seg.core.selection import word_colours


def majority_name(pixels: np.ndarray) -> str | None:
    """The colour name most of N×3 uint8 RGB ``pixels`` have; None for no pixels."""
    if len(pixels) == 0:
        return None
    names = pixel_names(np.asarray(pixels, np.uint8).reshape(-1, 1, 3)).ravel()
    return NAMES[int(np.bincount(names, minlength=len(NAMES)).argmax())]


def main(argv: list[str] | None = None) -> None:
    import datasets

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="synthetic Arrow dataset (save_to_disk folder)")
    parser.add_argument("--limit", type=int, help="only the first N images")
    parser.add_argument("--min-area", type=int, default=30, help="skip words with smaller boxes")
    args = parser.parse_args(argv)

    rows = datasets.load_from_disk(args.data)
    if args.limit:
        rows = rows.select(range(min(args.limit, len(rows))))
    right, confusions, words = Counter(), Counter(), 0
    for row in tqdm(rows, desc="images"):
        image = np.asarray(row["image"].convert("RGB"))
        for instance, rle in zip(row["instances"], row["instance_masks"], strict=True):
            x0, y0, x1, y1 = instance["box"]
            drawn = SYNONYMS.get(instance["colour"], instance["colour"])
            if (x1 - x0) * (y1 - y0) < args.min_area or drawn not in NAMES:
                continue
            named = word_colours(image, [SeenWord(text=instance["text"], box=(x0, y0, x1, y1))])[0]
            words += 1
            right["ink"] += named == drawn
            right["true_ink"] += majority_name(image[decode_rle(rle).astype(bool)]) == drawn
            if named != drawn:
                confusions[f"{drawn}->{named}"] += 1
    figures = {
        "words": words,
        **{f"{k}.accuracy": round(right[k] / max(1, words), 4) for k in ("ink", "true_ink")},
    }
    figures["confusions"] = dict(confusions.most_common(8))
    print(f"{words} words: colour named as drawn {figures['ink.accuracy']:.3f} "
          f"(from the true strokes {figures['true_ink.accuracy']:.3f})")  # fmt: skip
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
