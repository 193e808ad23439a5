"""Activation sparsity: exact counts on crafted inputs, every call counted, stage groupings complete."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lth import models
from lth.analysis.activations import (
    ActivationSparsityError,
    activation_modules,
    activation_sparsity,
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
    result = activation_sparsity(model, batches_of(x) + batches_of(x[:1]), groups={"only": ["0"]})
    assert (result.stage("only").near_zero, result.stage("only").total) == (3 * 4, 3 * 7)
    assert result.fraction == 4 / 7
    # SiLU(relu(x) - 0.5): near zero only where relu(x) - 0.5 is, i.e. x = 0.5 (SiLU(0) = 0).
    result = activation_sparsity(TwoStages(), batches_of(VALUES[None]), groups={"a": ["first"], "b": ["second"]})
    assert [(s.stage, s.near_zero, s.total) for s in result.stages] == [("a", 4, 7), ("b", 1, 7)]
    assert (result.near_zero, result.total) == (5, 14)
    assert result.rows()[-1] == {"stage": "all", "near_zero": 5, "total": 14, "fraction": 5 / 14, "threshold": 0.01}


def test_threshold_is_configurable():
    result = activation_sparsity(nn.Sequential(nn.ReLU()), batches_of(VALUES[None]), threshold=0.1,
                                 groups={"only": ["0"]})
    assert result.near_zero == 5  # 0.02 now counts too
    assert result.threshold == 0.1


def test_a_module_called_twice_is_counted_twice():
    model = CalledTwice()
    result = activation_sparsity(model, batches_of(VALUES[None]), groups={"all": ["act"]})
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
    batches = Batches(digits_data.test, 100, digits_data.mean, digits_data.std, torch.device("cpu"),
                      channels_last=False)
    seen: dict[str, int] = {}
    for name in activation_modules(model):
        module = model.get_submodule(name)
        module.register_forward_hook(lambda _m, _i, out, name=name: seen.__setitem__(name, seen.get(name, 0)
                                                                                    + out.numel()))
    result = activation_sparsity(model, batches)
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
    with pytest.raises(ActivationSparsityError, match="threshold -1"):
        activation_sparsity(nn.Sequential(nn.ReLU()), [], threshold=-1, groups={"a": ["0"]})
    with pytest.raises(ActivationSparsityError, match="leave out activation module '1'"):
        activation_sparsity(nn.Sequential(nn.ReLU(), nn.ReLU()), [], groups={"a": ["0"]})
    with pytest.raises(ActivationSparsityError, match="'nope'"):
        activation_sparsity(nn.Sequential(nn.ReLU()), [], groups={"a": ["0", "nope"]})
