"""scripts/train_mllm.sh: --help documents every option; commands for one node, torchrun and deepspeed."""

import re
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_mllm.sh"


def _run(*args, check=True):
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, check=check)


def test_help_documents_every_option_the_parser_accepts():
    help_text = _run("--help").stdout
    source = SCRIPT.read_text()
    parsed = set(re.findall(r"^\s+(--[a-z_]+)(?:\|--[a-z_]+)*\)", source, flags=re.M))
    aliases = set(re.findall(r"\|(--[a-z_]+)", source))
    assert parsed and {"--zero", "--hostfile", "--num_nodes", "--master_addr", "--master_port"} <= parsed
    for option in parsed | aliases:
        assert option in help_text, f"{option} is accepted but not documented"
    assert "multi-node" in help_text.lower() or "2 nodes" in help_text


def test_single_process_runs_the_module_with_overrides():
    out = _run("--config", "c.yaml", "--zero", "2", "--resume", "never", "--dry_run", "lora.r=8").stdout
    assert re.search(
        r"-m text4seg\.mllm\.train --config c\.yaml zero_stage=2 resume=never lora\.r=8\s*$", out
    )
    assert "torch.distributed.run" not in out


def test_multi_node_torchrun_command():
    out = _run(
        "--config", "c.yaml", "--nproc", "8", "--num_nodes", "2", "--node_rank", "1",
        "--master_addr", "10.0.0.1", "--master_port", "29555", "--zero", "3", "--dry_run",
    ).stdout  # fmt: skip
    for piece in ("-m torch.distributed.run", "--nnodes 2", "--node_rank 1", "--nproc_per_node 8",
                  "--master_addr 10.0.0.1", "--master_port 29555", "zero_stage=3"):  # fmt: skip
        assert piece in out


def test_hostfile_uses_the_deepspeed_launcher():
    out = _run("--config", "c.yaml", "--hostfile", "hosts", "--num_nodes", "2", "--nproc", "4",
               "--dry_run", "--", "max_steps=3").stdout  # fmt: skip
    assert "deepspeed --num_nodes 2 --num_gpus 4" in out
    assert "--hostfile hosts --module text4seg.mllm.train --config c.yaml max_steps=3" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--zero", "1"], "--zero must be 0, 2 or 3"),
        (["--nproc", "two"], "--nproc must be a number"),
        (["--bogus"], "unknown option --bogus"),
        (["--hostfile", "h", "--launcher", "torchrun"], "--hostfile needs --launcher deepspeed"),
    ],
)
def test_bad_arguments_fail_with_a_message(args, message):
    result = _run("--config", "c.yaml", *args, "--dry_run", check=False)
    assert result.returncode == 2
    assert message in result.stderr


def test_config_is_required():
    result = _run("--dry_run", check=False)
    assert result.returncode == 2 and "--config is required" in result.stderr
