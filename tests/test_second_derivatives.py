"""Second derivatives by `native_second_derivatives` equal autograd's own, for BatchNorm on batch
statistics (GradInit's mode): the gradient of the gradient norm, as a GradInit constraint step takes
it. (Eval-mode BatchNorm and convolutions: tests/test_analysis_hessian.py.)"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lth.second_derivatives import native_second_derivatives


def gradient_of_gradient_norm(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> list[torch.Tensor]:
    params = list(model.parameters())
    grads = torch.autograd.grad(F.cross_entropy(model(inputs), labels), params, create_graph=True)
    return list(torch.autograd.grad(torch.sqrt(sum(g.square().sum() for g in grads)), params))


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_batch_statistics_batchnorm_and_convolutions_match_autograd(memory_format, one_thread):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.BatchNorm2d(8, affine=False),
        nn.SiLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 10),
    ).to(memory_format=memory_format)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.track_running_stats = False  # as GradInit runs it: batch statistics, running ones untouched
    with torch.no_grad():
        model[1].weight.uniform_(0.5, 1.5)
        model[1].bias.uniform_(-0.5, 0.5)
    inputs = torch.randn(16, 3, 8, 8).contiguous(memory_format=memory_format)
    labels = torch.randint(0, 10, (16,))
    expected = gradient_of_gradient_norm(model, inputs, labels)
    with native_second_derivatives(model):
        patched = [type(module) for module in model.modules() if "forward" in vars(module)]
        got = gradient_of_gradient_norm(model, inputs, labels)
    assert patched == [nn.Conv2d, nn.BatchNorm2d, nn.Conv2d, nn.BatchNorm2d]
    assert all("forward" not in vars(module) for module in model.modules())  # the modules are restored
    scale = max(float(e.abs().max()) for e in expected)
    for want, have in zip(expected, got, strict=True):
        assert torch.allclose(have, want, rtol=1e-4, atol=1e-5 * scale)


def test_batchnorm_that_updates_running_statistics_is_left_to_autograd():
    model = nn.Sequential(nn.BatchNorm2d(4)).train()
    with native_second_derivatives(model):
        assert "forward" not in vars(model[0])
