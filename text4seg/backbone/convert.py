"""ONNX detector graph → trainable ``torch.fx.GraphModule`` that returns the three feature cuts.

``onnx2torch`` does the op-by-op translation; this module repairs what it rejects, then reshapes the
result for training: BatchNorm becomes a mode-independent per-channel affine (batch statistics of
small fine-tuning batches would wreck the folded statistics), learned constants that the exporter
left as buffers become parameters, and the graph returns (quarter, half, db_logit) instead of the
sigmoid map. The cuts are found by structure — node names differ between exports.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import fx, nn


class ChannelAffine(nn.Module):
    """Inference-mode BatchNorm as a trainable per-channel ``x * scale + shift`` (N×C×H×W → same)."""

    def __init__(self, *, scale: torch.Tensor, shift: torch.Tensor) -> None:
        super().__init__()
        self.scale = nn.Parameter(scale.detach().clone().float())
        self.shift = nn.Parameter(shift.detach().clone().float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.view(1, -1, 1, 1) + self.shift.view(1, -1, 1, 1)


@dataclass(frozen=True, kw_only=True)
class ConvertedDetector:
    """A converted detector graph and the facts callers size their layers by."""

    graph: fx.GraphModule
    """Input N×3×H×W normalised BGR (H, W multiples of the stride); returns (quarter, half, db_logit)."""
    quarter_channels: int
    half_channels: int
    channel_constants: dict[str, str]
    """Parameter name → ``"add"`` or ``"mul"``: exporter constants promoted to parameters."""


def _fix_onnx(path: Path):
    """Load the ONNX model with Constant weights moved to initializers and SAME_UPPER pads made explicit."""
    import onnx
    from onnx import helper

    model = onnx.load(str(path))
    graph = model.graph
    kept = []
    for node in graph.node:
        # PP-OCRv4 stores every weight as a Constant node; onnx2torch only looks up initializers.
        value = [a for a in node.attribute if a.name == "value"] if node.op_type == "Constant" else []
        if value:
            tensor = helper.get_attribute_value(value[0])
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
        else:
            kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    for node in graph.node:
        auto_pad = [a for a in node.attribute if a.name == "auto_pad"]
        if not auto_pad or auto_pad[0].s in (b"NOTSET", b"VALID"):
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        strides = list(attrs.get("strides", [1, 1]))
        if strides != [1, 1]:
            raise ValueError(f"{node.name}: auto_pad {auto_pad[0].s!r} with strides {strides} is not handled")
        dilations = list(attrs.get("dilations", [1, 1]))
        totals = [d * (k - 1) for d, k in zip(dilations, attrs["kernel_shape"], strict=True)]
        # SAME_UPPER puts the odd pixel at the end, SAME_LOWER at the start.
        small = [t // 2 for t in totals]
        large = [t - s for t, s in zip(totals, small, strict=True)]
        begins, ends = (small, large) if auto_pad[0].s == b"SAME_UPPER" else (large, small)
        node.attribute.remove(auto_pad[0])
        node.attribute.append(helper.make_attribute("pads", begins + ends))
    return model


def _module(graph: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    return graph.get_submodule(node.target) if node.op == "call_module" else None


def _replace_submodule(graph: fx.GraphModule, target: str, module: nn.Module) -> None:
    parent, _, name = target.rpartition(".")
    setattr(graph.get_submodule(parent) if parent else graph, name, module)


def _drop_copies(graph: fx.GraphModule) -> None:
    """Remove ONNX Identity nodes (onnx2torch clones the tensor; v5 has 192 of them)."""
    from onnx2torch.node_converters.identity import OnnxCopyIdentity

    for node in list(graph.graph.nodes):
        if isinstance(_module(graph, node), OnnxCopyIdentity):
            node.replace_all_uses_with(node.args[0])
            graph.graph.erase_node(node)


def _freeze_batchnorms(graph: fx.GraphModule) -> None:
    for node in graph.graph.nodes:
        bn = _module(graph, node)
        if isinstance(bn, nn.BatchNorm2d):
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            shift = bn.bias - bn.running_mean * scale
            _replace_submodule(graph, node.target, ChannelAffine(scale=scale, shift=shift))


def _promote_channel_constants(graph: fx.GraphModule) -> dict[str, str]:
    """Turn learned float operands of Add/Sub/Mul/Div into parameters; return name → ``"add"``/``"mul"``.

    The exporter leaves these as buffers: v5's conv biases (1×C×1×1), the DB head's last bias
    (1×1×1×1) and v4/v5's learnable-affine scale/bias pairs (shape (1,)). Constants that come from
    decomposed activations (GELU's √2, 1, 0.5; hardswish's 3, 6) are 0-d and stay buffers.
    """
    from onnx2torch.node_converters.binary_math_operations import OnnxBinaryMathOperation

    kinds: dict[str, str] = {}
    for node in graph.graph.nodes:
        op = _module(graph, node)
        if not isinstance(op, OnnxBinaryMathOperation):
            continue
        kind = "add" if op.math_op_function in (torch.add, torch.sub) else "mul"
        for arg in node.args:
            if not isinstance(arg, fx.Node) or arg.op != "get_attr":
                continue
            owner_name, _, name = arg.target.rpartition(".")
            owner = graph.get_submodule(owner_name)
            tensor = getattr(owner, name)
            if not tensor.is_floating_point() or tensor.ndim == 0:
                continue
            if kinds.setdefault(arg.target, kind) != kind:
                raise ValueError(f"constant {arg.target} feeds both additive and multiplicative ops")
            if not isinstance(tensor, nn.Parameter):
                delattr(owner, name)
                owner.register_parameter(name, nn.Parameter(tensor.detach().clone()))
    return kinds


def _cut_outputs(graph: fx.GraphModule) -> None:
    """Make the graph return (last Concat, input of last ConvTranspose, input of final Sigmoid)."""
    from onnx2torch.node_converters.concat import OnnxConcat

    nodes = list(graph.graph.nodes)
    output = nodes[-1]
    final = output.args[0]
    if isinstance(final, tuple | list):
        if len(final) != 1:
            raise ValueError(f"expected one graph output (the probability map), found {len(final)}")
        final = final[0]
    if not isinstance(_module(graph, final), nn.Sigmoid):
        raise ValueError(f"graph output is not a Sigmoid but {final.op} {final.target}")
    logit = final.args[0]
    transposed = [n for n in nodes if isinstance(_module(graph, n), nn.ConvTranspose2d)]
    concats = [n for n in nodes if isinstance(_module(graph, n), OnnxConcat)]
    if not transposed or not concats:
        raise ValueError(
            f"not a DBNet graph: {len(transposed)} ConvTranspose2d and {len(concats)} Concat nodes"
        )
    half, quarter = transposed[-1].args[0], concats[-1]
    position = {n: i for i, n in enumerate(nodes)}
    if not position[quarter] < position[half] < position[logit]:
        raise ValueError("feature cuts are out of order: expected Concat < ConvTranspose < Sigmoid")
    output.args = ((quarter, half, logit),)
    graph.graph.eliminate_dead_code()
    graph.graph.lint()
    graph.recompile()
    graph.delete_all_unused_submodules()
    _drop_unused_attributes(graph)


def _drop_unused_attributes(graph: fx.GraphModule) -> None:
    """Delete constants only the removed sigmoid tail used, so checkpoints hold what runs."""
    holder = getattr(graph, "initializers", None)  # onnx2torch's plain module of ONNX initializers
    if not isinstance(holder, nn.Module):
        return
    used = {n.target for n in graph.graph.nodes if n.op == "get_attr"}
    names = [n for n, _ in holder.named_buffers(recurse=False)]
    names += [n for n, _ in holder.named_parameters(recurse=False)]
    for name in names:
        if f"initializers.{name}" not in used:
            delattr(holder, name)


def _probe_channels(graph: fx.GraphModule, stride: int) -> tuple[int, int]:
    # The weights' dtype, not torch's default: from_pretrained(dtype=bfloat16) builds models under a
    # bfloat16 default while the converted weights are float32.
    dtype = next(graph.parameters()).dtype
    with torch.no_grad():
        quarter, half, logit = graph(torch.zeros(1, 3, stride, stride, dtype=dtype))
    want = {"quarter": stride // 4, "half": stride // 2, "db_logit": stride}
    got = {"quarter": quarter.shape[-1], "half": half.shape[-1], "db_logit": logit.shape[-1]}
    if got != want or logit.shape[1] != 1:
        raise ValueError(f"feature cut sizes {got} (db_logit channels {logit.shape[1]}) != {want} / 1")
    return quarter.shape[1], half.shape[1]


def convert_detector(path: Path, *, stride: int) -> ConvertedDetector:
    """Convert the DBNet ONNX file at ``path`` into a trainable graph with pretrained weights."""
    from onnx2torch import convert

    graph = convert(_fix_onnx(path))
    _drop_copies(graph)
    _freeze_batchnorms(graph)
    kinds = _promote_channel_constants(graph)
    _cut_outputs(graph)
    kinds = {name: kind for name, kind in kinds.items() if name in dict(graph.named_parameters())}
    quarter_channels, half_channels = _probe_channels(graph, stride)
    return ConvertedDetector(
        graph=graph,
        quarter_channels=quarter_channels,
        half_channels=half_channels,
        channel_constants=kinds,
    )
