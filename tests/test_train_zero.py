"""Real multi-process training on CPU: 2-process ZeRO-2 / ZeRO-3 vs one process, and SIGKILL + resume.

Every run is a subprocess (the launcher script or `python -m text4seg.mllm.train`), on a tiny LLaVA
and 16 chat samples: 6 optimizer steps of global batch 4, checkpoints every 2 steps, LoRA dropout 0
so that one process and two ranks see exactly the same computation up to float summation order.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_support import free_port, write_chat_dataset

torch.set_num_threads(1)
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
STEPS = 6
CONFIG = """\
model_path: {model}
data_path: {data}
output_dir: {out}
max_steps: 6
batch_size: 4
lr: 1.0e-3
lr_scheduler: constant
warmup_ratio: 0.0
save_every: 2
save_total_limit: null
log_every: 1
threads: 1
seed: 3
lora: {{r: 4, alpha: 8, dropout: 0.0, projector: train}}
"""


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "DS_ACCELERATOR": "cpu", "PYTHONPATH": str(REPO)}


def _run(command, *, expect_ok=True):
    result = subprocess.run(command, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    if expect_ok and result.returncode != 0:
        raise AssertionError(f"{command} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result


def _summary(result) -> dict:
    return json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][-1])


def _losses(out: Path) -> list[float]:
    return [e["loss"] for e in json.loads((out / "loss_history.json").read_text())]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from text4seg.mllm.tiny import build_tiny_llava

    root = tmp_path_factory.mktemp("zero")
    model = build_tiny_llava(root / "llava")
    data = write_chat_dataset(root / "data", 16, seed=1)
    config = root / "train.yaml"
    config.write_text(CONFIG.format(model=model, data=data, out=root / "unused"))
    return root, model, config


@pytest.fixture(scope="module")
def single(setup):
    root, _, config = setup
    out = root / "single"
    result = _run([sys.executable, "-m", "text4seg.mllm.train", "--config", str(config), f"output_dir={out}"])
    assert _summary(result)["global_step"] == STEPS
    return out


def _adapter(out: Path) -> dict:
    return load_file(str(out / "adapter_model.safetensors"))


@pytest.mark.parametrize("stage", [0, 2, 3], ids=["ddp", "zero2", "zero3"])
def test_two_process_zero_matches_one_process_and_saves_loadable_adapters(setup, single, stage):
    """Stage 0 is plain DDP over gloo: it guards against ranks silently training unsynchronized."""
    root, model_path, config = setup
    out = root / f"zero{stage}"
    launcher = [
        "bash", str(REPO / "scripts" / "train_mllm.sh"), "--config", str(config), "--nproc", "2",
        "--zero", str(stage), "--threads", "1", "--master_port", str(free_port()), "--python", sys.executable,
        f"output_dir={out}", "batch_size=2",
    ]  # fmt: skip
    result = _run(launcher)
    assert _summary(result)["global_step"] == STEPS
    assert ("DeepSpeed" in result.stderr + result.stdout) == bool(stage)

    # Same global batch (1 x 4 vs 2 x 2), same data order, same adapters at step 0: same curve.
    one, two = _losses(single), _losses(out)
    assert len(one) == len(two) == STEPS
    assert one[-1] < one[0], "the loss should go down over 6 steps at lr 1e-3"
    assert two == pytest.approx(one, rel=1e-4)

    # Resumable checkpoints: under ZeRO one optimizer shard per rank, under DDP one optimizer file.
    if stage:
        shards = sorted(p.name for p in (out / "checkpoint-4" / "global_step4").iterdir())
        assert sum("optim_states" in name for name in shards) == 2, shards
    else:
        assert (out / "checkpoint-4" / "optimizer.pt").is_file()

    # The gathered adapter is whole (not a rank's shard) and equals the one-process result.
    mine, reference = _adapter(out), _adapter(single)
    assert mine.keys() == reference.keys()
    for key in reference:
        assert mine[key].shape == reference[key].shape, key
        assert torch.allclose(mine[key], reference[key], atol=5e-5), key

    # ...and loads onto the base model like any peft adapter.
    from text4seg.mllm.loading import load_mllm

    loaded = load_mllm(model_path, adapter=out)
    lora_b = [p for n, p in loaded.model.named_parameters() if "lora_B" in n]
    assert lora_b and all(p.abs().sum() > 0 for p in lora_b), "trained LoRA B weights must be non-zero"


def test_sigkill_mid_run_then_resume_ends_with_the_uninterrupted_weights(setup, single):
    root, _, config = setup
    out = root / "killed"
    killed = _run(
        [
            sys.executable,
            str(REPO / "tests" / "train_support.py"),
            "5",
            "--config",
            str(config),
            f"output_dir={out}",
        ],
        expect_ok=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert (out / "checkpoint-4" / "trainer_state.json").is_file()
    assert not (out / "checkpoint-6").exists() and not (out / "adapter_model.safetensors").exists()

    resumed = _run(
        [sys.executable, "-m", "text4seg.mllm.train", "--config", str(config), f"output_dir={out}"]
    )
    summary = _summary(resumed)
    assert summary["global_step"] == STEPS
    assert summary["resumed_from"].endswith("checkpoint-4")

    final, reference = _adapter(out), _adapter(single)
    assert final.keys() == reference.keys()
    for key in reference:
        assert torch.allclose(final[key], reference[key], atol=1e-6), key
    # Steps 5 and 6 were redone after the resume with the same losses.
    assert _losses(out)[-2:] == pytest.approx(_losses(single)[-2:], rel=1e-6)
