"""Turning scenes into stored samples: Arrow rows, or files in the Total-Text / TextSeg layouts.

Each writer function runs inside a worker process on one index, so image encoding is parallel too.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from data_builders.synthetic.config import SyntheticConfig
from data_builders.synthetic.referring import rephrase, sample_expressions
from data_builders.synthetic.scene import SyntheticScene, compose_scene, scene_rng

# TextSeg semantic_label values: 0 background, 100 word, 200 word effect (REFERENCE.md section 3).
TEXTSEG_WORD, TEXTSEG_EFFECT = 100, 200


def sample_split(seed: int, index: int, test_fraction: float) -> str:
    """ "test" or "train" from its own random stream, so splits do not depend on scene content."""
    return "test" if np.random.default_rng([seed, index, 1]).random() < test_fraction else "train"


def sample_id(index: int) -> str:
    return f"syn{index:07d}"


def encode_rle(mask: np.ndarray) -> str:
    """COCO RLE (pycocotools) of an HxW bool mask as a JSON string {"size": [h, w], "counts": str}."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return json.dumps({"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")})


def decode_rle(text: str) -> np.ndarray:
    """Inverse of encode_rle: HxW bool."""
    from pycocotools import mask as mask_utils

    rle = json.loads(text)
    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")}).astype(bool)


def _png(array: np.ndarray, mode: str) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG")
    return buffer.getvalue()


def arrow_row(
    scene: SyntheticScene, *, index: int, seed: int, split: str, phrasings: str = "canonical"
) -> dict:
    """One row of the synthetic Arrow dataset (column meanings in docs/data.md); referring sentences
    from phrasing pool ``phrasings`` (its own random stream: the expressions picked do not change)."""
    expressions = sample_expressions(scene.instances, np.random.default_rng([seed, index, 2]))
    expressions = rephrase(expressions, split=phrasings, rng=np.random.default_rng([seed, index, 3]))
    return {
        "image": {"bytes": _png(scene.image, "RGB"), "path": None},
        "mask": {"bytes": _png(scene.mask.astype(np.uint8) * 255, "L"), "path": None},
        "instances": [inst.to_dict() for inst in scene.instances],
        "instance_masks": [encode_rle(m) for m in scene.instance_masks],
        "referring": [e.to_dict() for e in expressions],
        "background_kind": scene.background_kind,
        "post_effects": list(scene.post_effects),
        "source_id": f"synthetic/{split}/{sample_id(index)}",
        "split": split,
    }


def arrow_features():
    import datasets

    instance = {
        "text": datasets.Value("string"),
        "box": datasets.List(datasets.Value("int32"), length=4),
        "colour": datasets.Value("string"),
        "size": datasets.Value("string"),
        "position": datasets.Value("string"),
        "orientation": datasets.Value("string"),
        "angle": datasets.Value("float32"),
        "curved": datasets.Value("bool"),
        "perspective": datasets.Value("bool"),
        "font": datasets.Value("string"),
        "font_family": datasets.Value("string"),
        "plate": datasets.Value("string"),
        "outline": datasets.Value("bool"),
        "shadow": datasets.Value("bool"),
        "low_contrast": datasets.Value("bool"),
        "area": datasets.Value("int32"),
    }
    referring = {
        "sentence": datasets.Value("string"),
        "targets": datasets.List(datasets.Value("int32")),
        "kind": datasets.Value("string"),
    }
    return datasets.Features(
        {
            "image": datasets.Image(mode="RGB"),
            "mask": datasets.Image(mode="L"),
            "instances": datasets.List(instance),
            "instance_masks": datasets.List(datasets.Value("string")),
            "referring": datasets.List(referring),
            "background_kind": datasets.Value("string"),
            "post_effects": datasets.List(datasets.Value("string")),
            "source_id": datasets.Value("string"),
            "split": datasets.Value("string"),
        }
    )


def _save(path: Path, array: np.ndarray, mode: str, fmt: str) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs = {"quality": 95} if fmt == "JPEG" else {}
    Image.fromarray(array, mode).save(path, format=fmt, **kwargs)


def write_totaltext(scene: SyntheticScene, *, out: Path, index: int, split: str) -> str:
    """Images/{Train,Test}/<id>.jpg and groundtruth_pixel/{Train,Test}/<id>.jpg (0/255 JPEG, as published)."""
    folder = "Train" if split == "train" else "Test"
    name = sample_id(index)
    _save(out / "Images" / folder / f"{name}.jpg", scene.image, "RGB", "JPEG")
    _save(out / "groundtruth_pixel" / folder / f"{name}.jpg", scene.mask.astype(np.uint8) * 255, "L", "JPEG")
    return name


def write_textseg(scene: SyntheticScene, *, out: Path, index: int, split: str) -> str:
    """image/<id>.jpg and semantic_label/<id>_maskfg.png with 100 = word, 200 = word effect."""
    name = sample_id(index)
    label = np.zeros(scene.mask.shape, np.uint8)
    label[scene.effect_mask] = TEXTSEG_EFFECT
    label[scene.mask] = TEXTSEG_WORD
    _save(out / "image" / f"{name}.jpg", scene.image, "RGB", "JPEG")
    _save(out / "semantic_label" / f"{name}_maskfg.png", label, "L", "PNG")
    return name


def render_index(cfg: SyntheticConfig, seed: int, index: int, layout: str, out: Path | None):
    """Worker entry point: draw sample `index` and either return its Arrow row or write its files."""
    scene = compose_scene(cfg, scene_rng(seed, index))
    split = sample_split(seed, index, cfg.test_fraction)
    if layout == "arrow":
        return arrow_row(scene, index=index, seed=seed, split=split, phrasings=cfg.phrasings)
    writer = write_totaltext if layout == "totaltext" else write_textseg
    return {"id": writer(scene, out=out, index=index, split=split), "split": split}
