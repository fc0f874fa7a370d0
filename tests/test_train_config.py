"""Training configs: every YAML under configs/train and the packaged DeepSpeed JSONs parse; overrides; invariants."""

import json
from pathlib import Path

import pytest

from text4seg.core.config import apply_overrides
from text4seg.mllm.train_config import DEEPSPEED_CONFIGS, TrainConfig

REPO = Path(__file__).resolve().parents[1]
BASE = {"model_path": "m", "data_path": "d", "output_dir": "o"}


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "train").glob("*.yaml")), ids=lambda p: p.name)
def test_every_train_yaml_loads(path):
    config = TrainConfig.from_yaml(path)
    assert config.lora.r >= 1
    if config.zero_stage:
        assert Path(config.deepspeed_config).is_file()
    assert TrainConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_configs_leave_batch_and_precision_to_the_trainer(stage):
    config = json.loads((DEEPSPEED_CONFIGS / f"zero{stage}.json").read_text())
    assert config["zero_optimization"]["stage"] == stage
    for key in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "train_batch_size"):
        assert config[key] == "auto"
    assert config["bf16"]["enabled"] == config["fp16"]["enabled"] == "auto"
    # The Trainer builds the optimizer and scheduler, so single- and multi-process runs share them.
    assert "optimizer" not in config and "scheduler" not in config


def test_overrides_parse_yaml_values_and_nested_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model_path: m\ndata_path: d\noutput_dir: o\nlora: {r: 4}\n")
    config = TrainConfig.from_yaml(
        path, overrides=["zero_stage=3", "lora.alpha=32", "lr=1e-3", "resume=never"]
    )
    assert (config.zero_stage, config.lora.r, config.lora.alpha) == (3, 4, 32)
    assert config.lr == pytest.approx(1e-3)
    assert config.deepspeed_config.endswith("text4seg/mllm/deepspeed/zero3.json")
    assert apply_overrides({"a": {"b": 1}}, ["a.c=x"]) == {"a": {"b": 1, "c": "x"}}
    with pytest.raises(ValueError, match="not key=value"):
        apply_overrides({}, ["zero_stage"])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"zero_stage": 1}, "zero_stage 1"),
        ({"precision": "fp8"}, "precision 'fp8'"),
        ({"quantization": "4bit", "zero_stage": 3}, "cannot be sharded"),
        ({"batch_size": 0}, "batch_size 0"),
        ({"max_steps": -1, "num_train_epochs": 0}, "no steps"),
        ({"warmup_ratio": 1.5}, "warmup_ratio 1.5"),
        ({"deepspeed_config": "x.json"}, "zero_stage is 0"),
        ({"lora": {"r": 0}}, "r 0"),
        ({"lr": "fast"}, "lr 'fast' is not a number"),
    ],
)
def test_invariants_name_the_numbers(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_dict({**BASE, **changes})


def test_unknown_keys_are_refused():
    with pytest.raises(ValueError, match=r"unknown key 'learning_rate'"):
        TrainConfig.from_dict({**BASE, "learning_rate": 1.0})
