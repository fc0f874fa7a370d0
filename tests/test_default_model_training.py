"""Training stages of the default model: vision pretraining, full MLLM training, configs, packaging."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from text4seg.app.cli import main as cli_main
from text4seg.app.default_package import DEFAULT_INFERENCE, copy_assets, packaged_settings, write_manifest
from text4seg.core.inference import load_inference_settings
from text4seg.mllm.full_train import (
    FullTrainConfig,
    answer_text_grid,
    calibrate_projector,
    task_batches,
    train_full,
)
from text4seg.mllm.tiny import TinyMllmConfig, build_tiny_llava
from text4seg.mllm.vision_pretrain import VisionPretrainConfig, patch_logits_to_grid, pretrain

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]


def _bar_dataset(path: Path, *, n: int, size: int = 64, seed: int = 0):
    """Bright horizontal bars ("words") on dark noise, with their masks: a signal a tiny tower can learn."""
    import datasets
    from PIL import Image

    rng = np.random.default_rng(seed)
    images, masks = [], []
    for _ in range(n):
        image = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
        mask = np.zeros((size, size), bool)
        for _ in range(rng.integers(0, 3)):
            y, x = rng.integers(0, size - 12), rng.integers(0, size - 30)
            mask[y : y + 10, x : x + 28] = True
        image[mask] = 230
        images.append(Image.fromarray(image))
        masks.append(Image.fromarray(mask.astype(np.uint8) * 255))
    data = datasets.Dataset.from_dict({"image": images, "mask": masks, "split": ["train"] * n})
    data = data.cast_column("image", datasets.Image()).cast_column("mask", datasets.Image())
    data.save_to_disk(str(path))
    return path


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    return build_tiny_llava(tmp_path_factory.mktemp("base"), config=TinyMllmConfig())


def test_patch_logits_to_grid_places_subcells():
    # 2×2 patches, 2×2 cells each: patch p's sub-cell (a, b) goes to grid cell (p//2·2 + a, p%2·2 + b).
    logits = torch.arange(16.0).reshape(1, 4, 4)
    grid = patch_logits_to_grid(logits, patches_per_side=2, cells_per_patch=2)[0]
    assert grid[0, 0] == 0 and grid[0, 1] == 1 and grid[1, 0] == 2 and grid[1, 1] == 3
    assert grid[0, 2] == 4 and grid[2, 0] == 8 and grid[3, 3] == 15


def test_vision_pretraining_lowers_loss_and_learns_cells(tiny_base, tmp_path):
    data = _bar_dataset(tmp_path / "bars", n=96)
    cfg = VisionPretrainConfig(
        model_path=str(tiny_base), data=str(data), output_dir=str(tmp_path / "vision"), grid=4,
        steps=60, batch_size=16, lr=3e-3, warmup_steps=5, val_images=16, log_every=10, save_every=60,
    )  # fmt: skip
    result = pretrain(cfg)
    assert result.step == 60
    assert result.last_loss < 0.6 * result.first_loss
    assert result.val_cell_iou > 0.5
    assert (tmp_path / "vision" / "model" / "config.json").is_file()
    # Resuming a finished run does no more steps and reports the same held-out score.
    again = pretrain(cfg)
    assert again.step == 60 and again.val_cell_iou == pytest.approx(result.val_cell_iou)
    # The checkpoint carries the settings it was trained with (4×4, area rule), and
    # `text4seg segment --model DIR` answers with them, no flag needed.
    settings = load_inference_settings(tmp_path / "vision" / "model")
    assert settings.grid == (4, 4) and settings.grid_rule == "area" and settings.grid_threshold == 0.1
    image = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(image)
    out = tmp_path / "segmented"
    assert cli_main(["segment", str(image), "--model", str(tmp_path / "vision" / "model"), "--no-refine",
                     "--out", str(out)]) == 0  # fmt: skip
    record = json.loads((out / "photo.json").read_text())
    assert not record["parse_failed"] and len(record["grid"].strip().split("\n")) == 4


def test_config_invariants_name_the_numbers():
    with pytest.raises(ValueError, match="threshold 1.5"):
        VisionPretrainConfig(model_path="m", data="d", output_dir="o", threshold=1.5)
    with pytest.raises(ValueError, match="unknown \\['semantic'\\]"):
        FullTrainConfig(
            model_path="m", head_path="h", data="d", output_dir="o", task_weights={"semantic": 1.0}
        )


def test_every_default_yaml_parses():
    from data_builders.conversations import ConversationConfig
    from stsam_refiner.config import RefinerConfig
    from stsam_refiner.train import TrainConfig as RefinerTrainConfig

    folder = REPO / "configs" / "default"
    assert VisionPretrainConfig.from_yaml(folder / "vision_pretrain.yaml").grid == DEFAULT_INFERENCE.grid[0]
    assert FullTrainConfig.from_yaml(folder / "mllm_train.yaml").steps > 0
    assert TinyMllmConfig.from_yaml(folder / "mllm.yaml").image_tokens == 65
    conv = ConversationConfig.from_yaml(folder / "conversations.yaml")
    assert conv.grid_sizes == (DEFAULT_INFERENCE.grid[0],) and conv.grid_rule == DEFAULT_INFERENCE.grid_rule
    refiner = RefinerTrainConfig.from_yaml(folder / "refiner_train.yaml")
    assert refiner.coarse.grid == DEFAULT_INFERENCE.grid[0] and refiner.description_column is None
    for name in ("mllm_train.yaml", "mllm_continue.yaml"):
        assert set(yaml.safe_load((folder / name).read_text())) <= set(FullTrainConfig.__dataclass_fields__)
    # The continuation resumes the stage-2 run, so its step count is a total beyond stage 2's.
    continued = FullTrainConfig.from_yaml(folder / "mllm_continue.yaml")
    assert continued.steps > FullTrainConfig.from_yaml(folder / "mllm_train.yaml").steps
    # The hint stage: the continued model, grown, on the same rows asked with the hint; not re-calibrated.
    hint = FullTrainConfig.from_yaml(folder / "mllm_hint.yaml")
    assert not hint.calibrate and hint.backbone_lr == 0
    hint_rows = ConversationConfig.from_yaml(folder / "conversations_hint.yaml")
    assert hint_rows.reading == "hint" and hint_rows.attribute_hint and not hint_rows.describe
    same_rows = {"reading": conv.reading, "attribute_hint": False, "describe": conv.describe}
    assert hint_rows.with_overrides(same_rows) == conv
    refiner_more = RefinerTrainConfig.from_yaml(folder / "refiner_continue.yaml")
    assert refiner_more.coarse == refiner.coarse and refiner_more.description_column is None
    # The text-backbone variant changes the refiner (and where it is written), nothing else.
    on_backbone = RefinerTrainConfig.from_yaml(folder / "refiner_train_backbone.yaml")
    assert RefinerConfig.from_yaml(REPO / on_backbone.model_config).uses_text_backbone
    assert on_backbone.output_dir != refiner.output_dir
    same = {"model_config": refiner.model_config, "output_dir": refiner.output_dir}
    assert on_backbone.with_overrides(same) == refiner


def test_the_grid16_experiment_changes_only_the_grid_of_the_default_rows():
    from data_builders.conversations import ConversationConfig

    folder = REPO / "configs" / "experiments"
    rows = ConversationConfig.from_yaml(folder / "grid16_conversations.yaml")
    assert rows.grid_sizes == (16,) and rows.area_threshold == 0.1
    default = ConversationConfig.from_yaml(REPO / "configs" / "default" / "conversations.yaml")
    assert (
        rows.with_overrides({"grid_sizes": default.grid_sizes, "area_threshold": default.area_threshold})
        == default
    )
    run = FullTrainConfig.from_yaml(folder / "grid16_mllm.yaml")
    assert not run.calibrate and run.backbone_lr == 0 and run.steps > 0


def test_task_batches_keep_one_task_per_batch():
    tasks = ["scene_text"] * 30 + ["referring"] * 20 + ["describe"] * 10
    weights = {"scene_text": 0.5, "referring": 0.5, "describe": 0.0}
    batches = task_batches(tasks, weights, batch_size=4, seed=0)
    seen = {}
    for _ in range(200):
        batch = next(batches)
        kind = tasks[batch[0]]
        assert all(tasks[i] == kind for i in batch)
        seen[kind] = seen.get(kind, 0) + 1
    assert "describe" not in seen and 70 < seen["scene_text"] < 130


def _conversations(tmp_path: Path, synthetic: Path) -> Path:
    import datasets

    from data_builders.conversations import (
        ConversationConfig,
        describe_sample,
        save_conversations,
        segmentation_sample,
    )
    from text4seg.core.templates import get_template_set

    rows = datasets.load_from_disk(str(synthetic))
    templates, rng = get_template_set("default"), np.random.default_rng(0)
    cfg = ConversationConfig(grid_sizes=(4,), grid_rule="area", area_threshold=0.1)
    samples = []
    for row in rows:
        image = np.asarray(row["image"].convert("RGB"))
        mask = np.asarray(row["mask"]) > 127
        samples.append(
            segmentation_sample(
                image,
                mask.astype(np.int64),
                ["text"],
                task="scene_text",
                target="text",
                source_id="x",
                cfg=cfg,
                templates=templates,
                rng=rng,
            )
        )
        samples.append(describe_sample(image, [], source_id="x", templates=templates, rng=rng))
    save_conversations(samples, tmp_path / "conv")
    return tmp_path / "conv"


def test_full_training_runs_saves_and_resumes(tiny_base, tmp_path):
    data = _bar_dataset(tmp_path / "bars", n=24)
    vision = VisionPretrainConfig(
        model_path=str(tiny_base), data=str(data), output_dir=str(tmp_path / "vision"), grid=4,
        steps=2, batch_size=4, val_images=4, log_every=1, save_every=2,
    )  # fmt: skip
    pretrain(vision)
    conv = _conversations(tmp_path, data)
    cfg = FullTrainConfig(
        model_path=str(tmp_path / "vision" / "model"), head_path=str(tmp_path / "vision" / "patch_head.safetensors"),
        data=str(conv), output_dir=str(tmp_path / "mllm"), steps=4, batch_size=2, log_every=2, save_every=2,
        task_weights={"scene_text": 0.7, "describe": 0.3},
    )  # fmt: skip
    record = train_full(cfg)
    assert record["step"] == 4 and np.isfinite(record["lm_loss"]) and record["lm_loss"] > 0
    settings = load_inference_settings(tmp_path / "mllm" / "model")  # the rows' grid and rule
    assert (settings.grid, settings.grid_rule, settings.grid_threshold) == ((4, 4), "area", 0.1)
    calibration = (tmp_path / "mllm" / "calibration.json").read_text()
    assert "text_norm" in calibration
    resumed = train_full(replace(cfg, steps=6))
    assert resumed["step"] == 6
    logged = [
        yaml.safe_load(line)["step"] for line in (tmp_path / "mllm" / "log.jsonl").read_text().splitlines()
    ]
    assert logged == [2, 4, 6]
    # The own-vs-shuffled image loss probe runs on the trained checkpoint and its chat rows.
    import datasets
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from text4seg.app.default_eval import teacher_forced_gap

    model = AutoModelForImageTextToText.from_pretrained(tmp_path / "mllm" / "model")
    processor = AutoProcessor.from_pretrained(tmp_path / "mllm" / "model")
    gap = teacher_forced_gap(model, processor, datasets.load_from_disk(str(conv)), limit=6, batch_size=4)
    assert gap["n_rows"] == 6
    losses = gap["answer_loss"]
    assert np.isfinite(losses["own_image"]) and losses["own_image"] > 0
    assert losses["own_image"] != losses["shuffled_image"]  # the image reaches the answer's loss at all


def test_the_rows_decide_the_grid_the_checkpoint_answers_on():
    from text4seg.core.inference import InferenceSettings
    from text4seg.mllm.full_train import rows_grid

    config = {"grid_sizes": [16], "grid_rule": "area", "area_threshold": 0.1}
    assert rows_grid({(16, 16)}, config, InferenceSettings(grid=(8, 8))) == {
        "grid": (16, 16), "grid_rule": "area", "grid_threshold": 0.1,
    }  # fmt: skip
    several = {(8, 8), (16, 16)}
    assert rows_grid(several, {"grid_rule": "nearest"}, InferenceSettings(grid=(16, 16))) == {
        "grid_rule": "nearest"
    }
    with pytest.raises(
        ValueError, match=r"teach grids \[\(8, 8\), \(16, 16\)\]; the checkpoint answers on \(24, 24\)"
    ):
        rows_grid(several, {}, InferenceSettings(grid=(24, 24)))
    assert rows_grid(set(), {}, InferenceSettings()) == {}  # describe rows only


def test_answer_text_grid_reads_the_answer():
    row = {
        "task": "scene_text", "grid_h": 2, "grid_w": 3,
        "messages": [{"role": "user", "content": "<image>\nq"},
                     {"role": "assistant", "content": "ok\n<seg>others *1| text *2\n text *1| others *2\n</seg>"}],
    }  # fmt: skip
    np.testing.assert_array_equal(answer_text_grid(row), [[0, 1, 1], [1, 0, 0]])
    assert answer_text_grid({**row, "task": "describe", "grid_h": 0}) is None


def test_calibrate_projector_matches_text_embedding_scale(tiny_base):
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(tiny_base)
    pixels = torch.randn(2, 3, 64, 64)
    calibrate_projector(model, pixels)
    with torch.no_grad():
        features = model.model.vision_tower(pixel_values=pixels, output_hidden_states=True).hidden_states[-1]
        image_norm = model.model.multi_modal_projector(features).norm(dim=-1).mean()
    text_norm = model.get_input_embeddings().weight.norm(dim=-1).mean()
    assert float(image_norm) == pytest.approx(float(text_norm), rel=0.05)


def test_copy_assets_enforces_the_size_limit(tiny_base, tmp_path):
    refiner = tmp_path / "r.safetensors"
    refiner.write_bytes(b"x" * 1024)
    sizes = copy_assets(mllm=Path(tiny_base), refiner=refiner, out=tmp_path / "assets")
    assert sizes["mllm"] > 0 and (tmp_path / "assets" / "refiner" / "refiner.safetensors").is_file()
    manifest = write_manifest(tmp_path / "assets", sizes=sizes, metrics={"n_images": 0}, training={})
    assert manifest["refiner_file"] == "refiner.safetensors"
    assert load_inference_settings(tmp_path / "assets" / "mllm") == DEFAULT_INFERENCE
    # flips chosen for the package replace the trained ones; the rest of the settings stay
    chosen = packaged_settings(Path(tiny_base), ["h"])
    copy_assets(mllm=Path(tiny_base), refiner=refiner, out=tmp_path / "flipped", settings=chosen)
    written = load_inference_settings(tmp_path / "flipped" / "mllm")
    assert written.refiner_flips == ("h",) and written.grid == DEFAULT_INFERENCE.grid
    assert packaged_settings(Path(tiny_base), []).refiner_flips == ()
    clipped = packaged_settings(Path(tiny_base), ["h"], hint_clip=2, hint_snap=1, text_gate=16)
    assert clipped.hint_clip == 2 and clipped.hint_snap == 1 and clipped.refiner_flips == ("h",)
    assert clipped.text_gate == 16
    assert written.hint_clip is None and written.hint_snap == 0 and written.text_gate is None
    refiner.write_bytes(b"x" * (41 * 2**20))
    with pytest.raises(ValueError, match="MB > 40.0 MB"):
        copy_assets(mllm=Path(tiny_base), refiner=refiner, out=tmp_path / "assets2")


def test_weighted_answer_loss_weights_only_foreground_run_starts(tiny_base):
    from transformers import AutoProcessor

    from text4seg.mllm.full_train import run_start_ids, weighted_answer_loss

    tokenizer = AutoProcessor.from_pretrained(tiny_base).tokenizer
    ids = run_start_ids(tokenizer)
    answer = "ok\n<seg>others *4\n others *1| text *3\n text *4\n</seg>"
    labels = torch.tensor([tokenizer(answer)["input_ids"]])
    torch.manual_seed(0)
    logits = torch.randn(1, labels.shape[1], len(tokenizer))
    plain = torch.nn.functional.cross_entropy(logits[0, :-1], labels[0, 1:])
    assert float(weighted_answer_loss(logits, labels, ids, 1.0)) == pytest.approx(float(plain), rel=1e-5)
    # Weighting the two "text" run starts moves the loss toward their own mean cross-entropy.
    token_loss = torch.nn.functional.cross_entropy(logits[0, :-1], labels[0, 1:], reduction="none")
    text_id = tokenizer.convert_tokens_to_ids("text")
    starts = [i for i in range(1, labels.shape[1]) if labels[0, i] == text_id]
    assert len(starts) == 2
    expected = (token_loss.sum() + 4 * token_loss[[i - 1 for i in starts]].sum()) / (len(token_loss) + 8)
    assert float(weighted_answer_loss(logits, labels, ids, 5.0)) == pytest.approx(float(expected), rel=1e-5)


def test_cached_features_take_each_rows_own_hint():
    """Rows of one image share its cached features but not their hints (one per content query)."""
    from types import SimpleNamespace

    from text4seg.mllm.full_train import _Trainer
    from text4seg.mllm.text_vision import PooledFeatureCache, TextVisionConfig, TextVisionModel, register

    register()
    config = TextVisionConfig(
        image_size=64, patch_size=16, hidden_size=24, colour_features=True, reading_hint=True
    )
    tower = TextVisionModel(config).eval()
    run = SimpleNamespace(tower=tower, pooled=PooledFeatureCache(tower.patch_features))
    image = torch.rand(1, 3, 64, 64)
    hints = torch.zeros(2, 1, 64, 64)
    hints[0, :, :16, :16] = 1.0  # the first patch for the first row, nothing for the second
    rows = [{"source_id": "a"}, {"source_id": "a"}]
    pooled = _Trainer.pooled_features(run, rows, torch.cat([image.expand(2, -1, -1, -1), hints], dim=1))
    with torch.no_grad():
        direct = tower.patch_features(torch.cat([image.expand(2, -1, -1, -1), hints], dim=1))
    assert len(run.pooled) == 1 and torch.allclose(pooled, direct, atol=1e-6)
    assert pooled[0, 0, -2:].eq(1.0).all() and not pooled[1, :, -2:].any()


def test_a_reading_adapter_trains_on_rows_with_a_hint_and_is_on_only_for_a_read_word(tmp_path):
    """``reading_adapter_rank``: the checkpoint keeps its source's weights and gains a peft adapter that
    the pipeline's generate switches on only when the hint shows a read word."""
    from safetensors.torch import load_file, save_file

    from data_builders.conversations import ConversationConfig, save_conversations, segmentation_sample
    from text4seg.core.reading import SeenWord
    from text4seg.core.templates import get_template_set
    from text4seg.mllm.full_train import hinted_rows
    from text4seg.mllm.generate import segment
    from text4seg.mllm.loading import load_mllm
    from text4seg.mllm.lora import READING_ADAPTER, load_reading_adapter
    from text4seg.mllm.text_vision import grow_tower
    from text4seg.mllm.vision_pretrain import make_patch_head

    base = build_tiny_llava(
        tmp_path / "base", config=TinyMllmConfig(vision="text_backbone", image_size=64, patch_size=16)
    )
    grow_tower(base, tmp_path / "grown", reading_hint=True)
    width = json.loads((tmp_path / "grown" / "config.json").read_text())["vision_config"]["hidden_size"]
    save_file(
        make_patch_head(hidden=width, cells_per_patch=1).state_dict(), str(tmp_path / "head.safetensors")
    )
    templates, rng = get_template_set("default"), np.random.default_rng(0)
    cfg = ConversationConfig(grid_sizes=(4,), grid_rule="area", area_threshold=0.1, reading="hint")
    image = np.full((64, 64, 3), 40, np.uint8)
    image[8:20, 4:40] = 230
    index_map = np.zeros((64, 64), np.int64)
    index_map[8:20, 4:40] = 1
    samples = [
        segmentation_sample(
            image, index_map, ["the word 'OPEN'"], task="referring", target="the word 'OPEN'", source_id=f"i{k}",
            cfg=cfg, templates=templates, rng=rng, words=[SeenWord(text="OPEN" if k % 2 else "SHUT", box=(4, 8, 40, 20))],
        )  # half the rows name a word that was read, half do not
        for k in range(6)
    ]  # fmt: skip
    rows = save_conversations(samples, tmp_path / "conv", hint=True)
    # Half the rows show a word; with the empty hints every row, as every one asked the reader.
    assert len(hinted_rows(rows)) == 3 and len(hinted_rows(rows, empty=True)) == 6
    train = FullTrainConfig(
        model_path=str(tmp_path / "grown"), head_path=str(tmp_path / "head.safetensors"), data=str(tmp_path / "conv"),
        output_dir=str(tmp_path / "mllm"), steps=2, batch_size=2, log_every=1, save_every=2, calibrate=False,
        task_weights={"referring": 1.0}, reading_adapter_rank=4, hinted_rows_only=True, lr=0.05, aux_weight=0.0,
    )  # fmt: skip
    train_full(train)
    out = tmp_path / "mllm" / "model"
    for name, tensor in load_file(str(tmp_path / "grown" / "model.safetensors")).items():
        assert torch.equal(load_file(str(out / "model.safetensors"))[name], tensor), name
    adapter = load_file(str(out / READING_ADAPTER / "adapter_model.safetensors"))
    assert any("lora_" in name for name in adapter) and any("extra" in name for name in adapter)
    assert load_inference_settings(out).reading_adapter
    assert train_full(replace(train, steps=3))["step"] == 3  # resumes the adapter, not a fresh one
    # With the empty-hint rows too: the checkpoint tells the pipeline to switch it on for those queries.
    train_full(replace(train, steps=1, empty_hint_rows=True, output_dir=str(tmp_path / "mllm_empty")))
    assert load_inference_settings(tmp_path / "mllm_empty" / "model").empty_hint_adapter
    assert not load_inference_settings(out).empty_hint_adapter
    with pytest.raises(ValueError, match="set both"):
        replace(train, hinted_rows_only=False, empty_hint_rows=True)

    plain, loaded = load_mllm(tmp_path / "grown"), load_mllm(out)
    model = load_reading_adapter(loaded.model, out)
    read = np.zeros((64, 64), np.uint8)
    read[8:20, 4:40] = 255

    def answer(m, hint):
        return segment(m, loaded.processor, image, "the word 'OPEN'", task="referring", grid=(4, 4),
                       constrained=False, max_new_tokens=24, hint=hint).text  # fmt: skip

    # No read word: the checkpoint's own weights answer; a read word: the adapter does (and is off after).
    assert answer(model, None) == answer(plain.model, None)
    assert answer(model, np.zeros_like(read)) == answer(plain.model, None)
    with torch.no_grad():
        inputs = loaded.processor(
            images=image, text="<image> x", return_tensors="pt", input_data_format="channels_last"
        )
        off = model(**inputs).logits
        from text4seg.mllm.lora import reading_adapter_on

        with reading_adapter_on(model, True):
            on = model(**inputs).logits
        assert not torch.allclose(on, off) and torch.equal(model(**inputs).logits, off)
