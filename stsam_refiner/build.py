"""Build a refiner from its config; save and load the project's own checkpoints.

A project checkpoint is one safetensors file: every tensor the refiner trained or that no base
checkpoint can supply, plus the config as JSON metadata. Frozen weights that came from a base
checkpoint (SAM's official state_dict, a pretrained SegFormer folder) are not copied; loading
rebuilds the model from the config, fills those from the base checkpoints again, then loads the
stored tensors, and reports missing / unexpected keys by name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from stsam_refiner.config import RefinerConfig
from stsam_refiner.model import STSAMRefiner
from stsam_refiner.sam_backbone import LoadReport, build_sam
from stsam_refiner.text_encoders import FrozenTextEncoder, build_text_encoder
from stsam_refiner.text_prompt import load_sentences
from text4seg.core.checkpoints import check_safetensors

FORMAT = "stsam_refiner/1"
_REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class BuildReport:
    """Where the refiner's weights came from."""

    sam: LoadReport | None = None
    """Result of loading the official SAM checkpoint (None: random SAM)."""
    base_keys: set[str] = field(default_factory=set)
    """Refiner state keys filled from base checkpoints (SAM, pretrained SegFormer)."""


def resolve_path(path: str | Path) -> Path:
    """``path`` as given if it exists, else relative to the repository root (for ``configs/…``)."""
    p = Path(path)
    return p if p.exists() or p.is_absolute() else _REPO_ROOT / p


def build_refiner(
    cfg: RefinerConfig, *, text_encoder: FrozenTextEncoder | None = None
) -> tuple[STSAMRefiner, BuildReport]:
    """The configured refiner; SAM (and SegFormer) weights filled from their base checkpoints."""
    sam, sam_report = build_sam(cfg.sam)
    report = BuildReport(sam=sam_report)
    if sam_report is not None:
        loaded = set(sam.state_dict()) - set(sam_report.missing)
        report.base_keys |= {f"sam.{k}" for k in loaded}
    tp = cfg.text_prompt
    if tp.enabled and text_encoder is None:
        text_encoder = build_text_encoder(tp)
    sentences = load_sentences(resolve_path(tp.sentences_file)) if tp.enabled and tp.use_general else []
    if tp.enabled and tp.use_general and not sentences:
        raise ValueError("text_prompt.use_general needs sentences_file")
    model = STSAMRefiner(cfg=cfg, sam=sam, text_encoder=text_encoder, sentences=sentences)
    if model.dense_prompt is not None and cfg.dense_prompt.pretrained:
        report.base_keys |= {f"dense_prompt.segformer.{k}" for k in model.dense_prompt.segformer.state_dict()}
    model.base_keys = report.base_keys
    return model, report


def trained_state(model: STSAMRefiner) -> dict[str, torch.Tensor]:
    """The tensors a project checkpoint stores: all but frozen base-checkpoint weights."""
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    base = getattr(model, "base_keys", set())
    return {
        k: v.detach().cpu().contiguous()
        for k, v in model.state_dict().items()
        if k not in base or k in trainable
    }


def save_refiner(model: STSAMRefiner, path: str | Path) -> list[str]:
    """Write ``path`` (safetensors) and return the stored keys."""
    from safetensors.torch import save_file

    state = trained_state(model)
    meta = {"format": FORMAT, "config": json.dumps(model.cfg.to_dict())}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=meta)
    return sorted(state)


def read_refiner_config(path: str | Path) -> RefinerConfig:
    """The config stored in a project checkpoint (a pickle is refused unread: CheckpointRefusedError)."""
    from safetensors import safe_open

    check_safetensors(
        path, convert=f"stsam_refiner.build.save_refiner(model, '{Path(path).stem}.safetensors')"
    )
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} checkpoint (format={meta.get('format')!r})")
    return RefinerConfig.from_dict(json.loads(meta["config"]))


def load_refiner(
    path: str | Path,
    *,
    sam_checkpoint: str | None = None,
    text_encoder: FrozenTextEncoder | None = None,
) -> tuple[STSAMRefiner, LoadReport]:
    """Rebuild from the stored config (optionally pointing at another SAM checkpoint) and load.

    The report's ``missing`` lists keys that neither the stored file nor a base checkpoint gave.
    """
    from safetensors.torch import load_file

    cfg = read_refiner_config(path)
    if sam_checkpoint is not None:
        cfg = cfg.with_overrides({"sam.checkpoint": sam_checkpoint})
    model, built = build_refiner(cfg, text_encoder=text_encoder)
    stored = load_file(str(path))
    result = model.load_state_dict(stored, strict=False)
    report = LoadReport(
        missing=sorted(set(result.missing_keys) - built.base_keys),
        unexpected=sorted(result.unexpected_keys),
        resized=built.sam.resized if built.sam is not None else [],
    )
    model.eval()
    return model, report
