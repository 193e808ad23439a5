"""Forward FLOPs per image of the network actually trained: dense, and with pruned weights skipped."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class LayerFlops:
    """Forward FLOPs per image: the whole network's (`dense`, every weight counted) and each Conv2d and
    Linear weight's share of it, by parameter name."""

    dense: int
    layers: dict[str, int]

    def forward(self, mask: Mapping[str, torch.Tensor]) -> float:
        """FLOPs with the weights `mask` drops skipped, each masked layer's share scaled by its density."""
        return self.dense - sum(self.layers[name] * (1 - int(keep.sum()) / keep.numel()) for name, keep in mask.items())

    def training(self, images: int, forward: float, dense_gradient: bool = False) -> float:
        """FLOPs of training on `images` images with forward FLOPs `forward` (f_S), as the RigL paper
        counts them: 3 f_S per image (forward, and backward at twice its cost), and f_D - f_S more on a
        step that needs the dense gradient (RigL's update steps)."""
        return images * (3 * forward + (self.dense - forward if dense_gradient else 0))


@torch.no_grad()
def layer_flops(model: nn.Module, input_shape: Sequence[int]) -> LayerFlops:
    """What FlopCounterMode counts for one forward pass on one image of shape `input_shape` (C, H, W),
    2 per multiply-add (convolutions and matrix products), in total and per Conv2d or Linear weight."""
    layers = {name: m for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    counter = FlopCounterMode(display=False)
    flops = dict.fromkeys(layers.values(), 0)
    started: dict[nn.Module, int] = {}

    # Reading the counter's running total around each layer attributes FLOPs to layers without
    # relying on how FlopCounterMode names modules.
    def before(module: nn.Module, args: tuple) -> None:
        started[module] = counter.get_total_flops()

    def after(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        flops[module] += counter.get_total_flops() - started.pop(module)

    hooks = [
        hook
        for layer in layers.values()
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
    return LayerFlops(
        counter.get_total_flops(), {f"{name}.weight" if name else "weight": flops[m] for name, m in layers.items()}
    )


def forward_flops(model: nn.Module, input_shape: Sequence[int], counted: LayerFlops | None = None) -> dict[str, int]:
    """FLOPs of one forward pass on one image of shape `input_shape` (C, H, W), 2 per multiply-add.

    `forward_flops` is what FlopCounterMode counts (convolutions and matrix products, as if every
    weight were nonzero). `forward_flops_effective` scales each Conv2d and Linear layer's share by
    its weight's density (nonzero / total), so a masked layer costs what a sparse kernel would pay;
    any counted FLOPs outside those layers stay as they are. `counted`: layer_flops' count of this
    model, when already made.
    """
    counted = counted or layer_flops(model, input_shape)
    params = dict(model.named_parameters())
    nonzero = {name: params[name].detach() != 0 for name in counted.layers}
    return {"forward_flops": counted.dense, "forward_flops_effective": round(counted.forward(nonzero))}
