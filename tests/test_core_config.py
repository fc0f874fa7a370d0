"""The one config base: unknown and missing keys name the key, its path and the file; round trips;
overrides; every YAML under configs/ loads with its class; the shared training arguments and schedule."""

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from data_builders.conversations import ConversationConfig
from data_builders.synthetic import SyntheticConfig
from stsam_refiner.config import RefinerConfig, TextPromptSentences
from stsam_refiner.points.config import PointsConfig
from stsam_refiner.points.train_sam import PointSamTrainConfig
from stsam_refiner.train import TrainConfig as RefinerTrainConfig
from text4seg.app.build_default import BuildConfig
from text4seg.app.web.config import ServeConfig
from text4seg.core.config import Config, apply_overrides
from text4seg.core.training import CosineTrainingArguments, TrainingArguments, warmup_cosine
from text4seg.mllm.full_train import FullTrainConfig
from text4seg.mllm.loading import MllmConfig
from text4seg.mllm.tiny import TinyMllmConfig
from text4seg.mllm.train_config import TrainConfig as MllmTrainConfig
from text4seg.mllm.vision_pretrain import VisionPretrainConfig

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, kw_only=True)
class Inner:
    size: int = 2
    """A number."""
    rate: float = 0.5
    """A float (YAML 1.1 reads ``1e-3`` as a string)."""
    names: tuple[str, ...] = ("a",)
    """A tuple (YAML gives a list)."""

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"size {self.size} must be >= 1")


@dataclass(frozen=True, kw_only=True)
class Outer(Config):
    path: str
    """Required."""
    model: Inner = field(default_factory=Inner)
    """A nested section."""
    extra: Inner | None = None
    """An optional nested section."""


def test_unknown_key_names_the_key_and_the_file(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("path: p\nbogus: 1\n")
    with pytest.raises(ValueError) as err:
        Outer.from_yaml(path)
    assert str(err.value).startswith(f"{path}: unknown key 'bogus' (known: ['extra', 'model', 'path'])")


def test_nested_unknown_key_names_its_path(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("path: p\nmodel: {size: 3, foo: 1, bar: 2}\n")
    with pytest.raises(ValueError, match=rf"^{path}: unknown keys 'model.bar', 'model.foo' \(known: "):
        Outer.from_yaml(path)
    with pytest.raises(ValueError, match=r"^Outer: unknown key 'extra.foo'"):
        Outer.from_dict({"path": "p", "extra": {"foo": 1}})
    with pytest.raises(ValueError, match=r"^RefinerConfig: unknown key 'sam.bogus'"):
        RefinerConfig.from_dict({"sam": {"bogus": 1}})


def test_missing_keys_bad_sections_and_invariants_name_the_file(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("model: {size: 3}\n")
    with pytest.raises(ValueError, match=rf"^{path}: missing key 'path'"):
        Outer.from_yaml(path)
    with pytest.raises(ValueError, match=r"'model' must be a mapping, got int"):
        Outer.from_dict({"path": "p", "model": 3})
    path.write_text("path: p\nmodel: {size: 0}\n")
    with pytest.raises(ValueError, match=rf"^{path}: size 0 must be >= 1"):
        Outer.from_yaml(path)
    path.write_text("- a list\n")
    with pytest.raises(ValueError, match="expected a mapping at the top level"):
        Outer.from_yaml(path)


def test_round_trip_and_value_reading(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("path: p\nmodel: {rate: 1e-3, names: [x, y]}\nextra: {size: 4}\n")
    cfg = Outer.from_yaml(path)
    assert cfg.model == Inner(rate=1e-3, names=("x", "y")) and cfg.extra == Inner(size=4)
    assert cfg.to_dict() == {
        "path": "p",
        "model": {"size": 2, "rate": 1e-3, "names": ["x", "y"]},
        "extra": {"size": 4, "rate": 0.5, "names": ["a"]},
    }
    assert Outer.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="model.rate 'fast' is not a number"):
        Outer.from_dict({"path": "p", "model": {"rate": "fast"}})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.path = "q"  # type: ignore[misc]


def test_overrides_strings_and_mappings(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("path: p\n")
    cfg = Outer.from_yaml(path, overrides=["model.size=7", "model.names=[b, c]", "extra.rate=0.25"])
    assert cfg.model.size == 7 and cfg.model.names == ("b", "c") and cfg.extra == Inner(rate=0.25)
    changed = cfg.with_overrides({"path": "q", "model.size": 1})
    assert (changed.path, changed.model.size, cfg.path) == ("q", 1, "p")
    with pytest.raises(ValueError, match="unknown key 'model.nope'"):
        cfg.with_overrides(["model.nope=1"])
    with pytest.raises(ValueError, match="size 0 must be >= 1"):
        cfg.with_overrides({"model.size": 0})
    with pytest.raises(ValueError, match="not key=value"):
        apply_overrides({}, ["size"])
    with pytest.raises(ValueError, match="'path' is not a mapping"):
        apply_overrides({"path": "p"}, ["path.x=1"])


# Every YAML under configs/ and the class that reads it (a new file must be added here).
YAML_CLASSES = {
    "data/conversations.yaml": ConversationConfig,
    "data/corpus_select.yaml": SyntheticConfig,
    "data/corpus_test.yaml": SyntheticConfig,
    "data/corpus_train.yaml": SyntheticConfig,
    "data/synthetic.yaml": SyntheticConfig,
    "data/synthetic_eval.yaml": SyntheticConfig,
    "default/build.yaml": BuildConfig,
    "default/conversations.yaml": ConversationConfig,
    "default/conversations_hint.yaml": ConversationConfig,
    "default/mllm.yaml": TinyMllmConfig,
    "default/mllm_backbone.yaml": TinyMllmConfig,
    "default/mllm_train_backbone.yaml": FullTrainConfig,
    "default/mllm_continue_backbone.yaml": FullTrainConfig,
    "default/mllm_hint.yaml": FullTrainConfig,
    "default/conversations_regrid.yaml": ConversationConfig,
    "default/mllm_regrid.yaml": FullTrainConfig,
    "default/mllm_train.yaml": FullTrainConfig,
    "default/mllm_continue.yaml": FullTrainConfig,
    "default/refiner_train.yaml": RefinerTrainConfig,
    "default/refiner_continue.yaml": RefinerTrainConfig,
    "default/refiner_train_backbone.yaml": RefinerTrainConfig,
    "default/refiner_warm_backbone.yaml": RefinerTrainConfig,
    "default/refiner_augment.yaml": RefinerTrainConfig,
    "default/vision_pretrain.yaml": VisionPretrainConfig,
    "default/vision_pretrain_backbone.yaml": VisionPretrainConfig,
    "experiments/grid16_conversations.yaml": ConversationConfig,
    "experiments/grid16_mllm.yaml": FullTrainConfig,
    "experiments/grid16_rule3_conversations.yaml": ConversationConfig,
    "experiments/grid16_rule3_hint.yaml": ConversationConfig,
    "experiments/grid16_rule3_mllm.yaml": FullTrainConfig,
    "experiments/refiner_augment.yaml": RefinerTrainConfig,
    "experiments/refiner_augment_tuned.yaml": RefinerTrainConfig,
    "experiments/refiner_continue.yaml": RefinerTrainConfig,
    "experiments/refiner_tuned_backbone.yaml": RefinerConfig,
    "mllm/default_llava.yaml": TinyMllmConfig,
    "mllm/lora_default.yaml": MllmConfig,
    "mllm/qlora_default.yaml": MllmConfig,
    "mllm/tiny_llava.yaml": TinyMllmConfig,
    "mllm/tiny_qwen2vl.yaml": TinyMllmConfig,
    "points/train_sam_tiny.yaml": PointSamTrainConfig,
    "points/train_sam_tiny_stage2.yaml": PointSamTrainConfig,
    "points/train_sam_tiny_stage3.yaml": PointSamTrainConfig,
    "points/tspp.yaml": PointsConfig,
    "refiner/text_backbone.yaml": RefinerConfig,
    "refiner/tiny.yaml": RefinerConfig,
    "refiner/train_tiny.yaml": RefinerTrainConfig,
    "refiner/vit_b.yaml": RefinerConfig,
    "refiner/vit_h.yaml": RefinerConfig,
    "refiner/vit_l.yaml": RefinerConfig,
    "text_prompts.yaml": TextPromptSentences,
    "train/llava_lora_zero2.yaml": MllmTrainConfig,
    "train/qlora_zero2.yaml": MllmTrainConfig,
    "train/tiny_cpu.yaml": MllmTrainConfig,
}


def test_every_yaml_under_configs_has_a_class():
    found = {str(p.relative_to(REPO / "configs")) for p in (REPO / "configs").rglob("*.yaml")}
    assert found == set(YAML_CLASSES)


@pytest.mark.parametrize("name", sorted(YAML_CLASSES))
def test_every_yaml_under_configs_loads_and_round_trips(name):
    cls = YAML_CLASSES[name]
    cfg = cls.from_yaml(REPO / "configs" / name)
    if issubclass(cls, Config):
        assert cls.from_dict(cfg.to_dict()) == cfg


CONFIG_CLASSES = [
    ConversationConfig, RefinerConfig, TextPromptSentences, PointsConfig, PointSamTrainConfig, RefinerTrainConfig,
    ServeConfig, FullTrainConfig, MllmConfig, TinyMllmConfig, MllmTrainConfig, VisionPretrainConfig,
]  # fmt: skip


@pytest.mark.parametrize("cls", CONFIG_CLASSES, ids=lambda c: f"{c.__module__}.{c.__name__}")
def test_configs_and_their_sections_are_frozen_and_keyword_only(cls):
    assert issubclass(cls, Config)
    pending = [cls]
    while pending:
        current = pending.pop()
        assert current.__dataclass_params__.frozen, current
        assert all(f.kw_only for f in dataclasses.fields(current)), current
        factories = [f.default_factory for f in dataclasses.fields(current)]
        pending += [factory for factory in factories if dataclasses.is_dataclass(factory)]


@pytest.mark.parametrize(
    "cls", [MllmTrainConfig, FullTrainConfig, VisionPretrainConfig, RefinerTrainConfig, PointSamTrainConfig]
)
def test_trainer_configs_share_the_training_arguments(cls):
    assert issubclass(cls, TrainingArguments)
    shared = {f.name for f in dataclasses.fields(TrainingArguments)}
    assert shared == {
        "batch_size",
        "lr",
        "weight_decay",
        "grad_clip",
        "seed",
        "threads",
        "log_every",
        "save_every",
    }
    assert shared <= {f.name for f in dataclasses.fields(cls)}


def test_training_arguments_check_their_numbers():
    with pytest.raises(ValueError, match="batch_size 0 must be >= 1"):
        TrainingArguments(batch_size=0)
    with pytest.raises(ValueError, match="lr 0.0 must be > 0"):
        TrainingArguments(lr=0.0)
    with pytest.raises(ValueError, match="steps 0 must be >= 1"):
        CosineTrainingArguments(steps=0)


def _old_warmup_cosine(step: int, warmup: int, total: int) -> float:
    # The formula each trainer carried before the schedule had one home.
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def test_warmup_cosine_is_the_schedule_the_trainers_used():
    args = CosineTrainingArguments(steps=40, warmup_steps=5)
    factors = [args.lr_factor(step) for step in range(50)]
    assert factors == [_old_warmup_cosine(step, 5, 40) for step in range(50)]  # bit for bit
    assert factors[0] == 0.2 and factors[4] == 1.0 and factors[40] == factors[49] == pytest.approx(0.1)
    assert warmup_cosine(0, warmup_steps=0, total_steps=10) == 1.0


def test_lambda_lr_resumed_mid_run_repeats_the_uninterrupted_learning_rates():
    args = CosineTrainingArguments(steps=12, warmup_steps=3, lr=0.1)

    def lrs(start: int, stop: int, state=None) -> tuple[list[float], dict]:
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=args.lr)
        if state is not None:
            optimizer.load_state_dict(state)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, args.lr_factor, last_epoch=start - 1)
        seen = []
        for _ in range(start, stop):
            seen.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        return seen, optimizer.state_dict()

    whole, _ = lrs(0, 12)
    first, state = lrs(0, 5)
    second, _ = lrs(5, 12, state)
    assert first + second == whole
