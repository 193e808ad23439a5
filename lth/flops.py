"""Forward FLOPs per image of the network actually trained: dense, and with pruned weights skipped."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@torch.no_grad()
def forward_flops(model: nn.Module, input_shape: Sequence[int]) -> dict[str, int]:
    """FLOPs of one forward pass on one image of shape `input_shape` (C, H, W), 2 per multiply-add.

    `forward_flops` is what FlopCounterMode counts (convolutions and matrix products, as if every
    weight were nonzero). `forward_flops_effective` scales each Conv2d and Linear layer's share by
    its weight's density (nonzero / total), so a masked layer costs what a sparse kernel would pay;
    any counted FLOPs outside those layers stay as they are.
    """
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    counter = FlopCounterMode(display=False)
    layer_flops = dict.fromkeys(layers, 0)
    started: dict[nn.Module, int] = {}

    # Reading the counter's running total around each layer attributes FLOPs to layers without
    # relying on how FlopCounterMode names modules.
    def before(module: nn.Module, args: tuple) -> None:
        started[module] = counter.get_total_flops()

    def after(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        layer_flops[module] += counter.get_total_flops() - started.pop(module)

    hooks = [
        hook
        for layer in layers
        for hook in (layer.register_forward_pre_hook(before), layer.register_forward_hook(after))
    ]
    reference = next(model.parameters())
    image = torch.zeros(1, *input_shape, device=reference.device, dtype=reference.dtype)
    was_training = model.training
    model.eval()  # BatchNorm must not fold this probe image into its running statistics
    try:
        with counter:
            model(image)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    total = counter.get_total_flops()
    skipped = sum(
        flops * (1 - int(layer.weight.count_nonzero()) / layer.weight.numel()) for layer, flops in layer_flops.items()
    )
    return {"forward_flops": total, "forward_flops_effective": round(total - skipped)}
