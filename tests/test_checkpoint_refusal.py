"""Checkpoints are read without running code: a malicious pickle passed to any checkpoint flag is
refused with one line naming the file (exit status 2), and its payload never runs (issue 17)."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pipeline_support import random_image, tiny_checkpoints
from safetensors.torch import save_file

from text4seg.app.cli import main
from text4seg.core.checkpoints import (
    CheckpointRefusedError,
    check_pretrained_folder,
    check_safetensors,
    load_torch_checkpoint,
)

torch.set_num_threads(1)


class Payload:
    """Unpickling this runs ``exec``: it creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def _malicious(path: Path, marker: Path) -> Path:
    """A torch.save checkpoint whose state_dict hides the payload next to a real tensor."""
    torch.save({"weight": torch.zeros(2), "extra": Payload(marker)}, path)
    return path


CODE_REASON = "a pickle that needs code execution to load (it calls exec)"


def _refusal(path: Path, convert: str, reason: str = CODE_REASON) -> str:
    return (
        f"{path}: refused: {reason}; code in a checkpoint is never run. Convert it to safetensors where "
        f"you trust its source: load it with the code that wrote it, then {convert}, and pass that instead."
    )


def test_the_payload_is_real(tmp_path):
    """Control: an unsafe load of the same file does run the payload."""
    marker = tmp_path / "ran"
    _malicious(tmp_path / "evil.pt", marker)
    torch.load(tmp_path / "evil.pt", weights_only=False)  # what the refusal never does
    assert marker.exists()


def _image(folder: Path) -> Path:
    Image.fromarray(random_image(20, 20)).save(folder / "img.png")
    return folder / "img.png"


def _flag_case(flag: str, tmp_path: Path, marker: Path) -> tuple[list[str], str]:
    """CLI model arguments with one malicious checkpoint behind ``flag``; the expected message."""
    ckpt = tiny_checkpoints()
    model, refiner, extra = str(ckpt.mllm), str(ckpt.refiner), []
    evil = _malicious(tmp_path / "evil.pt", marker)
    save_state = "safetensors.torch.save_file(state_dict, 'evil.safetensors')"
    if flag == "--model":
        folder = tmp_path / "mllm"
        shutil.copytree(ckpt.mllm, folder)
        for weights in folder.glob("*.safetensors"):
            weights.unlink()
        evil = _malicious(folder / "pytorch_model.bin", marker)
        model = str(folder)
        expected = _refusal(evil, f"model.save_pretrained('{folder}') (it writes model.safetensors)")
    elif flag == "--refiner":
        refiner = str(evil)
        reason = "a pickle (which can run code while it loads), not a safetensors file"
        expected = _refusal(evil, "stsam_refiner.build.save_refiner(model, 'evil.safetensors')", reason)
    elif flag == "--sam-checkpoint":
        extra, expected = ["--sam-checkpoint", str(evil)], _refusal(evil, save_state)
    elif flag == "--points-sam":
        extra = ["--points-config", "configs/points/tspp.yaml", "--points-sam", str(evil)]
        expected = _refusal(evil, save_state)
    else:  # a pickle named .safetensors behind --points-prompter (with a real point SAM)
        from stsam_refiner.points.train_sam import PointSamTrainConfig, save_point_sam
        from stsam_refiner.sam_backbone import SAM_ARCHS, sam_from_arch

        sam = tmp_path / "sam.safetensors"
        save_point_sam(
            sam_from_arch(SAM_ARCHS["tiny"], 64), sam, step=0, cfg=PointSamTrainConfig(image_size=64)
        )
        evil = _malicious(tmp_path / "evil.safetensors", marker)
        extra = ["--points-config", "configs/points/tspp.yaml", "--points-sam", str(sam),
                 "--points-prompter", str(evil)]  # fmt: skip
        reason = "a pickle (which can run code while it loads), not a safetensors file"
        hint = "stsam_refiner.points.train_prompter.save_prompter(head, 'evil.safetensors')"
        expected = _refusal(evil, hint, reason)
    return ["--model", model, "--refiner", refiner, "--grid", "4", "--threads", "1", *extra], expected


@pytest.mark.parametrize(
    "flag", ["--model", "--refiner", "--sam-checkpoint", "--points-sam", "--points-prompter"]
)
def test_malicious_pickle_behind_each_flag_is_refused_in_one_line(flag, tmp_path, capsys):
    marker = tmp_path / "payload_ran"
    args, expected = _flag_case(flag, tmp_path, marker)
    code = main(["segment", str(_image(tmp_path)), "--out", str(tmp_path / "out"), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines()[-1] == f"text4seg segment: error: {expected}"
    assert "weights_only" not in err and "Traceback" not in err
    assert not marker.exists()  # nothing in the pickle ran
    assert not (tmp_path / "out").exists()


def test_plain_state_dicts_still_load_and_odd_files_are_named(tmp_path):
    torch.save({"w": torch.arange(3)}, tmp_path / "ok.pt")
    assert load_torch_checkpoint(tmp_path / "ok.pt")["w"].tolist() == [0, 1, 2]
    assert load_torch_checkpoint(tmp_path / "ok.pt", mmap=True)["w"].tolist() == [0, 1, 2]
    torch.save({"w": np.zeros(2)}, tmp_path / "numpy.pt")  # a global the safe unpickler refuses
    with pytest.raises(CheckpointRefusedError, match=r"numpy.pt: refused: .*\(it calls numpy\."):
        load_torch_checkpoint(tmp_path / "numpy.pt")
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="notes.pt: not a torch checkpoint"):
        load_torch_checkpoint(tmp_path / "notes.pt")
    with pytest.raises(IsADirectoryError, match="is a directory, not a checkpoint file"):
        load_torch_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="notes.pt: not a safetensors file"):
        check_safetensors(tmp_path / "notes.pt")
    save_file({"w": torch.zeros(1)}, tmp_path / "ok.safetensors")
    assert check_safetensors(tmp_path / "ok.safetensors") == tmp_path / "ok.safetensors"


def test_raw_pickle_and_pretrained_folder_are_refused_unrun(tmp_path):
    marker = tmp_path / "payload_ran"
    (tmp_path / "raw.pkl").write_bytes(pickle.dumps({"x": Payload(marker)}, protocol=2))
    with pytest.raises(
        CheckpointRefusedError,
        match=r"raw.pkl: refused: a pickle that needs code execution to load \(it calls exec\)",
    ):
        load_torch_checkpoint(tmp_path / "raw.pkl", mmap=True)
    folder = tmp_path / "encoder"
    folder.mkdir()
    torch.save({"w": torch.zeros(1)}, folder / "pytorch_model.bin")
    check_pretrained_folder(folder)  # plain tensors: transformers may load it
    _malicious(folder / "pytorch_model-00002-of-00002.bin", marker)
    with pytest.raises(CheckpointRefusedError, match=r"pytorch_model-00002-of-00002.bin: refused"):
        check_pretrained_folder(folder)
    save_file({"w": torch.zeros(1)}, folder / "model.safetensors")
    check_pretrained_folder(folder)  # transformers reads the safetensors file and never the .bin
    assert not marker.exists()
