"""GradInit (Zhu et al. 2021): learn one scale per weight and bias tensor before training.

Every weight and bias tensor of a Conv2d, Linear or BatchNorm layer becomes alpha * p0 with p0
its starting value. Each iteration draws two half-batches S0, S1 and the gradient g of the loss
on S0 u S1. If ||g|| exceeds gamma, the alphas take a step that shrinks ||g|| (a constraint
step); otherwise they take a step that lowers the loss on S0 u S2 (S2 a fresh half-batch) after
one simulated step of the chosen optimizer, theta' = theta - eta * d (an objective step). The
alphas follow Adam on their own gradients as the official RescaleAdam does (zhuchen03/gradinit,
copied unchanged into VITA-Group/ToST): each kind of step has its own first moment and step count,
the second moment and its bias correction (over all steps) are shared, and a scale never goes
below its floor.

Fidelity to the ToST code, whose README flags are the defaults (gamma 1, eta 0.1, lr 1e-2, 180
iterations, normalised SGD direction, min scale 0.01, per-scale gradient clip 1):
- `weights: dense` (default) rescales the unpruned starting weights and the mask is applied
  afterwards, as ToST's train_ticket.py does; `weights: ticket` masks g first, so the norm
  ignores pruned weights and the look-ahead never moves them (GradInit tunes the ticket itself).
- S0 u S1 is two loader batches of 128 in ToST (`batch_size: 256`); GradInit's own CIFAR script
  draws halves of batchsize / 2 (128 in all).
- BatchNorm uses batch statistics without touching its running statistics; dropout is off.
`tests/test_gradinit.py` checks the alphas and weights against a hand-written transcription of
the official update, step by step.

With these defaults a CIFAR ResNet-18 starts above gamma: on CIFAR-10 images its gradient norm at
theta0 is about 3-5 with ReLU and about 100 with the skip branches of the `at` tweak (README,
"GradInit as published"), so a run takes constraint steps until the norm falls below 1 (about 30
and 80 iterations at width 16), and objective steps only after that. Each run records how many of
each it took and its first and last gradient norm (summary.json), and warns when it took no
objective step.

The first backward pass keeps its graph for a constraint step's double backward, which
`lth.second_derivatives` makes cost about what a training step's kernels do.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from lth.data import Data
from lth.data.batches import Batches
from lth.hparams import GradinitHparams
from lth.masks import Mask
from lth.second_derivatives import native_second_derivatives

log = logging.getLogger(__name__)

SCALED_LAYERS = (nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
BETAS, EPS = (0.9, 0.999), 1e-8  # RescaleAdam's Adam constants
LOG_EVERY = 10


@dataclass
class GradinitResult:
    alphas: dict[str, float]  # per tensor; tensors that start at zero norm have none
    skipped: list[str]  # tensors with zero norm: no direction to scale
    history: list[dict[str, Any]]  # one row per iteration

    def counts(self) -> dict[str, Any]:
        return step_counts(self.history)


def step_counts(history: list[dict[str, Any]]) -> dict[str, Any]:
    """How many steps of each kind a run took, and its first and last gradient norm."""
    return {
        "objective_steps": sum(1 for row in history if row["step"] == "objective"),
        "constraint_steps": sum(1 for row in history if row["step"] == "constraint"),
        "first_gnorm": history[0]["gnorm"] if history else None,
        "last_gnorm": history[-1]["gnorm"] if history else None,
    }


@dataclass
class _Scale:
    """One tensor's alpha and its RescaleAdam state: a first moment and a step count per kind of
    step, one second moment shared by both kinds."""

    name: str
    param: nn.Parameter
    origin_norm: float
    floor: float
    alpha: float = 1.0
    steps: dict[str, int] = field(default_factory=lambda: {"constraint": 0, "objective": 0})
    first_moment: dict[str, float] = field(default_factory=lambda: {"constraint": 0.0, "objective": 0.0})
    second_moment: float = 0.0


def scaled_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The weights and biases of every Conv2d, Linear and BatchNorm layer, in module order."""
    params = {}
    for module_name, module in model.named_modules():
        if isinstance(module, SCALED_LAYERS):
            for name, param in module.named_parameters(recurse=False):
                params[f"{module_name}.{name}" if module_name else name] = param
    return params


def _half_batches(
    data: Data, size: int, device: torch.device, seed: int, channels_last: bool
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Augmented training batches without end, from a generator of GradInit's own, so that
    training's batch order does not depend on whether GradInit ran."""
    batches = Batches(
        data.train,
        size,
        data.mean,
        data.std,
        device,
        generator=torch.Generator().manual_seed(seed),
        flip=data.flip,
        crop_padding=data.crop_padding,
        channels_last=channels_last,
    )
    while True:
        yield from batches


def _step_alphas(scales: list[_Scale], grads: list[torch.Tensor | None], kind: str, hparams: GradinitHparams) -> None:
    """One Adam step on each alpha, then p <- alpha * p0.

    d loss / d alpha = <grad_p, p0> = <grad_p, p> * |p0| / |p| for p = alpha * p0.
    """
    live = [(scale, grad) for scale, grad in zip(scales, grads) if grad is not None]
    if not live:
        return
    # One device sync for all inner products and norms, not two per tensor.
    stats = torch.stack(
        [torch.stack([(grad * scale.param).sum(), scale.param.norm()]) for scale, grad in live]
    ).tolist()
    beta1, beta2 = BETAS
    for (scale, _), (inner, norm) in zip(live, stats):
        if norm == 0:  # scaled to a floor of 0: no direction is left to scale, so it stays (as RescaleAdam)
            continue
        grad = inner * scale.origin_norm / norm
        if hparams.grad_clip > 0:
            grad = max(-hparams.grad_clip, min(hparams.grad_clip, grad))
        scale.steps[kind] += 1
        # In RescaleAdam's order of operations, so that the float results are the same.
        scale.first_moment[kind] = scale.first_moment[kind] * beta1 + grad * (1 - beta1)
        scale.second_moment = scale.second_moment * beta2 + (grad * grad) * (1 - beta2)
        denom = math.sqrt(scale.second_moment / (1 - beta2 ** sum(scale.steps.values()))) + EPS
        step_size = hparams.lr / (1 - beta1 ** scale.steps[kind])
        scale.alpha = max(scale.alpha - step_size * scale.first_moment[kind] / denom, scale.floor)
        scale.param.mul_(scale.alpha * scale.origin_norm / norm)  # RescaleAdam's arithmetic, to the last bit


def gradinit(
    model: nn.Module,
    data: Data,
    mask: Mask | None,
    hparams: GradinitHparams,
    device: torch.device,
    seed: int,
    channels_last: bool = True,
) -> GradinitResult:
    """Rescale `model`'s weights in place and return the learned alphas. `mask` enters as
    `hparams.weights` says: the ticket is rescaled masked, the dense weights unmasked (the caller
    applies the mask afterwards)."""
    named = scaled_parameters(model)
    names, params = list(named), list(named.values())
    mask = (mask or {}) if hparams.weights == "ticket" else {}
    keep = [mask[name].to(device=p.device, dtype=p.dtype) if name in mask else None for name, p in named.items()]
    scales, skipped = [], []
    with torch.no_grad():
        for name, param, factor in zip(names, params, keep):
            if factor is not None:
                param.mul_(factor)
            norm = param.norm().item()
            if norm == 0:
                skipped.append(name)
                continue
            floor = 0.0 if name.endswith("bias") else hparams.min_scale
            scales.append(_Scale(name, param, norm, floor))
    batches = _half_batches(data, hparams.batch_size // 2, device, seed, channels_last)

    was_training = model.training
    norms = [m for m in model.modules() if isinstance(m, BATCH_NORMS)]
    tracking = [m.track_running_stats for m in norms]
    model.eval()  # dropout and the like off...
    for norm_layer in norms:  # ...but BatchNorm on batch statistics, leaving its running statistics alone
        norm_layer.train()
        norm_layer.track_running_stats = False
    history: list[dict[str, Any]] = []
    try:
        for iteration in range(1, hparams.iterations + 1):
            inputs0, targets0 = next(batches)
            inputs1, targets1 = next(batches)
            with native_second_derivatives(model):  # g is differentiated again by a constraint step
                loss = F.cross_entropy(model(torch.cat([inputs0, inputs1])), torch.cat([targets0, targets1]))
            grads = torch.autograd.grad(loss, params, create_graph=True)
            grads = [g if factor is None else g * factor for g, factor in zip(grads, keep)]
            if hparams.algorithm == "adam":
                gnorm = sum(g.abs().sum() for g in grads)
                directions = [g.sign() for g in grads]
            else:
                gnorm = torch.sqrt(sum(g.square().sum() for g in grads))
                directions = [g / gnorm for g in grads] if hparams.normalize_grad else grads
            gnorm_value = gnorm.item()
            objective_value = None
            if gnorm_value > hparams.gamma:
                kind, target = "constraint", gnorm
            else:
                inputs2, targets2 = next(batches)
                # The step is a constant of the alphas, as in the official code: only theta moves theta'.
                ahead = {name: p - hparams.eta * d.detach() for name, p, d in zip(names, params, directions)}
                outputs = functional_call(model, ahead, (torch.cat([inputs0, inputs2]),))
                kind, target = "objective", F.cross_entropy(outputs, torch.cat([targets0, targets2])) / hparams.eta
                objective_value = target.item()
            scale_grads = dict(zip(names, torch.autograd.grad(target, params, allow_unused=True)))
            with torch.no_grad():
                _step_alphas(scales, [scale_grads[scale.name] for scale in scales], kind, hparams)
            history.append(
                {
                    "iteration": iteration,
                    "step": kind,
                    "gnorm": gnorm_value,
                    "loss": loss.item(),
                    "objective": objective_value,
                }
            )
            if iteration % LOG_EVERY == 0 or iteration == hparams.iterations:
                _log_progress(history, hparams, scales)
    finally:
        for norm_layer, track in zip(norms, tracking):
            norm_layer.track_running_stats = track
        model.train(was_training)
    result = GradinitResult({scale.name: scale.alpha for scale in scales}, skipped, history)
    counts = result.counts()
    if counts["objective_steps"] == 0:
        log.warning(
            "gradinit took no objective step: the gradient norm stayed above gamma %g in all %d "
            "iterations (%.4g at the first, %.4g at the last), so only the norm was reduced and the "
            "look-ahead loss was never optimised",
            hparams.gamma,
            hparams.iterations,
            counts["first_gnorm"],
            counts["last_gnorm"],
        )
    return result


def _log_progress(history: list[dict[str, Any]], hparams: GradinitHparams, scales: list[_Scale]) -> None:
    row = history[-1]
    constraint_steps = sum(1 for r in history if r["step"] == "constraint")
    objective = "-" if row["objective"] is None else f"{row['objective']:.4f}"
    weights = [s.alpha for s in scales if not s.name.endswith("bias")] or [float("nan")]
    log.info(
        "gradinit %d/%d | %s step | gnorm %.4g | loss %.4f | objective %s | constraint steps %d | "
        "weight scales min %.3f mean %.3f max %.3f",
        row["iteration"],
        hparams.iterations,
        row["step"],
        row["gnorm"],
        row["loss"],
        objective,
        constraint_steps,
        min(weights),
        sum(weights) / len(weights),
        max(weights),
    )
