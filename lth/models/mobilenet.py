"""MobileNet v1 for CIFAR (stride-1 stem, as in kuangliu/pytorch-cifar)."""

from collections.abc import Callable

import torch
from torch import nn

from lth.models import register, scale_channels
from lth.models.skip import JumpFactory

# Pointwise output channels at width 64; a tuple (channels, stride) downsamples.
MOBILENET_CFG: list[int | tuple[int, int]] = [
    64, (128, 2), 128, (256, 2), 256, (512, 2), 512, 512, 512, 512, 512, (1024, 2), 1024,
]  # fmt: skip


class DepthwiseSeparable(nn.Module):
    """Depthwise 3x3 conv -> BN -> act, then pointwise 1x1 conv -> BN -> act.

    With the skip tweak (our extension; the official code has no MobileNet variant), ``jump`` runs
    from the block input to the pointwise BN's output; its 1x1 conv and stride absorb the block's
    change of channel count and resolution.
    """

    def __init__(
        self,
        in_planes: int,
        out_planes: int,
        stride: int,
        activation: Callable[[], nn.Module],
        jump: JumpFactory | None,
    ) -> None:
        super().__init__()
        self.dw = nn.Conv2d(in_planes, in_planes, 3, stride=stride, padding=1, groups=in_planes, bias=False)
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.act1 = activation()
        self.pw = nn.Conv2d(in_planes, out_planes, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.act2 = activation()
        self.jump = jump(in_planes, out_planes, stride) if jump else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.pw(self.act1(self.bn1(self.dw(x)))))
        if self.jump is not None:
            out = out + self.jump(x)
        return self.act2(out)


@register("mobilenet")
class MobileNet(nn.Module):
    """MobileNet v1; ``width`` scales every channel count by ``width / 64``."""

    def __init__(
        self,
        num_classes: int,
        width: int,
        activation: Callable[[], nn.Module],
        jump: JumpFactory | None,
    ) -> None:
        super().__init__()
        in_planes = scale_channels(32, width)
        self.conv1 = nn.Conv2d(3, in_planes, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.act1 = activation()

        blocks = []
        for item in MOBILENET_CFG:
            channels, stride = item if isinstance(item, tuple) else (item, 1)
            out_planes = scale_channels(channels, width)
            blocks.append(DepthwiseSeparable(in_planes, out_planes, stride, activation, jump))
            in_planes = out_planes
        self.layers = nn.Sequential(*blocks)

        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(self.act1(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(self.avgpool(out), 1))
