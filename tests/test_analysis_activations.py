"""Activation sparsity: exact counts on crafted inputs, every threshold in one pass, every call
counted, stage groupings complete, bad thresholds refused."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from torch import nn

from lth import models
from lth.analysis.activations import (
    DEFAULT_THRESHOLDS,
    ActivationSparsityError,
    activation_modules,
    activation_sparsity,
    check_thresholds,
    stage_groups,
)
from lth.data.batches import Batches
from lth.errors import LthError

pytestmark = pytest.mark.usefixtures("one_thread")

# Inputs whose ReLU outputs straddle the 1e-2 threshold: 0, 0, 0, 0.005 are near zero (|a| <= 0.01);
# 0.02, 0.5, 3.0 are not. 0.01 itself is avoided: float32 rounding at the boundary is not the point.
VALUES = torch.tensor([-2.0, -0.3, 0.0, 0.005, 0.02, 0.5, 3.0])


class TwoStages(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = nn.ReLU()
        self.second = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x) - 0.5)


class CalledTwice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.act(x) - 1.0)


def batches_of(x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x, torch.zeros(len(x), dtype=torch.long))]


def test_crafted_input_gives_exact_counts():
    x = VALUES.repeat(2, 1)  # 3 rows over two batches below: counts must add up across batches
    model = nn.Sequential(nn.ReLU())
    (result,) = activation_sparsity(model, batches_of(x) + batches_of(x[:1]), [0.01], groups={"only": ["0"]})
    assert (result.stage("only").near_zero, result.stage("only").total) == (3 * 4, 3 * 7)
    assert result.fraction == 4 / 7
    # SiLU(relu(x) - 0.5): near zero only where relu(x) - 0.5 is, i.e. x = 0.5 (SiLU(0) = 0).
    (result,) = activation_sparsity(
        TwoStages(), batches_of(VALUES[None]), [0.01], groups={"a": ["first"], "b": ["second"]}
    )
    assert [(s.stage, s.near_zero, s.total) for s in result.stages] == [("a", 4, 7), ("b", 1, 7)]
    assert (result.near_zero, result.total) == (5, 14)
    assert result.rows()[-1] == {"stage": "all", "near_zero": 5, "total": 14, "fraction": 5 / 14, "threshold": 0.01}


def test_every_threshold_is_counted_in_one_pass_and_0_counts_exact_zeros():
    model = nn.Sequential(nn.ReLU())
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))
    results = activation_sparsity(model, batches_of(VALUES[None]), [0.1, 0, 0.01], groups={"only": ["0"]})
    assert len(calls) == 1  # one forward pass for all three thresholds
    # relu(VALUES) = 0, 0, 0, 0.005, 0.02, 0.5, 3: three exact zeros, 0.005 within 0.01, 0.02 within 0.1.
    assert [(r.threshold, r.near_zero, r.total) for r in results] == [(0.0, 3, 7), (0.01, 4, 7), (0.1, 5, 7)]
    rows = [row for result in results for row in result.rows()]
    assert [(row["threshold"], row["stage"]) for row in rows] == [
        (t, s) for t in (0.0, 0.01, 0.1) for s in ("only", "all")
    ]


@pytest.mark.parametrize("activation", ["relu", "swish"])
def test_one_pass_over_several_thresholds_equals_one_pass_per_threshold(activation):
    torch.manual_seed(0)
    model = models.build("resnet18", num_classes=10, width=4, activation=activation)
    batches = [(torch.randn(8, 3, 16, 16), torch.zeros(8, dtype=torch.long)) for _ in range(2)]
    together = activation_sparsity(model, batches, DEFAULT_THRESHOLDS)
    alone = [result for threshold in DEFAULT_THRESHOLDS for result in activation_sparsity(model, batches, [threshold])]
    assert together == tuple(alone)
    assert [result.threshold for result in together] == [0.0, 1e-3, 1e-2]
    fractions = [result.fraction for result in together]
    assert fractions == sorted(fractions) and 0 < fractions[-1] < 1  # a larger threshold counts more
    if activation == "swish":
        assert together[0].near_zero == 0  # SiLU is exactly 0 only at 0


def test_a_module_called_twice_is_counted_twice():
    model = CalledTwice()
    (result,) = activation_sparsity(model, batches_of(VALUES[None]), [0.01], groups={"all": ["act"]})
    # First call: relu(x) -> 4 near zero. Second: relu(relu(x) - 1) = [0,0,0,0,0,0,2] -> 6 near zero.
    assert (result.near_zero, result.total) == (4 + 6, 2 * 7)
    assert not model.act._forward_hooks  # hooks removed afterwards


EXPECTED_STAGES = {
    "resnet18": {"stem": 1, "layer1": 4, "layer2": 4, "layer3": 4, "layer4": 4},
    "vgg16": {"block1": 2, "block2": 2, "block3": 3, "block4": 3, "block5": 3},
    "mobilenet": {"stem": 1, "stage1": 2, "stage2": 4, "stage3": 4, "stage4": 12, "stage5": 4},
}


@pytest.mark.parametrize("name", sorted(EXPECTED_STAGES))
@pytest.mark.parametrize("skip", ["none", "conv1x1"])
def test_stage_grouping_covers_every_activation_once(name: str, skip: str):
    model = models.build(name, num_classes=10, width=4, activation="swish", skip=skip)
    groups = stage_groups(model)
    assert {stage: len(members) for stage, members in groups.items()} == EXPECTED_STAGES[name]
    listed = [module for members in groups.values() for module in members]
    assert sorted(listed) == sorted(activation_modules(model))
    assert len(set(listed)) == len(listed)


def test_resnet_totals_match_every_activation_output(digits_data):
    model = models.build("resnet18", num_classes=10, width=4)
    model.train()
    batches = Batches(
        digits_data.test, 100, digits_data.mean, digits_data.std, torch.device("cpu"), channels_last=False
    )
    seen: dict[str, int] = {}
    for name in activation_modules(model):
        module = model.get_submodule(name)
        module.register_forward_hook(
            lambda _m, _i, out, name=name: seen.__setitem__(name, seen.get(name, 0) + out.numel())
        )
    (result,) = activation_sparsity(model, batches, [0.01])
    assert model.training  # restored
    groups = stage_groups(model)
    for stage in result.stages:
        assert stage.total == sum(seen[name] for name in groups[stage.stage])
        assert 0 < stage.near_zero < stage.total
    assert result.total == sum(seen.values())
    assert [row["stage"] for row in result.rows()] == ["stem", "layer1", "layer2", "layer3", "layer4", "all"]


def test_user_errors_name_the_value():
    with pytest.raises(ActivationSparsityError, match="'Sequential'.*allowed"):
        stage_groups(nn.Sequential(nn.ReLU()))
    assert issubclass(ActivationSparsityError, LthError)
    with pytest.raises(ActivationSparsityError, match=r"thresholds\[0\]: -1 is not allowed.*finite number >= 0"):
        activation_sparsity(nn.Sequential(nn.ReLU()), [], [-1], groups={"a": ["0"]})
    with pytest.raises(ActivationSparsityError, match="leave out activation module '1'"):
        activation_sparsity(nn.Sequential(nn.ReLU(), nn.ReLU()), [], groups={"a": ["0"]})
    with pytest.raises(ActivationSparsityError, match="'nope'"):
        activation_sparsity(nn.Sequential(nn.ReLU()), [], groups={"a": ["0", "nope"]})


@pytest.mark.parametrize(
    "values, message",
    [
        ([], "thresholds: an empty list is not allowed; give at least one threshold, each a finite number >= 0"),
        ([0.01, -0.5], r"thresholds\[1\]: -0.5 is not allowed; each threshold must be a finite number >= 0"),
        ([math.nan], r"thresholds\[0\]: nan is not allowed"),
        ([math.inf], r"thresholds\[0\]: inf is not allowed"),
        (["0.01"], r"thresholds\[0\]: '0.01' is not allowed"),
        ([True], r"thresholds\[0\]: True is not allowed"),
        ([0, 0.01, 0.0], r"thresholds\[2\]: 0.0 is not allowed; it repeats thresholds\[0\] \(0\)"),
        (0.01, r"thresholds: 0.01 is not allowed; give a list of thresholds.*e.g. \[0, 0.001, 0.01\]"),
        ("0.01", r"thresholds: '0.01' is not allowed; give a list"),
    ],
)
def test_bad_thresholds_are_refused_naming_the_value_and_what_is_allowed(values, message):
    with pytest.raises(ActivationSparsityError, match=message):
        check_thresholds(values)


def test_thresholds_are_one_setting_whatever_their_order_or_spelling():
    assert check_thresholds([0.01, 0, 1e-3]) == check_thresholds([0.0, 0.001, 0.01]) == (0.0, 0.001, 0.01)
    assert check_thresholds([-0.0]) == (0.0,) and str(check_thresholds([-0.0])[0]) == "0.0"


def test_the_thresholds_declaration_imports_without_torch():
    """The planner (the Snakefile) and `lth --help` read DEFAULT_THRESHOLDS; neither loads torch."""
    code = "import sys, lth.analysis.activations, lth.plan.analyses; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
