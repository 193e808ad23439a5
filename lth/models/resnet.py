"""ResNet for CIFAR (He et al. 2016): 3x3 stem, no max-pool, four stages."""

from collections.abc import Callable, Sequence
from typing import ClassVar

import torch
from torch import nn

from lth.models import register, scale_channels
from lth.models.skip import JumpFactory


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus a shortcut, followed by the output activation.

    With the skip tweak, as the official code: ``jump1`` runs from the block input to the first
    BN's output and ``jump2`` from the first activation's output to the second BN's output.
    """

    def __init__(
        self,
        in_planes: int,
        planes: int,
        stride: int,
        activation: Callable[[], nn.Module],
        jump: JumpFactory | None,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = activation()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = activation()
        # An empty Sequential is the identity, so forward needs no special case.
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
        self.jump1 = jump(in_planes, planes, stride) if jump else None
        self.jump2 = jump(planes, planes, 1) if jump else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn1(self.conv1(x))
        if self.jump1 is not None:
            out = out + self.jump1(x)
        hidden = self.act1(out)
        out = self.bn2(self.conv2(hidden)) + self.shortcut(x)
        if self.jump2 is not None:
            out = out + self.jump2(hidden)
        return self.act2(out)


class ResNet(nn.Module):
    """CIFAR ResNet built from BasicBlocks; a subclass sets ``block_counts``, the blocks per stage."""

    block_counts: ClassVar[Sequence[int]]

    def __init__(
        self,
        num_classes: int,
        width: int,
        activation: Callable[[], nn.Module],
        jump: JumpFactory | None,
    ) -> None:
        super().__init__()
        stem_planes = scale_channels(64, width)
        self.conv1 = nn.Conv2d(3, stem_planes, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_planes)
        self.act1 = activation()

        in_planes = stem_planes
        stages = []
        stage_specs = zip((64, 128, 256, 512), self.block_counts, (1, 2, 2, 2), strict=True)
        for base, count, stride in stage_specs:
            planes = scale_channels(base, width)
            blocks = []
            for i in range(count):
                block_stride = stride if i == 0 else 1
                blocks.append(BasicBlock(in_planes, planes, block_stride, activation, jump))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages

        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.fc(torch.flatten(self.avgpool(out), 1))


@register("resnet18")
class ResNet18(ResNet):
    block_counts = (2, 2, 2, 2)


@register("resnet34")
class ResNet34(ResNet):
    block_counts = (3, 4, 6, 3)
