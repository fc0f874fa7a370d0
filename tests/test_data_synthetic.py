"""Synthetic scene text: masks match drawn pixels, determinism, layouts readable by the real readers."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from data_builders.conversations import ConversationConfig
from data_builders.readers import build_reader
from data_builders.synthetic import SyntheticConfig, compose_scene, load_synthetic, scene_rng
from data_builders.synthetic.build import build
from data_builders.synthetic.colours import PALETTE
from data_builders.synthetic.fonts import font_set
from data_builders.synthetic.render import render_text
from data_builders.synthetic.writers import decode_rle

CONFIGS = Path(__file__).parents[1] / "configs" / "data"
SMALL = SyntheticConfig(size=96)


@pytest.mark.parametrize("index", range(12))
def test_mask_pixels_differ_from_background_and_others_equal_it(index):
    scene = compose_scene(SMALL, scene_rng(3, index))
    mask = scene.mask
    assert np.array_equal(scene.clean[~mask], scene.background[~mask])
    assert (scene.clean[mask] != scene.background[mask]).any(axis=-1).all()
    union = np.zeros_like(mask)
    for inst, inst_mask in zip(scene.instances, scene.instance_masks, strict=True):
        assert not (union & inst_mask).any()  # instances never overlap
        union |= inst_mask
        ys, xs = np.nonzero(inst_mask)
        assert inst.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) and inst.area == inst_mask.sum()
    assert np.array_equal(union, mask) and not (scene.effect_mask & mask).any()
    assert scene.image.shape == (96, 96, 3) and scene.image.dtype == np.uint8


def test_named_colour_is_the_drawn_colour():
    checked = 0
    for index in range(12):
        scene = compose_scene(SMALL, scene_rng(4, index))
        for inst, inst_mask in zip(scene.instances, scene.instance_masks, strict=True):
            if inst.low_contrast:
                continue
            drawn = scene.clean[inst_mask].astype(float).mean(axis=0)
            assert np.abs(drawn - PALETTE[inst.colour]).max() <= 13, (inst.colour, drawn)  # jitter is +-12
            checked += 1
    assert checked >= 5


def test_same_seed_same_scene_other_seed_other_scene():
    a = compose_scene(SMALL, scene_rng(7, 4))
    b = compose_scene(SMALL, scene_rng(7, 4))
    c = compose_scene(SMALL, scene_rng(8, 4))
    assert np.array_equal(a.image, b.image) and a.instances == b.instances
    assert not np.array_equal(a.image, c.image)


def test_some_images_have_no_text_and_attributes_vary():
    scenes = [compose_scene(SMALL, scene_rng(1, i)) for i in range(40)]
    assert any(not s.instances for s in scenes)
    instances = [inst for s in scenes for inst in s.instances]
    assert len({i.colour for i in instances}) >= 5 and len({i.size for i in instances}) >= 3
    assert any(i.curved for i in instances) and any(i.orientation == "rotated" for i in instances)


def test_train_and_eval_fonts_are_disjoint_and_all_draw_letters():
    train, held_out = font_set("train"), font_set("eval")
    assert not {f.path for f in train} & {f.path for f in held_out}
    assert all("DejaVu" not in f.path for f in held_out)
    for font in (*train, *held_out):
        layer = render_text("Ag", font_path=font.path, font_size=24, angle=0, bend=0, perspective=0, rng=None)
        assert layer.alpha.max() > 0.9, font.path


@pytest.mark.slow
def test_parallel_build_equals_serial_build(tmp_path):
    cfg = SyntheticConfig(size=64)
    one = build(cfg, n=6, out=tmp_path / "one", seed=5, workers=1)
    two = build(cfg, n=6, out=tmp_path / "two", seed=5, workers=2)
    assert len(one) == len(two) == 6
    for a, b in zip(one, two, strict=True):
        assert np.array_equal(np.asarray(a["image"]), np.asarray(b["image"]))
        assert a["instances"] == b["instances"] and a["referring"] == b["referring"]
    reloaded = load_synthetic(tmp_path / "one")
    row = reloaded[0]
    assert row["image"].mode == "RGB" and row["mask"].mode == "L"
    mask = np.asarray(row["mask"]) > 127
    instance_union = np.zeros_like(mask)
    for text in row["instance_masks"]:
        instance_union |= decode_rle(text)
    assert np.array_equal(mask, instance_union)
    assert set(np.unique(np.asarray(row["mask"]))) <= {0, 255}


def test_totaltext_and_textseg_layouts_read_back_with_the_real_readers(tmp_path):
    cfg = SyntheticConfig(size=64, p_no_text=0.0, test_fraction=0.5)
    build(cfg, n=6, out=tmp_path / "tt", seed=2, layout="totaltext", workers=1)
    build(cfg, n=6, out=tmp_path / "ts", seed=2, layout="textseg", workers=1)
    scenes = {f"syn{i:07d}": compose_scene(cfg, scene_rng(2, i)) for i in range(6)}
    tt = build_reader("totaltext", root=tmp_path / "tt")
    ts = build_reader("textseg", root=tmp_path / "ts")
    records = [*tt.records("train"), *tt.records("test")]
    assert len(records) == 6 and tt.report.problems == []
    for rec in records:
        truth = scenes[rec.source_id.rsplit("/", 1)[1]].mask
        iou = (rec.mask & truth).sum() / max((rec.mask | truth).sum(), 1)
        assert iou > 0.95  # the published format stores GT as JPEG
    records = [*ts.records("train"), *ts.records("val"), *ts.records("test")]
    assert len(records) == 6 and ts.report.problems == []
    for rec in records:
        assert np.array_equal(rec.mask, scenes[rec.source_id.rsplit("/", 1)[1]].mask)  # PNG: exact


def test_every_data_yaml_parses_into_its_config():
    loaders = {"synthetic": SyntheticConfig, "conversations": ConversationConfig}
    paths = sorted(CONFIGS.glob("*.yaml"))
    assert paths
    for path in paths:
        assert isinstance(yaml.safe_load(path.read_text()), dict)
        kind = "conversations" if path.stem.startswith("conversations") else "synthetic"
        cfg = loaders[kind].from_yaml(path)
        assert cfg is not None
    assert SyntheticConfig.from_yaml(CONFIGS / "synthetic_eval.yaml").fonts == "eval"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("size", 16, "size 16 < 32"), ("fonts", "all", "fonts 'all'"), ("p_blur", 1.5, "p_blur 1.5"), ("max_instances", 0, "max_instances 0")],
)  # fmt: skip
def test_config_rejects_bad_values_naming_them(field, value, message):
    with pytest.raises(ValueError, match=message):
        SyntheticConfig(**{field: value})


def test_cli_writes_a_loadable_dataset(tmp_path, capsys):
    from data_builders.synthetic.__main__ import main

    main(
        [
            "--n",
            "3",
            "--out",
            str(tmp_path / "cli"),
            "--seed",
            "4",
            "--workers",
            "1",
            "--size",
            "48",
            "--fonts",
            "eval",
        ]
    )
    assert "wrote 3 arrow samples" in capsys.readouterr().out
    data = load_synthetic(tmp_path / "cli")
    assert len(data) == 3 and data[0]["image"].size == (48, 48)
    fonts = {f.family for f in font_set("eval")}
    assert all(i["font_family"] in fonts for row in data for i in row["instances"])


def test_distractor_shapes_stay_background():
    cfg = SyntheticConfig(size=96, p_distractors=1.0, p_no_text=0.0)
    plain = SyntheticConfig(size=96, p_no_text=0.0)
    for index in range(4):
        scene = compose_scene(cfg, scene_rng(9, index))
        assert np.array_equal(scene.clean[~scene.mask], scene.background[~scene.mask])
        assert (scene.clean[scene.mask] != scene.background[scene.mask]).any(axis=-1).all()
    # The plain config draws nothing extra, so its scenes differ from the distractor ones.
    assert not np.array_equal(
        compose_scene(plain, scene_rng(9, 0)).image, compose_scene(cfg, scene_rng(9, 0)).image
    )
