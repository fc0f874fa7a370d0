"""A synthetic Arrow corpus written in the REFER and gRefCOCO layouts, for referring evaluation.

    python -m data_builders.synthetic.refer_export --data data/corpus_test --out DIR [--split val]

writes, for the project's own readers (``--reader refcoco`` / ``--reader grefcoco``, root ``DIR``):

- ``images/train2014/<id>.png`` — each image once, lossless;
- ``refcoco/refs(unc).p`` + ``refcoco/instances.json`` — the expressions with exactly one target
  (RefCOCO has one annotation per ref), all in split ``--split``;
- ``grefcoco/grefs(unc).json`` + ``grefcoco/instances.json`` — every expression, multi-target ones
  with several ``ann_id``s and no-target ones with ``[-1]`` (gRefCOCO's convention).

Annotations are the words' stroke masks (COCO compressed RLE), so a referring score here is a
text-segmentation score, as the scene-text figures are. ``refs(unc).p`` is a pickle of builtin
containers only, the form the published REFER files have (the reader refuses anything else).
"""

from __future__ import annotations

import argparse
import json
import pickle
from pathlib import Path

from tqdm.auto import tqdm

from data_builders.synthetic import load_synthetic

CATEGORY = {"id": 1, "name": "text", "supercategory": "text"}


def _annotation(ann_id: int, image_id: int, rle_json: str, box: list[int]) -> dict:
    rle = json.loads(rle_json)
    x0, y0, x1, y1 = (int(v) for v in box)
    return {
        "id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0,
        "segmentation": {"size": rle["size"], "counts": rle["counts"]},
        "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0),
    }  # fmt: skip


def export(data: str | Path, out: str | Path, *, split: str = "val") -> dict[str, int]:
    """Write the layouts under ``out``; returns counts (images, annotations, refs, grefs)."""
    rows = load_synthetic(data)
    out = Path(out)
    image_dir = out / "images" / "train2014"
    image_dir.mkdir(parents=True, exist_ok=True)
    images, annotations, refs, grefs = [], [], [], []
    for image_id, row in enumerate(tqdm(rows, desc="refer export"), start=1):
        name = row["source_id"].replace("/", "_") + ".png"
        image = row["image"].convert("RGB")
        image.save(image_dir / name)
        images.append({"id": image_id, "file_name": name, "height": image.height, "width": image.width})
        first_ann = len(annotations) + 1
        for k, (instance, rle) in enumerate(zip(row["instances"], row["instance_masks"], strict=True)):
            annotations.append(_annotation(first_ann + k, image_id, rle, instance["box"]))
        for expr in row["referring"]:
            ann_ids = [first_ann + i for i in expr["targets"]]
            ref_id = len(grefs) + 1
            sentence = {"sent": expr["sentence"], "raw": expr["sentence"], "sent_id": ref_id,
                        "tokens": expr["sentence"].split()}  # fmt: skip
            common = {"ref_id": ref_id, "image_id": image_id, "split": split, "file_name": name,
                      "category_id": 1, "sentences": [sentence], "kind": expr["kind"]}  # fmt: skip
            grefs.append({**common, "ann_id": ann_ids or [-1], "no_target": not ann_ids})
            if len(ann_ids) == 1:
                refs.append({**common, "ann_id": ann_ids[0]})
    instances = {"images": images, "annotations": annotations, "categories": [CATEGORY]}
    for folder, name, payload in (("refcoco", "refs(unc).p", refs), ("grefcoco", "grefs(unc).json", grefs)):
        (out / folder).mkdir(parents=True, exist_ok=True)
        (out / folder / "instances.json").write_text(json.dumps(instances))
        if name.endswith(".p"):
            (out / folder / name).write_bytes(pickle.dumps(payload, protocol=2))
        else:
            (out / folder / name).write_text(json.dumps(payload))
    return {"images": len(images), "annotations": len(annotations), "refs": len(refs), "grefs": len(grefs)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m data_builders.synthetic.refer_export", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--data", required=True, help="synthetic Arrow folder (python -m data_builders.synthetic)"
    )
    parser.add_argument("--out", required=True, help="root of the REFER / gRefCOCO layouts")
    parser.add_argument("--split", default="val", help="split name every ref gets (default: val)")
    args = parser.parse_args(argv)
    print(json.dumps(export(args.data, args.out, split=args.split)))


if __name__ == "__main__":
    main()
