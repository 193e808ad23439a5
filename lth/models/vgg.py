"""VGG-16 with BatchNorm, CIFAR style: global average pooling and one linear classifier."""

from collections.abc import Callable

import torch
from torch import nn

from lth.models import register, scale_channels
from lth.models.skip import JumpFactory

# "M" marks a 2x2 max-pool; integers are 3x3 conv output channels at width 64.
VGG16_CFG: list[int | str] = [
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
]  # fmt: skip


class ConvBNAct(nn.Module):
    """3x3 conv -> BN -> activation, kept as one unit so it can be addressed or wrapped.

    With the skip tweak (our extension; the official code has no VGG variant), ``jump`` runs from
    the conv's input to the BN's output; its 1x1 conv absorbs the change of channel count.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        activation: Callable[[], nn.Module],
        jump: JumpFactory | None,
    ) -> None:
        super().__init__()
        # No conv bias: the following BN's shift makes it redundant.
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = activation()
        self.jump = jump(in_channels, out_channels, 1) if jump else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn(self.conv(x))
        if self.jump is not None:
            out = out + self.jump(x)
        return self.act(out)


@register("vgg16")
class VGG16(nn.Module):
    """VGG-16-BN; ``width`` scales every conv's channel count by ``width / 64``."""

    def __init__(
        self,
        num_classes: int,
        width: int,
        activation: Callable[[], nn.Module],
        jump: JumpFactory | None,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for item in VGG16_CFG:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                out_channels = scale_channels(item, width)
                layers.append(ConvBNAct(in_channels, out_channels, activation, jump))
                in_channels = out_channels
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))
