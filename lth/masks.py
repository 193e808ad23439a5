"""Masks: which weights a sparse network keeps, how magnitude pruning picks them, how training keeps them.

A mask maps parameter names to boolean tensors (True = kept). Only parameters named in a mask are
sparse; every other parameter (BatchNorm, biases, by default the classifier) stays dense.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lth.errors import LthError
from lth.hparams import PruneHparams
from lth.io import IntegrityError, load_verified, read_sealed_json, save_verified, sha256_tensors, write_sealed_json
from lth.models.skip import jump_branches

Mask = dict[str, torch.Tensor]
log = logging.getLogger(__name__)
FORMAT = "lth-mask"
WHAT = "an lth mask (written by `lth prune`)"
FIX = "rerun the `lth prune` that wrote it (with --force) to rewrite the mask and its sidecar"


def prunable_names(model: nn.Module, include_linear: bool = False) -> list[str]:
    """Weights pruned by default, as in the official code: every Conv2d weight (stem and 1x1
    shortcuts included); Linear weights only on request; never BatchNorm or biases; never the skip
    tweak's jump branches, which are dense additions for re-training, not part of the ticket."""
    kinds: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear) if include_linear else (nn.Conv2d,)
    jumps = tuple(f"{name}." for name in jump_branches(model))
    return [
        f"{name}.weight" if name else "weight"
        for name, module in model.named_modules()
        if isinstance(module, kinds) and not f"{name}.".startswith(jumps)
    ]


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
    misshapen = [name for name in mask if mask[name].shape != weights[name].shape]
    if misshapen:  # a mask of another model: indexing with it would fail or pick the wrong weights
        name = misshapen[0]
        raise LthError(
            f"mask {name!r} has shape {tuple(mask[name].shape)}, the weights' "
            f"{tuple(weights[name].shape)}: the mask belongs to another model"
        )
    names = list(mask)
    groups = [names] if hparams.scope == "global" else [[name] for name in names]
    new_mask: Mask = {}
    for group in groups:
        kept = [mask[name].reshape(-1) for name in group]
        magnitudes = torch.cat(
            [weights[name].detach().abs().reshape(-1).float().cpu()[keep.cpu()] for name, keep in zip(group, kept)]
        )
        remaining = magnitudes.numel()
        n_prune = remaining - remaining_after(remaining, hparams.rate, rounds)
        prune_flags = torch.zeros(remaining, dtype=torch.bool)
        prune_flags[torch.sort(magnitudes, stable=True).indices[:n_prune]] = True
        offset = 0
        for name, keep in zip(group, kept):
            keep = keep.cpu().clone()
            positions = keep.nonzero().squeeze(1)
            keep[positions[prune_flags[offset : offset + positions.numel()]]] = False
            offset += positions.numel()
            new_mask[name] = keep.reshape(mask[name].shape)
    return new_mask


def keep_top(scores: Mapping[str, torch.Tensor], count: int, mask: Mask | None = None) -> Mask:
    """Keep the `count` highest scores across all tensors (only among the weights `mask` keeps, if
    given); among equal scores the earlier position wins."""
    names = list(scores)
    flat = torch.cat([scores[name].detach().reshape(-1).double().cpu() for name in names])
    if flat.isnan().any():
        raise LthError("the scores hold NaN: the network's output or gradient overflowed")
    if mask is not None:
        eligible = torch.cat([mask[name].reshape(-1).cpu() for name in names])
        flat = torch.where(eligible, flat, torch.tensor(-math.inf, dtype=torch.float64))
        available = int(eligible.sum())
    else:
        available = flat.numel()
    if not 0 <= count <= available:
        raise LthError(f"cannot keep {count} weights out of {available}")
    # The count-th largest score by selection, not a full sort (SynFlow ranks 100 times): every score
    # above it is kept, and of those equal to it the earliest, as a stable descending sort would.
    if count == 0:
        keep = torch.zeros(flat.numel(), dtype=torch.bool)
    else:
        threshold = torch.kthvalue(flat, flat.numel() - count + 1).values
        keep = flat > threshold
        ties = (flat == threshold).nonzero().squeeze(1)
        keep[ties[: count - int(keep.sum())]] = True
    parts = keep.split([scores[name].numel() for name in names])
    return {name: part.reshape(scores[name].shape) for name, part in zip(names, parts)}


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
    """Write `path` (.pt) and then its JSON sidecar, each atomically and with an embedded digest;
    warn on layer collapse. A mask without its sidecar is refused by every reader."""
    info = describe(mask)
    if info["collapsed_layers"]:
        message = f"layer collapse: every weight of {', '.join(info['collapsed_layers'])} is pruned"
        warnings.warn(message, stacklevel=2)
        log.warning(message)
    info = {"format": FORMAT, **info, **({"provenance": dict(provenance)} if provenance else {})}
    save_verified(path, {"format": FORMAT, "masks": {name: keep.cpu() for name, keep in mask.items()}})
    write_sealed_json(sidecar_path(path), info)
    return info


def load_mask(path: str | Path) -> Mask:
    """The mask at `path`, checked against its embedded digest and against its sidecar."""
    return mask_from_payload(path, load_verified(path, (FORMAT,), WHAT, FIX))


def mask_from_payload(path: str | Path, payload: dict[str, Any]) -> Mask:
    """The mask in a payload loaded from `path`, once its sidecar's sha256 and counts agree with it."""
    mask = {name: keep.to(torch.bool) for name, keep in payload["masks"].items()}
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        raise IntegrityError(f"{path} has no sidecar {sidecar} (its sha256 and counts); {FIX}")
    recorded = read_sidecar(path)
    kept, total = sum(int(keep.sum()) for keep in mask.values()), sum(keep.numel() for keep in mask.values())
    actual = {"sha256": mask_hash(mask), "kept": kept, "total": total}
    differ = [f"{key} {recorded.get(key)} vs {value}" for key, value in actual.items() if recorded.get(key) != value]
    if differ:
        raise IntegrityError(
            f"{path} does not match its sidecar {sidecar} (sidecar vs mask: {'; '.join(differ)}): "
            f"one of them was changed, or they come from different runs of `lth prune`; {FIX}"
        )
    return mask


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The sidecar of the mask at `path`, its own digest checked."""
    return read_sealed_json(sidecar_path(path), "an lth mask sidecar (written by `lth prune`)", FIX)


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
                raise LthError(
                    f"mask {name!r} has shape {tuple(keep.shape)}, the model's weight {tuple(params[name].shape)}"
                )
        self.params = [params[name] for name in mask]
        # Same dtype, device and memory format as each weight, so the multiply is one fast kernel.
        self.factors = [torch.empty_like(p).copy_(keep) for p, keep in zip(self.params, mask.values())]

    @torch.no_grad()
    def set_mask(self, mask: Mask) -> None:
        """Enforce `mask` from now on: the same names, another choice of weights (sparse training)."""
        for factor, keep in zip(self.factors, mask.values()):
            factor.copy_(keep)

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
