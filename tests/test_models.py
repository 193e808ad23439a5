"""Tests for the model registry and the CIFAR model zoo (tiny widths for speed)."""

import pytest
import torch
from torch import nn

from lth import models, names
from lth.models.activations import ACTIVATIONS, activation_factory
from lth.models.skip import FORMS

WIDTH = 8
NUM_CLASSES = 7
# Activation call sites: stem + 2 per BasicBlock; one per VGG conv; stem + 2 per MobileNet block.
ACTIVATION_SITES = {
    "resnet18": 1 + 2 * 8,
    "resnet34": 1 + 2 * 16,
    "vgg16": 13,
    "mobilenet": 1 + 2 * 13,
}


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def resnet18_param_count(width: int, num_classes: int) -> int:
    """Closed-form parameter count of CIFAR ResNet-18 (bias-free convs, BN affine)."""
    conv3, conv1, bn = (lambda i, o: 9 * i * o), (lambda i, o: i * o), (lambda c: 2 * c)
    total = conv3(3, width) + bn(width)
    in_planes = width
    for planes in (width, 2 * width, 4 * width, 8 * width):
        for first in (True, False):
            total += conv3(in_planes, planes) + conv3(planes, planes) + 2 * bn(planes)
            if first and in_planes != planes:
                total += conv1(in_planes, planes) + bn(planes)
            in_planes = planes
    return total + 8 * width * num_classes + num_classes


def test_registry_names() -> None:
    assert models.names() == sorted(ACTIVATION_SITES)


def test_torch_free_names_match_the_registries() -> None:
    """Configs are validated against lth.names without torch; the registries build from them."""
    assert sorted(names.MODELS) == models.names()
    assert names.ACTIVATIONS == tuple(ACTIVATIONS)
    assert names.SKIP_FORMS == FORMS


def test_registering_a_model_missing_from_the_names_fails() -> None:
    with pytest.raises(ValueError, match="lth.names.MODELS"):
        models.register("resnet1000")(nn.Linear)


@pytest.mark.parametrize("name", sorted(ACTIVATION_SITES))
@pytest.mark.parametrize("size", [32, 64])
def test_forward_shape(name: str, size: int) -> None:
    model = models.build(name, NUM_CLASSES, width=WIDTH)
    assert model(torch.randn(2, 3, size, size)).shape == (2, NUM_CLASSES)


@pytest.mark.parametrize("name", sorted(ACTIVATION_SITES))
def test_each_activation_site_is_its_own_module(name: str) -> None:
    model = models.build(name, NUM_CLASSES, width=WIDTH)
    calls: dict[nn.Module, int] = {}

    def count(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        calls[module] = calls.get(module, 0) + 1

    acts = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    for act in acts:
        act.register_forward_hook(count)
    model(torch.randn(2, 3, 32, 32))
    assert len(acts) == ACTIVATION_SITES[name]
    assert len(calls) == len(acts) and set(calls.values()) == {1}


@pytest.mark.parametrize("name", sorted(ACTIVATION_SITES))
@pytest.mark.parametrize("activation", ["swish", "mish"])
def test_activation_choice_replaces_relu(name: str, activation: str) -> None:
    model = models.build(name, NUM_CLASSES, width=WIDTH, activation=activation)
    kinds = [type(m) for m in model.modules()]
    assert nn.ReLU not in kinds
    assert kinds.count(ACTIVATIONS[activation]) == ACTIVATION_SITES[name]


def test_activation_factory_returns_fresh_instances() -> None:
    make = activation_factory("relu")
    assert make() is not make()
    assert not make().inplace


def test_unknown_model_raises() -> None:
    with pytest.raises(ValueError, match=r"'resnet99'.*mobilenet.*resnet18.*resnet34.*vgg16"):
        models.build("resnet99", NUM_CLASSES)


def test_unknown_activation_raises() -> None:
    with pytest.raises(ValueError, match=r"'gelu'.*mish.*relu.*swish"):
        models.build("resnet18", NUM_CLASSES, activation="gelu")
    with pytest.raises(ValueError, match=r"'gelu'"):
        activation_factory("gelu")


@pytest.mark.parametrize("width", [0, -8, 2.5])
def test_invalid_width_raises(width: object) -> None:
    with pytest.raises(ValueError, match="width"):
        models.build("resnet18", NUM_CLASSES, width=width)  # type: ignore[arg-type]


@pytest.mark.parametrize("width", [8, 16, 64])
def test_resnet18_param_count(width: int) -> None:
    assert num_params(models.build("resnet18", 10, width=width)) == resnet18_param_count(width, 10)


def test_resnet18_standard_param_count() -> None:
    assert num_params(models.build("resnet18", 10)) == 11_173_962


def test_channels_last_matches_contiguous() -> None:
    torch.manual_seed(0)
    model = models.build("resnet18", NUM_CLASSES, width=WIDTH).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        model = model.to(memory_format=torch.channels_last)
        actual = model(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)
