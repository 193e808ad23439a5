"""Activation sparsity: how many activation outputs are (near) zero, per stage of the network.

Definition. Activation sparsity at threshold t is the fraction of activation outputs a with
|a| <= t, counted over one pass of the given batches (the whole test split, as a `Batches`
without augmentation), with the model in eval mode (BatchNorm uses its running statistics) and
without gradients. Several thresholds are counted in that one pass (each output is compared with
every threshold), so a result per threshold costs no extra forward pass. An activation output is
one element of the output tensor of an activation module: a module whose type is in
`lth.models.activations.ACTIVATIONS` (nn.ReLU, nn.SiLU, nn.Mish). Every call is counted: a
forward hook fires on each call of a module, so a module called twice per forward contributes
both outputs. The count is over elements, so layers with large feature maps weigh more, as they
do in the network's compute.

Thresholds. This module declares them once: `DEFAULT_THRESHOLDS` and what each may be
(`THRESHOLD_RULE`, enforced by `check_thresholds`); the workflow's schema, `lth analyze
activations --thresholds` and the planner take theirs from here (tests/test_analysis_jobs.py
checks the schema's copy). The paper does not state its threshold, and it decides Table A1's Swish
column: Swish is smooth through 0 (SiLU(x) ~ x/2 there), so its near-zero fraction grows in
proportion to t (measured on Swish networks: about 0.016% at 1e-4, 0.16% at 1e-3, 1.6% at 1e-2,
exactly 0 at 0; 1.2-2.6% per stage at 1e-2), while ReLU's is almost all exact zeros (about 44.6% at 0
against 45.0% at 1e-2).
The paper's Swish column, 0.16-0.39% per stage, matches t = 1e-3. The default is therefore
[0, 1e-3, 1e-2]: 0 counts exact zeros only (ReLU's own sparsity, free of any choice of t), 1e-3 is
the threshold the paper's numbers imply, and 1e-2 (this project's earlier single default) shows
how far the Swish column moves with t. Counting all three costs two more comparisons per output.

Stages (`stage_groups`), each activation module in exactly one stage, in forward order:
- ResNet (18/34): `stem` (the activation after the first conv), `layer1` .. `layer4` (every
  activation inside that residual stage, block outputs included).
- VGG-16: `block1` .. `block5`, the conv-BN-activation units between consecutive max-pools
  (2, 2, 3, 3, 3 activations); block k runs at resolution H / 2^(k-1), as ResNet's layer k.
- MobileNet: `stem` (after the first conv) and `stage1` .. `stage5`, the depthwise-separable
  blocks grouped by resolution: a new stage starts at each block with a stride-2 depthwise conv
  (blocks 1 | 2-3 | 4-5 | 6-11 | 12-13, both activations of a block in its stage), so stage k runs
  at resolution H / 2^(k-1), as ResNet's layer k.
Any other model needs explicit `groups` (stage name -> activation module names).

The result is one `ActivationSparsity` per threshold, ascending: the near-zero count, the total
count and the fraction per stage and in total; `rows()` turns one into long-form CSV rows (one per
stage, then `all`, each with its threshold), so a run's CSV has one row per (threshold, stage).

This module imports torch only when it counts: the planner and `lth --help` read the thresholds'
declaration without paying for it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lth.errors import LthError

if TYPE_CHECKING:
    import torch
    from torch import nn

DEFAULT_THRESHOLDS: tuple[float, ...] = (0.0, 1e-3, 1e-2)  # why these: the module docstring
THRESHOLD_MINIMUM = 0.0  # |a| <= 0 counts exact zeros; a negative threshold would count nothing
THRESHOLD_RULE = f"a finite number >= {THRESHOLD_MINIMUM:g}"  # what check_thresholds allows, in words
TOTAL_STAGE = "all"


class ActivationSparsityError(LthError):
    """A model without a known stage grouping, bad groups or a bad threshold."""


def threshold_text(thresholds: Iterable[float]) -> str:
    """Thresholds as people write them: `0, 0.001, 0.01`."""
    return ", ".join(f"{threshold:g}" for threshold in thresholds)


def check_thresholds(values: Any, name: str = "thresholds") -> tuple[float, ...]:
    """`values` (a non-empty list of distinct numbers, each THRESHOLD_RULE) as ascending floats.

    Ascending and float, so that the same thresholds in another order or spelling (0 or 0.0) are
    the same setting: the same rows, the same analysis output. A bad value is an
    ActivationSparsityError naming it (as `name[index]`) and what is allowed.
    """
    example = f"e.g. [{threshold_text(DEFAULT_THRESHOLDS)}] (the default)"
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        raise ActivationSparsityError(
            f"{name}: {values!r} is not allowed; give a list of thresholds, each {THRESHOLD_RULE}, {example}"
        )
    values = list(values)
    if not values:
        raise ActivationSparsityError(
            f"{name}: an empty list is not allowed; give at least one threshold, each {THRESHOLD_RULE}, {example}"
        )
    seen: dict[float, int] = {}
    for index, value in enumerate(values):
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Real)
            or not math.isfinite(value)
            or value < THRESHOLD_MINIMUM
        ):
            raise ActivationSparsityError(
                f"{name}[{index}]: {value!r} is not allowed; each threshold must be {THRESHOLD_RULE}"
            )
        number = float(value) + 0.0  # -0.0 is 0.0
        if number in seen:
            first = seen[number]
            raise ActivationSparsityError(
                f"{name}[{index}]: {value!r} is not allowed; it repeats {name}[{first}] "
                f"({values[first]!r}): give each threshold once"
            )
        seen[number] = index
    return tuple(sorted(seen))


@dataclass(frozen=True)
class StageSparsity:
    stage: str
    near_zero: int  # activation outputs with |a| <= threshold
    total: int  # all activation outputs of the stage's modules, every call counted

    @property
    def fraction(self) -> float:
        return self.near_zero / self.total if self.total else math.nan


@dataclass(frozen=True)
class ActivationSparsity:
    threshold: float
    stages: tuple[StageSparsity, ...]  # in forward order

    @property
    def near_zero(self) -> int:
        return sum(stage.near_zero for stage in self.stages)

    @property
    def total(self) -> int:
        return sum(stage.total for stage in self.stages)

    @property
    def fraction(self) -> float:
        return self.near_zero / self.total if self.total else math.nan

    def stage(self, name: str) -> StageSparsity:
        for stage in self.stages:
            if stage.stage == name:
                return stage
        raise KeyError(name)

    def rows(self) -> list[dict[str, Any]]:
        """Long-form rows: one per stage, then the whole network as stage `all`."""
        everything = [*self.stages, StageSparsity(TOTAL_STAGE, self.near_zero, self.total)]
        return [
            {
                "stage": s.stage,
                "near_zero": s.near_zero,
                "total": s.total,
                "fraction": s.fraction,
                "threshold": self.threshold,
            }
            for s in everything
        ]


def activation_modules(model: nn.Module) -> list[str]:
    """Names of the model's activation modules, in registration order."""
    from lth.models.activations import ACTIVATIONS

    types = tuple(ACTIVATIONS.values())
    return [name for name, module in model.named_modules() if isinstance(module, types)]


def _under(names: Iterable[str], prefix: str) -> list[str]:
    return [name for name in names if name == prefix or name.startswith(prefix + ".")]


def stage_groups(model: nn.Module) -> dict[str, list[str]]:
    """Stage name -> activation module names, for the registry's models (see the module docstring)."""
    from torch import nn

    from lth.models.mobilenet import MobileNet
    from lth.models.resnet import ResNet
    from lth.models.vgg import VGG16

    names = activation_modules(model)
    if isinstance(model, ResNet):
        return {"stem": _under(names, "act1"), **{f"layer{k}": _under(names, f"layer{k}") for k in range(1, 5)}}
    if isinstance(model, VGG16):
        groups: dict[str, list[str]] = {}
        block = 1
        for index, layer in enumerate(model.features):
            if isinstance(layer, nn.MaxPool2d):
                block += 1  # a pool closes the block: the next unit runs at half the resolution
            else:
                groups.setdefault(f"block{block}", []).extend(_under(names, f"features.{index}"))
        return groups
    if isinstance(model, MobileNet):
        groups = {"stem": _under(names, "act1")}
        stage = 0
        for index, block in enumerate(model.layers):
            if stage == 0 or block.dw.stride != (1, 1):
                stage += 1
            groups.setdefault(f"stage{stage}", []).extend(_under(names, f"layers.{index}"))
        return groups
    raise ActivationSparsityError(
        f"model type {type(model).__name__!r} has no known stage grouping; allowed: ResNet (resnet18, "
        "resnet34), VGG16 (vgg16), MobileNet (mobilenet), or pass groups={stage: [activation module names]}"
    )


def _members(groups: Mapping[str, Sequence[str]]) -> list[str]:
    return [name for members in groups.values() for name in members]


def _check_groups(model: nn.Module, groups: Mapping[str, Sequence[str]]) -> None:
    """Every activation module in exactly one stage, nothing else: otherwise the total is not the total."""
    names = activation_modules(model)
    listed = _members(groups)
    unknown = sorted(set(listed) - set(names))
    if unknown:
        raise ActivationSparsityError(
            f"groups name {unknown[0]!r}, which is not an activation module of the model; allowed: {names}"
        )
    repeated = sorted({name for name in listed if listed.count(name) > 1})
    if repeated:
        raise ActivationSparsityError(
            f"groups list activation module {repeated[0]!r} more than once; each must be in exactly one stage"
        )
    missing = [name for name in names if name not in set(listed)]
    if missing:
        raise ActivationSparsityError(
            f"groups leave out activation module {missing[0]!r}; each must be in exactly one stage"
        )


def activation_sparsity(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    groups: Mapping[str, Sequence[str]] | None = None,
) -> tuple[ActivationSparsity, ...]:
    """Near-zero activation outputs (|a| <= t) over one pass of `batches`, per stage, for each
    threshold t of `thresholds`: one result per threshold, ascending.

    `batches` yields (inputs, labels), e.g. a `Batches` of the test split; labels are ignored. All
    thresholds are counted in the same pass. `groups` (stage -> activation module names) overrides
    `stage_groups(model)`. The model runs in eval mode under no_grad; its training flag is restored
    afterwards.
    """
    import torch

    bounds = check_thresholds(thresholds)
    groups = stage_groups(model) if groups is None else groups
    _check_groups(model, groups)
    modules = dict(model.named_modules())
    # Near-zero counts (one per threshold) accumulate on the device and are read once at the end:
    # no sync per call.
    near_zero: dict[str, torch.Tensor] = {}
    totals: dict[str, int] = dict.fromkeys(_members(groups), 0)

    def hook_for(name: str) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            magnitude = output.detach().abs()
            near = torch.stack([(magnitude <= bound).sum() for bound in bounds])
            near_zero[name] = near_zero[name] + near if name in near_zero else near
            totals[name] += output.numel()

        return hook

    handles = [modules[name].register_forward_hook(hook_for(name)) for name in _members(groups)]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            for inputs, _labels in batches:
                model(inputs)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    read = {name: [int(count) for count in counts.tolist()] for name, counts in near_zero.items()}
    unseen = [0] * len(bounds)  # a module the batches never reached
    return tuple(
        ActivationSparsity(
            bound,
            tuple(
                StageSparsity(
                    stage, sum(read.get(name, unseen)[k] for name in members), sum(totals[name] for name in members)
                )
                for stage, members in groups.items()
            ),
        )
        for k, bound in enumerate(bounds)
    )
