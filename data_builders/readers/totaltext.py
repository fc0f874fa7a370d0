"""Total-Text as published: Images/{Train,Test}/*.jpg and groundtruth_pixel/{Train,Test}/*.jpg."""

from __future__ import annotations

from collections.abc import Iterator

from data_builders.readers.base import DatasetReader, find_case_insensitive
from data_builders.records import Record

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_FOLDERS = {"train": "Train", "test": "Test"}


class TotalTextReader(DatasetReader):
    """Pixel GT is JPEG, so it is binarised at > 127; suffixes match in any case (one GT is .JPG)."""

    name = "totaltext"
    splits = ("train", "test")
    layout = (
        "  <root>/Images/{Train,Test}/<name>.jpg\n"
        "  <root>/groundtruth_pixel/{Train,Test}/<name>.jpg   (JPEG, text > 127; suffix case may differ)"
    )

    def __init__(self, *, root) -> None:
        super().__init__(root=root)
        self.require("Images", "groundtruth_pixel")

    def _records(self, split: str) -> Iterator[Record]:
        folder = _FOLDERS[split]
        images = find_case_insensitive(self.root / "Images" / folder, _IMAGE_SUFFIXES)
        gts = find_case_insensitive(self.root / "groundtruth_pixel" / folder, _IMAGE_SUFFIXES)
        for stem in sorted(set(gts) - set(images)):
            self.report.add(gts[stem], "ground truth without image")
        for stem, image_path in images.items():
            if stem not in gts:
                self.report.add(self.root / "groundtruth_pixel" / folder / f"{stem}.jpg", "missing")
                continue
            image, gt = self.load_rgb(image_path), self.load_gray(gts[stem])
            if image is None or gt is None or not self.check_size(gts[stem], image, gt):
                continue
            yield Record(
                image=image, mask=gt > 127, text="text", task="scene_text", split=split,
                source_id=f"totaltext/{split}/{stem}",
            )  # fmt: skip
