"""Second derivatives through convolutions and BatchNorm at the speed of a training step.

Autograd differentiates a gradient (a double backward: Hessian-vector products, GradInit's
gradient-norm step) through general formulas that are several times slower on the CPU than the
kernels of a training step: a convolution's weight term becomes a convolution over the batch
dimension, and BatchNorm's double backward is a long composite of elementwise passes. Inside
`native_second_derivatives(model)`, nn.Conv2d and nn.BatchNorm2d modules compute the same
function by routes whose derivatives of derivatives are fast:
- a convolution's gradients are taken by the `convolution_backward` kernel of a training step, and
  differentiated again by that kernel and the forward convolution (`_ConvGradients`): all three
  gradients are bilinear in (grad_output, input or weight);
- BatchNorm in eval mode is the per-channel affine map of its running statistics that it is;
- BatchNorm on batch statistics without running statistics (GradInit's mode) is written out in
  plain tensor operations (mean, variance, normalise, scale, shift), whose second derivatives are
  cheap elementwise passes.
The results equal autograd's own up to float rounding (tests/test_second_derivatives.py).
`python bench/analysis.py hvp` and `python bench/training.py gradinit` time them.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class _ConvGradients(torch.autograd.Function):
    """A convolution's (grad_input, grad_weight, grad_bias) by the kernel a training step uses,
    differentiated by that kernel and the forward convolution again: all three are bilinear in
    (grad_output, input or weight). Autograd's own double backward of a convolution computes the
    weight term as a convolution over the batch dimension, several times slower on the CPU."""

    @staticmethod
    def forward(
        ctx: Any,
        grad_out: torch.Tensor,
        inputs: torch.Tensor,
        weight: torch.Tensor,
        has_bias: bool,
        geometry: tuple[list[int], list[int], list[int], int],
        input_grad: bool,
    ) -> tuple[Any, ...]:
        ctx.save_for_backward(grad_out, inputs, weight)
        ctx.geometry = geometry
        stride, padding, dilation, groups = geometry
        return torch.ops.aten.convolution_backward(
            grad_out,
            inputs,
            weight,
            [weight.shape[0]] if has_bias else None,
            stride,
            padding,
            dilation,
            False,
            [0, 0],
            groups,
            [input_grad, True, has_bias],
        )

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(
        ctx: Any,
        grad_grad_input: torch.Tensor | None,
        grad_grad_weight: torch.Tensor | None,
        grad_grad_bias: torch.Tensor | None,
    ) -> tuple[torch.Tensor | None, ...]:
        grad_out, inputs, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.geometry
        terms = []  # d/d grad_out of <grad_grad_input, gI> + <grad_grad_weight, gW> + <grad_grad_bias, gB>
        if ctx.needs_input_grad[0] and grad_grad_input is not None:
            terms.append(F.conv2d(grad_grad_input, weight, None, stride, padding, dilation, groups))
        if ctx.needs_input_grad[0] and grad_grad_weight is not None:
            terms.append(F.conv2d(inputs, grad_grad_weight, None, stride, padding, dilation, groups))
        if ctx.needs_input_grad[0] and grad_grad_bias is not None:
            terms.append(grad_grad_bias.view(1, -1, 1, 1).expand_as(grad_out))
        d_grad_out = sum(terms[1:], terms[0]) if terms else None
        d_inputs = d_weight = None
        if ctx.needs_input_grad[1] and grad_grad_weight is not None:
            d_inputs = torch.ops.aten.convolution_backward(
                grad_out,
                inputs,
                grad_grad_weight,
                None,
                stride,
                padding,
                dilation,
                False,
                [0, 0],
                groups,
                [True, False, False],
            )[0]
        if ctx.needs_input_grad[2] and grad_grad_input is not None:
            d_weight = torch.ops.aten.convolution_backward(
                grad_out,
                grad_grad_input,
                weight,
                None,
                stride,
                padding,
                dilation,
                False,
                [0, 0],
                groups,
                [False, True, False],
            )[1]
        return d_grad_out, d_inputs, d_weight, None, None, None


class _Conv2d(torch.autograd.Function):
    """F.conv2d (the same forward kernel) whose backward is `_ConvGradients`."""

    @staticmethod
    def forward(
        ctx: Any,
        inputs: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        geometry: tuple[list[int], list[int], list[int], int],
    ) -> torch.Tensor:
        ctx.save_for_backward(inputs, weight)
        ctx.geometry, ctx.has_bias = geometry, bias is not None
        return F.conv2d(inputs, weight, bias, *geometry)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        inputs, weight = ctx.saved_tensors
        grads = _ConvGradients.apply(grad_out, inputs, weight, ctx.has_bias, ctx.geometry, ctx.needs_input_grad[0])
        return grads[0], grads[1], grads[2], None


def _conv_forward(module: nn.Conv2d, inputs: torch.Tensor) -> torch.Tensor:
    geometry = (list(module.stride), list(module.padding), list(module.dilation), module.groups)
    return _Conv2d.apply(inputs, module.weight, module.bias, geometry)


def _batch_norm_forward(module: nn.BatchNorm2d, inputs: torch.Tensor) -> torch.Tensor:
    # Eval mode: a per-channel affine map of constants (the running statistics) and the parameters.
    scale = torch.rsqrt(module.running_var + module.eps)
    shift = -module.running_mean * scale
    if module.weight is not None:
        scale = scale * module.weight
        shift = shift * module.weight
    if module.bias is not None:
        shift = shift + module.bias
    return inputs * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)


def _batch_statistics_forward(module: nn.BatchNorm2d, inputs: torch.Tensor) -> torch.Tensor:
    # Training mode without running statistics: normalised by the batch's mean and biased variance,
    # as F.batch_norm is.
    dims = (0, 2, 3)
    centred = inputs - inputs.mean(dims, keepdim=True)
    scale = torch.rsqrt(centred.square().mean(dims, keepdim=True) + module.eps)
    if module.weight is not None:
        scale = scale * module.weight.view(1, -1, 1, 1)
    outputs = centred * scale
    return outputs + module.bias.view(1, -1, 1, 1) if module.bias is not None else outputs


@contextmanager
def native_second_derivatives(model: nn.Module) -> Iterator[None]:
    """While inside, `model`'s nn.Conv2d and nn.BatchNorm2d modules (in eval mode, or on batch
    statistics without running statistics) compute the same function by the routes of the module
    docstring. Other modules, and these in other configurations (BatchNorm updating its running
    statistics), are left to autograd."""
    patched = []
    for module in model.modules():
        if "forward" in vars(module):  # the model set its own: leave it alone
            continue
        if type(module) is nn.Conv2d and module.padding_mode == "zeros" and not isinstance(module.padding, str):
            module.forward = types.MethodType(_conv_forward, module)
        elif type(module) is nn.BatchNorm2d and not module.training and module.running_var is not None:
            module.forward = types.MethodType(_batch_norm_forward, module)
        elif type(module) is nn.BatchNorm2d and module.training and not module.track_running_stats:
            module.forward = types.MethodType(_batch_statistics_forward, module)
        else:
            continue
        patched.append(module)
    try:
        yield
    finally:
        for module in patched:
            del module.forward
