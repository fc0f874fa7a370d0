"""The corpus generator: family and photo splits, exact masks under the extended effects, hard negatives,
the corpus YAMLs, and a packed assets folder that reproduces the splits."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from data_builders.synthetic import SyntheticConfig, compose_scene, scene_rng
from data_builders.synthetic.config import TEXT_LAYOUTS
from data_builders.synthetic.font_catalog import (
    DEBIAN_FONT_PACKAGES,
    debian_font_files,
    family_split,
    font_catalog,
    split_group,
)
from data_builders.synthetic.fonts import load_font
from data_builders.synthetic.photos import PACKAGE_PHOTOS, photo_catalog, photo_split

CONFIGS = Path(__file__).parents[1] / "configs" / "data"
# Every extended effect at full strength, on a small image.
ALL_ON = SyntheticConfig(
    size=96, font_split="train", background_split="train", text_layouts=TEXT_LAYOUTS, p_no_text=0.0,
    p_occlusion=1.0, p_lighting=1.0, p_low_res=1.0, p_hard_negative=1.0, p_textured_fill=1.0,
    p_perspective=0.5, p_plate=0.5, p_outline=0.3, p_shadow=0.3, p_distractors=0.5,
)  # fmt: skip


def test_family_split_is_deterministic_pinned_and_keeps_clones_together():
    names = [
        "Noto Sans",
        "Noto Serif Display",
        "Open Sans Condensed",
        "Nimbus Sans",
        "TeX Gyre Heros",
        "FreeSans",
    ]
    assert [family_split(n) for n in names] == [family_split(n) for n in names]
    assert split_group("Noto Serif Display") == split_group("Open Sans") == split_group("Noto Sans")
    assert split_group("Nimbus Sans") == split_group("TeX Gyre Heros") == split_group("FreeSans")
    assert split_group("OCRACondensed") == split_group("OCR B") and split_group("Arimo") == split_group(
        "Liberation Sans"
    )
    # The legacy training fonts stay in train, the legacy held-out fonts in test.
    assert {family_split(n) for n in ("DejaVu Sans", "Roboto", "Source Sans Pro", "Lato", "Carlito")} == {
        "train"
    }
    assert {family_split(n) for n in ("STIXGeneral", "cmr10", "CMU Serif", "Latin Modern Roman")} == {"test"}
    counts = {
        s: sum(family_split(f"Fam{i} Sans") == s for i in range(2000)) for s in ("train", "select", "test")
    }
    assert 1300 < counts["train"] < 1500 and 220 < counts["select"] < 380 and 220 < counts["test"] < 380


def test_catalog_families_never_cross_splits_and_every_face_draws_the_alphabet():
    catalog = font_catalog()
    names = [f.name for f in catalog]
    assert len(names) == len(set(names))
    by_group: dict[str, set[str]] = {}
    for family in catalog:
        assert family.split == family_split(family.name) and family.faces
        by_group.setdefault(split_group(family.name), set()).add(family.split)
    assert all(len(splits) == 1 for splits in by_group.values())
    for family in catalog:
        for face in family.faces:
            font = load_font(face.path, 24)
            for ch in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
                assert font.getmask(ch).getbbox() is not None, (face.path, ch)
    _, missing = debian_font_files()
    if not missing:  # the full corpus: hundreds of families, every split well stocked
        counts = {s: sum(f.split == s for f in catalog) for s in ("train", "select", "test")}
        assert len(catalog) > 500 and min(counts.values()) > 50, counts
    assert len(DEBIAN_FONT_PACKAGES) > 100


def test_photo_splits_are_disjoint_by_source_and_dev_photos_are_held_out():
    catalog = photo_catalog()
    keys = [p.key for p in catalog]
    assert len(keys) == len(set(keys)) and len({p.path for p in catalog}) == len(keys)
    assert all(p.split == photo_split(p.key) for p in catalog)
    package_keys = {f"{module}:{Path(rel).stem}" for module, rel in PACKAGE_PHOTOS}
    assert {p.split for p in catalog if p.key in package_keys} == {"test"}
    from benchmarks.real_photos import NO_TEXT

    assert {f"{m}:{Path(r).stem}" for m, r in NO_TEXT} <= package_keys
    assert not any(k.split(":", 1)[1] in ("astronaut", "rocket", "coins", "motorcycle_left") for k in keys)


@pytest.mark.parametrize("layout", TEXT_LAYOUTS)
def test_masks_stay_exact_under_every_layout_and_effect(layout):
    cfg = replace(ALL_ON, text_layouts=(layout,))
    seen_text = False
    for index in range(5):
        scene = compose_scene(cfg, scene_rng(11, index))
        mask = scene.mask
        # Outside the strokes the clean image is the background (occluders and negatives included);
        # every stroke pixel differs from what lies behind it, before lighting, blur, noise, JPEG.
        assert np.array_equal(scene.clean[~mask], scene.background[~mask])
        assert (scene.clean[mask] != scene.background[mask]).any(axis=-1).all()
        union = np.zeros_like(mask)
        for inst, inst_mask in zip(scene.instances, scene.instance_masks, strict=True):
            assert not (union & inst_mask).any()
            union |= inst_mask
            ys, xs = np.nonzero(inst_mask)
            assert (
                inst.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) and inst.area == inst_mask.sum()
            )
        assert np.array_equal(union, mask) and not (scene.effect_mask & mask).any()
        assert {"lighting", "low_res"} <= set(scene.post_effects)
        seen_text |= bool(scene.instances)
    assert seen_text


def test_occluded_pixels_are_background():
    cfg = replace(ALL_ON, p_hard_negative=0.0, p_lighting=0.0, p_low_res=0.0, text_layouts=("scatter",))
    occluded = 0
    for index in range(8):
        scene = compose_scene(cfg, scene_rng(12, index))
        plain = compose_scene(replace(cfg, p_occlusion=0.0), scene_rng(12, index))
        if "occlusion" not in scene.post_effects:
            continue
        occluded += 1
        # The same draws up to the occluder: the occluded scene's strokes are a subset of the plain one's.
        assert not (scene.mask & ~plain.mask).any() and scene.mask.sum() < plain.mask.sum()
    assert occluded >= 4


def test_hard_negative_and_no_text_images_have_empty_masks():
    cfg = replace(ALL_ON, p_no_text=1.0)
    for index in range(6):
        scene = compose_scene(cfg, scene_rng(13, index))
        assert not scene.mask.any() and not scene.instances and not scene.effect_mask.any()
        assert any(e.startswith("negative:") for e in scene.post_effects)
        assert np.array_equal(scene.clean, scene.background)


def test_legacy_configs_keep_the_legacy_generator():
    for name in ("synthetic.yaml", "synthetic_eval.yaml"):
        assert not SyntheticConfig.from_yaml(CONFIGS / name).extended
    assert not SyntheticConfig().extended and SyntheticConfig(p_occlusion=0.1).extended


def test_corpus_yamls_parse_and_build(tmp_path):
    from data_builders.synthetic.build import build

    configs = {
        s: SyntheticConfig.from_yaml(CONFIGS / f"corpus_{s}.yaml") for s in ("train", "select", "test")
    }
    assert {s: (c.font_split, c.background_split) for s, c in configs.items()} == {s: (s, s) for s in configs}
    assert set(configs["test"].text_layouts) - set(configs["train"].text_layouts)  # a held-out setting
    assert configs["select"].text_layouts == configs["train"].text_layouts
    data = build(replace(configs["test"], size=64), n=3, out=tmp_path / "test", seed=3, workers=1)
    assert len(data) == 3 and data[0]["image"].size == (64, 64)
    for split in ("train", "select"):
        scene = compose_scene(replace(configs[split], size=64), scene_rng(4, 0))
        assert scene.image.shape == (64, 64, 3)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("font_split", "val", "font_split 'val'"), ("text_layouts", ("spiral",), "text_layouts"),
     ("perspective_range", (0.3, 0.1), "perspective_range"), ("p_occlusion", 2.0, "p_occlusion 2.0")],
)  # fmt: skip
def test_config_rejects_bad_corpus_values(field, value, message):
    with pytest.raises(ValueError, match=message):
        SyntheticConfig(**{field: value})


def test_packed_assets_folder_keeps_families_photos_and_splits(tmp_path):
    from data_builders.synthetic.font_catalog import font_catalog as catalog
    from data_builders.synthetic.pack_assets import pack

    manifest = pack(tmp_path / "assets", max_mb=1.2, splits=("train",))
    assert manifest["families"] and manifest["photos"] and manifest["megabytes"] < 1.6
    packed = {f.name: f for f in catalog(str(tmp_path / "assets"))}
    full = {f.name: f for f in catalog()}
    for name in manifest["families"]:
        assert packed[name].split == full[name].split == "train"
    photos = {p.key: p for p in photo_catalog(str(tmp_path / "assets"))}
    assert all(photos[k].split == "train" for k in manifest["photos"])
    cfg = SyntheticConfig(
        size=64, font_split="train", background_split="train", assets_dir=str(tmp_path / "assets")
    )
    families = {f.name for f in packed.values()}
    for index in range(4):
        scene = compose_scene(cfg, scene_rng(5, index))
        assert all(i.font_family in families for i in scene.instances)


def test_missing_debian_packages_are_named_and_the_rest_is_used():
    found, missing = debian_font_files(("fonts-not-a-package", DEBIAN_FONT_PACKAGES[0]))
    assert missing == ["fonts-not-a-package"] and set(found) <= {DEBIAN_FONT_PACKAGES[0]}


def test_cli_takes_an_assets_dir(tmp_path, capsys):
    from data_builders.synthetic.__main__ import main
    from data_builders.synthetic.pack_assets import pack

    pack(tmp_path / "assets", max_mb=0.8, splits=("train",))
    config = tmp_path / "corpus.yaml"
    config.write_text((CONFIGS / "corpus_train.yaml").read_text())
    argv = [
        "--n",
        "2",
        "--out",
        str(tmp_path / "out"),
        "--workers",
        "1",
        "--size",
        "48",
        "--config",
        str(config),
    ]
    main([*argv, "--assets-dir", str(tmp_path / "assets")])
    assert "wrote 2 arrow samples" in capsys.readouterr().out


def test_low_contrast_words_are_named_by_how_they_look_or_not_at_all():
    """A low-contrast word is its surface's colour shifted lighter or darker: its name is the one its
    strokes have in the finished image when both namings agree (``colours.seen_name``), else ""."""
    from data_builders.synthetic.colours import seen_name

    cfg = replace(ALL_ON, p_low_contrast=1.0, p_plate=0.0, text_layouts=("scatter",))
    names = []
    for index in range(8):
        scene = compose_scene(cfg, scene_rng(14, index))
        for inst, mask in zip(scene.instances, scene.instance_masks, strict=True):
            assert inst.low_contrast and inst.colour == seen_name(scene.image[mask])
            names.append(inst.colour)
    assert "" in names and set(names) - {""}, names  # some in doubt, some named


def test_seen_name_needs_both_namings_to_agree():
    from data_builders.synthetic.colours import PALETTE, seen_name

    rng = np.random.default_rng(0)
    red = np.clip(np.array(PALETTE["red"]) + rng.integers(-10, 10, (50, 3)), 0, 255)
    assert seen_name(red) == "red"
    blue = np.tile(PALETTE["blue"], (50, 1))
    assert seen_name(np.concatenate([red, blue])) == ""  # no majority of one name
    assert seen_name(np.tile((76, 79, 104), (20, 1))) == ""  # slate: blue by hue, grey by the palette
    assert seen_name(np.zeros((0, 3))) == ""
