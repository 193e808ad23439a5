"""Masks: which weights a sparse network keeps, how magnitude pruning picks them, how training keeps them.

A mask maps parameter names to boolean tensors (True = kept). Only parameters named in a mask are
sparse; every other parameter (BatchNorm, biases, by default the classifier) stays dense.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lth.errors import LthError
from lth.hparams import PruneHparams
from lth.io import read_json, sha256_tensors, torch_save, write_json
from lth.models.skip import jump_branches

Mask = dict[str, torch.Tensor]
log = logging.getLogger(__name__)


def prunable_names(model: nn.Module, include_linear: bool = False) -> list[str]:
    """Weights pruned by default, as in the official code: every Conv2d weight (stem and 1x1
    shortcuts included); Linear weights only on request; never BatchNorm or biases; never the skip
    tweak's jump branches, which are dense additions for re-training, not part of the ticket."""
    kinds: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear) if include_linear else (nn.Conv2d,)
    jumps = tuple(f"{name}." for name in jump_branches(model))
    return [f"{name}.weight" if name else "weight" for name, module in model.named_modules()
            if isinstance(module, kinds) and not f"{name}.".startswith(jumps)]


def dense_mask(weights: Mapping[str, torch.Tensor], names: list[str]) -> Mask:
    return {name: torch.ones_like(weights[name], dtype=torch.bool) for name in names}


def remaining_after(remaining: int, rate: float, rounds: int) -> int:
    """Weights left after `rounds` rounds that each remove round(rate * remaining)."""
    for _ in range(rounds):
        remaining -= round(rate * remaining)
    return remaining


def prune(
    weights: Mapping[str, torch.Tensor],
    mask: Mask,
    hparams: PruneHparams,
    rounds: int = 1,
) -> Mask:
    """Magnitude pruning: remove the smallest-|w| remaining weights, `rounds` rounds' worth at once.

    One round (IMP) removes round(rate * remaining); OMP from a dense mask with rounds=k lands on
    exactly the count IMP has at level k. Ties are broken by position (layer order, then flat
    index) through a stable sort, so the result is deterministic.
    """
    if rounds < 0:
        raise ValueError(f"rounds: {rounds} is not allowed; must be >= 0")
    missing = sorted(set(mask) - set(weights))
    if missing:
        raise LthError(f"mask names {missing[0]!r}, which the weights do not contain")
    names = list(mask)
    groups = [names] if hparams.scope == "global" else [[name] for name in names]
    new_mask: Mask = {}
    for group in groups:
        kept = [mask[name].reshape(-1) for name in group]
        magnitudes = torch.cat([weights[name].detach().abs().reshape(-1).float().cpu()[keep.cpu()]
                                for name, keep in zip(group, kept)])
        remaining = magnitudes.numel()
        n_prune = remaining - remaining_after(remaining, hparams.rate, rounds)
        prune_flags = torch.zeros(remaining, dtype=torch.bool)
        prune_flags[torch.sort(magnitudes, stable=True).indices[:n_prune]] = True
        offset = 0
        for name, keep in zip(group, kept):
            keep = keep.cpu().clone()
            positions = keep.nonzero().squeeze(1)
            keep[positions[prune_flags[offset:offset + positions.numel()]]] = False
            offset += positions.numel()
            new_mask[name] = keep.reshape(mask[name].shape)
    return new_mask


def layer_stats(mask: Mask) -> dict[str, dict[str, Any]]:
    stats = {}
    for name, keep in mask.items():
        kept, total = int(keep.sum()), keep.numel()
        stats[name] = {"kept": kept, "total": total, "sparsity": 1 - kept / total}
    return stats


def sparsity(mask: Mask) -> float:
    total = sum(keep.numel() for keep in mask.values())
    return 1 - sum(int(keep.sum()) for keep in mask.values()) / total if total else 0.0


def mask_hash(mask: Mask) -> str:
    return sha256_tensors(mask)


def describe(mask: Mask) -> dict[str, Any]:
    """The JSON sidecar: overall and per-layer counts, collapsed layers, content hash."""
    layers = layer_stats(mask)
    kept = sum(layer["kept"] for layer in layers.values())
    total = sum(layer["total"] for layer in layers.values())
    return {
        "sparsity": 1 - kept / total if total else 0.0,
        "kept": kept,
        "total": total,
        "sha256": mask_hash(mask),
        "collapsed_layers": [name for name, layer in layers.items() if layer["kept"] == 0],
        "layers": layers,
    }


def sidecar_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def save_mask(path: str | Path, mask: Mask, provenance: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write `path` (.pt) and its JSON sidecar, each atomically; warn on layer collapse."""
    info = describe(mask)
    if info["collapsed_layers"]:
        message = f"layer collapse: every weight of {', '.join(info['collapsed_layers'])} is pruned"
        warnings.warn(message, stacklevel=2)
        log.warning(message)
    info = {"format": "lth-mask", **info, **({"provenance": dict(provenance)} if provenance else {})}
    torch_save({"format": "lth-mask", "masks": {name: keep.cpu() for name, keep in mask.items()}}, path)
    write_json(sidecar_path(path), info)
    return info


def load_mask(path: str | Path) -> Mask:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != "lth-mask":
        raise LthError(f"{path} is not an lth mask file (expected one written by `lth prune`)")
    return {name: keep.to(torch.bool) for name, keep in payload["masks"].items()}


def read_sidecar(path: str | Path) -> dict[str, Any]:
    return read_json(sidecar_path(path))


class MaskEnforcer:
    """Keeps pruned weights exactly zero: zero their gradients after backward and the weights
    themselves after every optimizer step (so momentum and weight decay cannot revive them).

    Plain foreach multiplies cost under 0.1% of a step (BENCHMARKS.md); torch.nn.utils.prune or
    parametrize would rename state_dict keys and add a reparametrisation to every forward.
    """

    def __init__(self, model: nn.Module, mask: Mask) -> None:
        params = dict(model.named_parameters())
        unknown = sorted(set(mask) - set(params))
        if unknown:
            raise LthError(f"mask names {unknown[0]!r}, which the model does not have")
        for name, keep in mask.items():
            if keep.shape != params[name].shape:
                raise LthError(f"mask {name!r} has shape {tuple(keep.shape)}, "
                                 f"the model's weight {tuple(params[name].shape)}")
        self.params = [params[name] for name in mask]
        # Same dtype, device and memory format as each weight, so the multiply is one fast kernel.
        self.factors = [torch.empty_like(p).copy_(keep) for p, keep in zip(self.params, mask.values())]

    @torch.no_grad()
    def apply_to_weights(self) -> None:
        if self.params:
            torch._foreach_mul_(self.params, self.factors)

    @torch.no_grad()
    def apply_to_grads(self) -> None:
        pairs = [(p.grad, f) for p, f in zip(self.params, self.factors) if p.grad is not None]
        if pairs:
            grads, factors = zip(*pairs)
            torch._foreach_mul_(list(grads), list(factors))
