"""Random re-initialisation of a converted detector that still trains (the random-init ablation).

BatchNorm is folded into the convolutions of these exports, so nothing renormalises activations:
plain Kaiming init lets them grow or shrink layer by layer (residual adds, SE gates, the FPN sums).
LSUV (Mishkin & Matas, 2016) fixes that: Kaiming fan-in weights, zero biases, then each conv is
rescaled in call order so its output has unit variance on a fixed batch.
"""

from __future__ import annotations

import torch
from torch import fx, nn

from text4seg.backbone.convert import ChannelAffine

_CONVS = (nn.Conv2d, nn.ConvTranspose2d)


def _fan_in(conv: nn.Conv2d | nn.ConvTranspose2d) -> int:
    """Inputs summed into one output value (torch's own fan-in is wrong for transposed convs)."""
    kernel = conv.kernel_size[0] * conv.kernel_size[1]
    if isinstance(conv, nn.ConvTranspose2d):
        kernel = max(1, kernel // (conv.stride[0] * conv.stride[1]))
    return conv.in_channels // conv.groups * kernel


def _reset(graph: fx.GraphModule, channel_constants: dict[str, str], generator: torch.Generator) -> None:
    for module in graph.modules():
        if isinstance(module, _CONVS):
            std = (2.0 / _fan_in(module)) ** 0.5
            with torch.no_grad():
                module.weight.normal_(0.0, std, generator=generator)
                if module.bias is not None:
                    module.bias.zero_()
        elif isinstance(module, ChannelAffine):
            with torch.no_grad():
                module.scale.fill_(1.0)
                module.shift.zero_()
    params = dict(graph.named_parameters())
    with torch.no_grad():
        for name, kind in channel_constants.items():
            params[name].fill_(0.0 if kind == "add" else 1.0)


def lsuv_reinit(
    graph: fx.GraphModule,
    *,
    channel_constants: dict[str, str],
    probe: torch.Tensor,
    seed: int = 0,
) -> None:
    """Re-initialise ``graph`` in place: Kaiming-normal weights, zero biases, LSUV-rescaled convs.

    ``probe``: N×3×H×W float, the normalised input the graph normally sees (H, W multiples of 32).
    One forward pass suffices: biases are zero, so dividing a conv's weight by its output std divides
    the output by the same number, and the hook hands the rescaled output on to later layers.
    """
    generator = torch.Generator().manual_seed(seed)
    _reset(graph, channel_constants, generator)

    def rescale(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        std = output.detach().float().std()
        if not torch.isfinite(std) or std < 1e-8:
            raise ValueError(f"LSUV: {type(module).__name__} output std {float(std):.3g} on the probe batch")
        with torch.no_grad():
            module.weight.div_(std)
        return output / std

    handles = [m.register_forward_hook(rescale) for m in graph.modules() if isinstance(m, _CONVS)]
    try:
        with torch.no_grad():
            graph(probe)
    finally:
        for handle in handles:
            handle.remove()
