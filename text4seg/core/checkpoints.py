"""Reading checkpoints without running code from them.

A pickle (``torch.save``'s format, transformers' ``pytorch_model.bin``) can make the reader call any
function while it loads. Here a pickle is only ever read with ``torch.load(weights_only=True)``,
which refuses every global outside plain tensors and containers *before* calling it; such a refusal
becomes a :class:`CheckpointRefusedError` whose one-line message names the file, says why, and how
to convert the checkpoint to safetensors (which holds tensors and nothing else). Files that must be
safetensors are checked for being a pickle before anything parses them.

Nothing here imports the rest of the repository; torch and safetensors are imported when used.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

_GLOBAL_RE = re.compile(r"GLOBAL ([\w.]+)")
_OPERAND_RE = re.compile(r"Unsupported operand \d+")
# transformers / peft weight files that are pickles; their safetensors twins are loaded first.
_PICKLED_WEIGHTS = ("pytorch_model*.bin", "adapter_model.bin")


class CheckpointRefusedError(ValueError):
    """A checkpoint that cannot be loaded without running code from it; nothing in it was run."""

    def __init__(self, path: str | Path, reason: str, convert: str) -> None:
        self.path = Path(path)
        super().__init__(
            f"{path}: refused: {reason}; code in a checkpoint is never run. Convert it to safetensors "
            f"where you trust its source: load it with the code that wrote it, then {convert}, and pass "
            "that instead."
        )


def save_file_hint(path: str | Path) -> str:
    """How a state_dict is written as safetensors, for the file that replaces ``path``."""
    return f"safetensors.torch.save_file(state_dict, '{Path(path).stem}.safetensors')"


def is_pickle(path: str | Path) -> bool:
    """True for a raw pickle or a ``torch.save`` zip archive (which holds one)."""
    path = Path(path)
    with path.open("rb") as f:
        head = f.read(4)
    if head[:1] == b"\x80":  # pickle protocol 2+, also torch's legacy format
        return True
    if head == b"PK\x03\x04" and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith(".pkl") for name in archive.namelist())
    return False


def _refusal_reason(err: Exception) -> str:
    """What torch's weights-only unpickler objected to, in a few words."""
    text = str(err)
    found = _GLOBAL_RE.search(text)
    if found:
        return f"a pickle that needs code execution to load (it calls {found[1]})"
    found = _OPERAND_RE.search(text)
    detail = f" ({found[0].lower()})" if found else ""
    return f"a pickle that needs more than plain tensors to load{detail}"


def load_torch_checkpoint(
    path: str | Path, *, map_location: str = "cpu", mmap: bool = False, convert: str | None = None
) -> Any:
    """``torch.load(path, weights_only=True)``: tensors, numbers, strings and containers only.

    convert: how to rewrite the file as safetensors, for the refusal message (default: a state_dict
        through ``safetensors.torch.save_file``).
    Raises :class:`CheckpointRefusedError` for a pickle that needs any other global or opcode
    (nothing of it is run), ``ValueError`` for a file that is not a torch checkpoint or is damaged,
    ``OSError`` for a missing one.
    """
    import pickle

    import torch

    path = _existing_file(path)
    if not is_pickle(path):
        raise ValueError(f"{path}: not a torch checkpoint (neither a torch.save archive nor a pickle)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        if str(err).startswith("Weights only load failed"):
            raise CheckpointRefusedError(
                path, _refusal_reason(err), convert or save_file_hint(path)
            ) from None
        raise ValueError(f"{path}: not a readable torch checkpoint ({_first_line(err)})") from None
    except (RuntimeError, EOFError, KeyError, ValueError) as err:
        if mmap and "mmap can only be used" in str(err):  # torch's pre-1.6 format: read it whole
            return load_torch_checkpoint(path, map_location=map_location, convert=convert)
        raise ValueError(
            f"{path}: not a readable torch checkpoint ({type(err).__name__}: {_first_line(err)})"
        ) from None


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory, not a checkpoint file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    return path


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [""])[0]


def check_safetensors(path: str | Path, *, convert: str | None = None) -> Path:
    """Check that ``path`` is a safetensors file before anything reads it; returns it as a Path.

    Raises :class:`CheckpointRefusedError` for a pickle (it is never unpickled), ``ValueError`` for
    any other file that is not safetensors, ``OSError`` for a missing one.
    """
    path = _existing_file(path)
    if is_pickle(path):
        reason = "a pickle (which can run code while it loads), not a safetensors file"
        raise CheckpointRefusedError(path, reason, convert or save_file_hint(path))
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt"):
            pass
    except Exception as err:  # safetensors raises its own SafetensorError (not a ValueError)
        raise ValueError(f"{path}: not a safetensors file ({_first_line(err)})") from None
    return path


def check_pretrained_folder(path: str | Path) -> None:
    """Refuse a local transformers / peft folder whose weights are pickles that need code to load.

    When the folder has no ``.safetensors`` weights, transformers reads ``pytorch_model*.bin`` (and
    peft ``adapter_model.bin``) with ``torch.load``; each is first read here with
    :func:`load_torch_checkpoint` (memory-mapped: the tensors are not read), so a refusal names the
    file. Hub ids and folders with safetensors weights pass unchecked.
    """
    folder = Path(path)
    if not folder.is_dir() or any(folder.glob("*.safetensors")):
        return
    convert = f"model.save_pretrained('{folder}') (it writes model.safetensors)"
    for pattern in _PICKLED_WEIGHTS:
        for weights in sorted(folder.glob(pattern)):
            load_torch_checkpoint(weights, mmap=True, convert=convert)
