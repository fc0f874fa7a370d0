"""ICDAR 2013 Focused Scene Text with its pixel-level text segmentation GT (the release TexRNet reads).

Per split: images/<stem>.jpg and GT_Text_Segmentation/gt_<stem>.png (or <stem>_GT.bmp). The GT
paints each character in its own colour on a white background, so text = every non-white pixel.
"""

from __future__ import annotations

from collections.abc import Iterator

from data_builders.readers.base import DatasetReader, find_case_insensitive
from data_builders.records import Record


class Icdar13Reader(DatasetReader):
    name = "icdar13"
    splits = ("train", "test")
    layout = (
        "  <root>/Focused_Scene_Text/{train,test}/images/<stem>.jpg\n"
        "  <root>/Focused_Scene_Text/{train,test}/GT_Text_Segmentation/gt_<stem>.png or <stem>_GT.bmp\n"
        "  (white = background; any other colour = a character)"
    )

    def __init__(self, *, root) -> None:
        super().__init__(root=root)
        if (self.root / "Focused_Scene_Text").is_dir():
            self.base = self.root / "Focused_Scene_Text"
        else:
            self.base = self.root
        for split in self.splits:
            if not (self.base / split / "images").is_dir():
                raise self.layout_error(self.base / split / "images")

    def _gt_path(self, folder, stem: str):
        for name in (f"gt_{stem}.png", f"{stem}_GT.bmp"):
            if (folder / name).is_file():
                return folder / name
        return None

    def _records(self, split: str) -> Iterator[Record]:
        gt_folder = self.base / split / "GT_Text_Segmentation"
        images = find_case_insensitive(self.base / split / "images", (".jpg", ".jpeg", ".png"))
        for stem, image_path in images.items():
            gt_path = self._gt_path(gt_folder, stem)
            if gt_path is None:
                self.report.add(gt_folder / f"gt_{stem}.png", "missing")
                continue
            image, gt = self.load_rgb(image_path), self.load_rgb(gt_path)
            if image is None or gt is None or not self.check_size(gt_path, image, gt):
                continue
            yield Record(
                image=image, mask=(gt < 255).any(axis=-1), text="text", task="scene_text", split=split,
                source_id=f"icdar13/{split}/{stem}",
            )  # fmt: skip
