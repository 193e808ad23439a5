"""Injected skip connections, ToST's architecture tweak for re-training a found ticket.

A jump branch adds a transform of a layer's input to that layer's pre-activation output. The
branches are added for re-training only: they are dense and trainable, never pruned and never part
of a mask (`lth.masks.prunable_names` skips them), and a ticket's weights load into a model that
has them with only their keys missing (`lth.checkpoints.load_ticket_weights`).

Where the branches go, one rule for every architecture: from the input of a conv unit to its
pre-activation output.
- ResNet BasicBlock (ResNet-18 and -34), as the official code (skip_connection/models/
  resnet_modified.py): block input -> first BN's output, and first activation's output -> second
  BN's output, beside the block's own shortcut.
- VGG-16 (not in the official code): around every 3x3 conv-BN.
- MobileNet (not in the official code): around every depthwise-separable block, from its input to
  the pointwise BN's output, so that, as in a BasicBlock, one branch spans the block's two convs.
Where channels or resolution change across the unit, the branch's 1x1 conv and its stride absorb it.

Two forms:
- conv1x1 (the official one): 1x1 conv without bias, weights all 1e-4, then a BatchNorm at its
  default initialisation. In training mode that BN re-normalises the branch to unit variance, so
  the branch does not start near zero; this reproduces the official behaviour as it is.
- identity: parameter-free, so that the effect of the added paths can be told apart from that of
  the added weights: the identity where shapes match, else ResNet's option-A shortcut (strided
  subsampling, then zero channels appended).
"""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from lth.errors import LthError
from lth.names import SKIP_FORMS as FORMS

JUMP_WEIGHT = 1e-4  # the official constant initialisation of every jump conv weight


class JumpBranch(nn.Module):
    """Base of the jump branches; `jump_branches` finds them by this type."""


class ConvJump(JumpBranch):
    """1x1 conv (stride = the unit's stride) -> BN: the official jump branch."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
        nn.init.constant_(self.conv.weight, JUMP_WEIGHT)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class IdentityJump(JumpBranch):
    """Identity, or option A where shapes differ: every stride-th pixel, zero channels appended."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise LthError(
                f"model.skip: 'identity' cannot map {in_channels} channels to {out_channels} (a unit of this "
                "model.width shrinks channels, and zero padding only adds them); use 'conv1x1' or a larger width"
            )
        self.stride = stride
        self.extra_channels = out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            # Matches a 3x3/padding-1 or 1x1 conv of this stride: ceil(H / stride) rows are kept.
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra_channels:
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))
        return x


JumpFactory = Callable[[int, int, int], JumpBranch]
_FACTORIES: dict[str, JumpFactory] = {"conv1x1": ConvJump, "identity": IdentityJump}


def jump_factory(form: str) -> JumpFactory | None:
    """The constructor `(in_channels, out_channels, stride)` of `form`'s branches; None: none."""
    if form not in FORMS:
        raise ValueError(f"Unknown skip form {form!r}; expected one of {list(FORMS)}")
    return _FACTORIES.get(form)


def jump_branches(model: nn.Module) -> dict[str, JumpBranch]:
    """Every jump branch of `model` by qualified name (empty when the tweak is off)."""
    return {name: m for name, m in model.named_modules() if isinstance(m, JumpBranch)}


def jump_state_keys(model: nn.Module) -> set[str]:
    """State-dict keys that belong to jump branches: the only keys a ticket may lack."""
    branches = jump_branches(model).items()
    return {f"{name}.{key}" for name, branch in branches for key in branch.state_dict()}


def jump_params(model: nn.Module) -> int:
    """Parameters the jump branches add (all dense and trainable)."""
    return sum(p.numel() for branch in jump_branches(model).values() for p in branch.parameters())
