"""Masks that change during training: gradual magnitude pruning (GMP), SET and RigL.

An updater draws the run's first mask and, at its scheduled steps, the next one; `DynamicMask` applies
it in the training loop. Step t counts the optimizer steps the run has taken (1 after the first), T
the steps of its whole training. GMP and SET update right after step t, from the weights it produced;
RigL's update takes the place of step t's optimizer step, as in its code: it ranks the weights before
that step and grows by the dense gradient of its batch (the step's update is skipped).

The masked-weight invariants hold at every step: a weight leaving the mask becomes exactly zero and so
does its momentum (the enforcer then zeroes its gradient, so weight decay and momentum cannot revive
it); a weight joining the mask was inactive, hence exactly zero with zero momentum, so it starts from
zero. A weight dropped and regrown in the same update keeps its value and momentum, as in RigL's code.

- GMP (Zhu & Gupta 2017, "To prune, or not to prune"): dense at first; at t = t_0 + j dt for
  j = 0..n (t_0 = round(start T), at least 1; n = floor((round(end T) - t_0) / dt)) the sparsity is
  s_t = s_f + (s_i - s_f) (1 - (t - t_0) / (n dt))^3 (s_f at once when n = 0), reached by removing the
  smallest-|w| active weights: round((1 - s_t) size) kept in each layer (`scope: layerwise`, the
  paper's), or round((1 - s_t) N) across all layers (`global`). Ties: the earlier position stays.
  With `nm: N:M` (s_f = 1 - N/M) each step keeps max(N, round(M (1 - s_t))) of every group of M
  weights along the reduction dimension (lth/sparse/nm.py), ending at N:M.
- SET (Mocanu et al. 2018): each layer keeps its count (lth.sparse.densities: ERK or uniform, the
  chosen dense layers full) from a random first mask; every dt steps while t < T_end each sparse layer
  drops floor(zeta * active) of its smallest-|w| active weights and grows as many uniformly at random
  among the positions inactive after the drop (just-dropped ones included, as in RigL's code).
- RigL (Evci et al. 2020, "Rigging the lottery"): as SET, but drops floor(f_t * active) with
  f_t = alpha / 2 (1 + cos(pi t / T_end)) and grows where the batch's dense gradient |dL/dw| is
  largest (ties: the earlier position).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from lth.errors import LthError
from lth.flops import LayerFlops
from lth.masks import Mask, MaskEnforcer, keep_top
from lth.sparse.densities import layer_counts
from lth.sparse.nm import nm_mask, parse_nm
from lth.sparse.settings import DynamicHparams, GmpHparams, RiglHparams, SetHparams, SparseTrainingHparams

SEED_OFFSET = 7919  # the first mask's and SET's random stream: apart from the run's data stream


class MaskUpdater:
    """The schedule and the rule of one algorithm; its state (random stream, history) resumes."""

    def __init__(self, hparams: SparseTrainingHparams, shapes: Mapping[str, torch.Size], total_steps: int, seed: int):
        if total_steps < 1:
            raise LthError(f"{hparams.section}: the run takes {total_steps} optimizer steps; it needs at least 1")
        self.hparams = hparams
        self.shapes = dict(shapes)
        self.generator = torch.Generator().manual_seed(seed + SEED_OFFSET)
        self.history: list[dict[str, Any]] = []  # one entry per update: step, counts

    @property
    def total(self) -> int:
        return sum(math.prod(shape) for shape in self.shapes.values())

    def initial_mask(self, weights: Mapping[str, torch.Tensor]) -> Mask:
        raise NotImplementedError

    def due(self, step: int) -> bool:
        raise NotImplementedError

    def wants_gradients(self, step: int) -> bool:
        return False

    def replaces_step(self, step: int) -> bool:
        """Whether the update at `step` takes the place of that step's optimizer step (RigL)."""
        return False

    def update(
        self, step: int, weights: Mapping[str, torch.Tensor], mask: Mask, gradients: Mapping[str, torch.Tensor] | None
    ) -> Mask:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "history": list(self.history)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.history = list(state["history"])


def _magnitudes(weights: Mapping[str, torch.Tensor], names: list[str]) -> dict[str, torch.Tensor]:
    return {name: weights[name].detach().abs().cpu() for name in names}


def _count(mask: Mask) -> int:
    return sum(int(keep.sum()) for keep in mask.values())


class Gmp(MaskUpdater):
    hparams: GmpHparams

    def __init__(self, hparams: GmpHparams, shapes: Mapping[str, torch.Size], total_steps: int, seed: int):
        super().__init__(hparams, shapes, total_steps, seed)
        self.first = max(1, round(hparams.start * total_steps))
        last = max(self.first, round(hparams.end * total_steps))
        self.updates = (last - self.first) // hparams.update_every  # n

    def sparsity_at(self, step: int) -> float:
        hp = self.hparams
        if self.updates == 0:
            return hp.sparsity
        progress = (step - self.first) / (self.updates * hp.update_every)
        return hp.sparsity + (hp.initial_sparsity - hp.sparsity) * (1 - progress) ** 3

    def initial_mask(self, weights: Mapping[str, torch.Tensor]) -> Mask:
        return {name: torch.ones(shape, dtype=torch.bool) for name, shape in self.shapes.items()}

    def due(self, step: int) -> bool:
        offset = step - self.first
        return (
            offset >= 0
            and offset % self.hparams.update_every == 0
            and offset // self.hparams.update_every <= self.updates
        )

    def kept_counts(self, step: int) -> dict[str, int]:
        """Each layer's kept count at `step` (layerwise), or {"": the total} (global)."""
        density = 1 - self.sparsity_at(step)
        if self.hparams.scope == "global":
            return {"": round(density * self.total)}
        return {name: round(density * math.prod(shape)) for name, shape in self.shapes.items()}

    def update(
        self, step: int, weights: Mapping[str, torch.Tensor], mask: Mask, gradients: Mapping[str, torch.Tensor] | None
    ) -> Mask:
        magnitudes = _magnitudes(weights, list(self.shapes))
        if self.hparams.nm:
            new = self._nm_update(step, magnitudes, mask)
        elif self.hparams.scope == "global":
            kept = min(self.kept_counts(step)[""], _count(mask))
            new = keep_top(magnitudes, kept, mask)
        else:
            new, counts = {}, self.kept_counts(step)
            for name in self.shapes:
                kept = min(counts[name], int(mask[name].sum()))
                new.update(keep_top({name: magnitudes[name]}, kept, {name: mask[name]}))
        self.history.append(
            {"step": step, "sparsity": 1 - _count(new) / self.total, "dropped": _count(mask) - _count(new), "grown": 0}
        )
        return new

    def _nm_update(self, step: int, magnitudes: Mapping[str, torch.Tensor], mask: Mask) -> Mask:
        """N:M: keep max(N, round(M (1 - s_t))) of every group of M, among the weights still active
        (an active weight's score |w| + 1 in float64 ranks above every inactive one's 0)."""
        n, m = parse_nm(self.hparams.nm)
        keep = max(n, round(m * (1 - self.sparsity_at(step))))
        if keep >= m:
            return mask
        scores = {name: torch.where(mask[name], magnitude.double() + 1, 0.0) for name, magnitude in magnitudes.items()}
        return {name: kept & mask[name] for name, kept in nm_mask(scores, keep, m, self.hparams.indivisible).items()}


class DynamicSparse(MaskUpdater):
    """SET and RigL: per-layer counts fixed at the start; drop by magnitude, regrow (`grow`)."""

    hparams: DynamicHparams

    def __init__(
        self,
        hparams: DynamicHparams,
        shapes: Mapping[str, torch.Size],
        total_steps: int,
        seed: int,
    ):
        super().__init__(hparams, shapes, total_steps, seed)
        names = list(self.shapes)
        dense = {
            "none": [],
            "first": names[:1],
            "last": names[-1:],
            "first+last": list(dict.fromkeys(names[:1] + names[-1:])),
        }[hparams.dense_layers]
        self.dense = set(dense)
        kept = round((1 - hparams.sparsity) * self.total)
        self.counts = layer_counts(
            {name: tuple(shape) for name, shape in self.shapes.items()}, kept, hparams.distribution, dense
        )
        self.end = round(hparams.end * total_steps)  # T_end

    def initial_mask(self, weights: Mapping[str, torch.Tensor]) -> Mask:
        """Each layer's count of positions, uniformly at random (the dense layers whole)."""
        mask = {}
        for name, shape in self.shapes.items():
            keep = torch.zeros(math.prod(shape), dtype=torch.bool)
            keep[torch.randperm(keep.numel(), generator=self.generator)[: self.counts[name]]] = True
            mask[name] = keep.reshape(shape)
        return mask

    def due(self, step: int) -> bool:
        return step % self.hparams.update_every == 0 and step < self.end

    def drop_fraction(self, step: int) -> float:
        return self.hparams.drop_fraction

    def grow(
        self, name: str, candidates: torch.Tensor, count: int, gradients: Mapping[str, torch.Tensor] | None
    ) -> torch.Tensor:
        """`count` of the positions `candidates` allows (flat), as a flat boolean tensor."""
        raise NotImplementedError

    def update(
        self, step: int, weights: Mapping[str, torch.Tensor], mask: Mask, gradients: Mapping[str, torch.Tensor] | None
    ) -> Mask:
        fraction = self.drop_fraction(step)
        new, dropped, regrown = {}, 0, 0
        for name, keep in mask.items():
            active = int(keep.sum())
            if name in self.dense or active == keep.numel():
                new[name] = keep
                continue
            count = int(fraction * active)  # floor, as RigL's code truncates
            # Ranked among the active weights only (the same survivors as ranking the whole layer with
            # the inactive ones last, in about 0.7x the time: BENCHMARKS.md).
            positions = keep.reshape(-1).nonzero().squeeze(1)
            magnitude = weights[name].detach().abs().cpu().reshape(-1)[positions]
            survivors = torch.zeros(keep.numel(), dtype=torch.bool)
            survivors[positions[keep_top({name: magnitude}, active - count)[name]]] = True
            grown = self.grow(name, ~survivors, count, gradients)
            new[name] = (survivors | grown).reshape(keep.shape)
            dropped += count
            regrown += int((grown & keep.reshape(-1)).sum())
        self.history.append(
            {"step": step, "drop_fraction": fraction, "dropped": dropped, "grown": dropped, "regrown": regrown}
        )
        return new


class Set(DynamicSparse):
    def grow(
        self, name: str, candidates: torch.Tensor, count: int, gradients: Mapping[str, torch.Tensor] | None
    ) -> torch.Tensor:
        positions = candidates.nonzero().squeeze(1)
        chosen = positions[torch.randperm(positions.numel(), generator=self.generator)[:count]]
        grown = torch.zeros_like(candidates)
        grown[chosen] = True
        return grown


class Rigl(DynamicSparse):
    def drop_fraction(self, step: int) -> float:
        return self.hparams.drop_fraction / 2 * (1 + math.cos(math.pi * step / self.end))

    def wants_gradients(self, step: int) -> bool:
        return self.due(step)

    def replaces_step(self, step: int) -> bool:
        return self.due(step)

    def grow(
        self, name: str, candidates: torch.Tensor, count: int, gradients: Mapping[str, torch.Tensor] | None
    ) -> torch.Tensor:
        if gradients is None:
            raise LthError(f"rigl: the update needs the dense gradient of {name}, and none was recorded")
        scores = {name: gradients[name].reshape(-1).cpu()}
        return keep_top(scores, count, {name: candidates})[name]


UPDATERS: dict[type[SparseTrainingHparams], type[MaskUpdater]] = {GmpHparams: Gmp, SetHparams: Set, RiglHparams: Rigl}


def make_updater(
    hparams: SparseTrainingHparams, model: nn.Module, names: list[str], total_steps: int, seed: int
) -> MaskUpdater:
    params = dict(model.named_parameters())
    return UPDATERS[type(hparams)](hparams, {name: params[name].shape for name in names}, total_steps, seed)


class DynamicMask:
    """The training loop's side of an updater: records RigL's dense gradient before the enforcer masks
    it, applies each new mask to the enforcer, the weights and the momentum, and counts training FLOPs
    as the RigL paper does (a step 3 f_S per image, an update step that needs the dense gradient
    2 f_S + f_D; f_S the forward FLOPs of the current mask, f_D the dense network's)."""

    def __init__(
        self,
        updater: MaskUpdater,
        model: nn.Module,
        enforcer: MaskEnforcer,
        optimizer: torch.optim.Optimizer,
        mask: Mask,
        flops: LayerFlops,
    ) -> None:
        self.updater = updater
        params = dict(model.named_parameters())
        self.params = {name: params[name] for name in mask}
        self.enforcer = enforcer
        self.optimizer = optimizer
        self.mask = {name: keep.cpu() for name, keep in mask.items()}
        self.flops = flops
        self.step = 0
        self.train_flops = 0.0
        self.gradients: dict[str, torch.Tensor] | None = None
        self.sparse_flops = flops.forward(self.mask)

    def after_backward(self) -> bool:
        """Before the enforcer masks the gradients: keep the dense ones if the update needs them, and
        say whether the optimizer steps (False where RigL's update replaces the step)."""
        step = self.step + 1
        if self.updater.wants_gradients(step):
            self.gradients = {name: p.grad.detach().abs() for name, p in self.params.items() if p.grad is not None}
        return not self.updater.replaces_step(step)

    def after_step(self, images: int) -> None:
        self.step += 1
        self.train_flops += self.flops.training(images, self.sparse_flops, dense_gradient=self.gradients is not None)
        if self.updater.due(self.step):
            weights = {name: p.detach() for name, p in self.params.items()}
            self.set_mask(self.updater.update(self.step, weights, self.mask, self.gradients))
        self.gradients = None

    @torch.no_grad()
    def set_mask(self, mask: Mask) -> None:
        """`mask` in force: dropped weights and their momentum zeroed, grown ones (already zero) kept."""
        self.mask = mask
        self.enforcer.set_mask(mask)
        self.enforcer.apply_to_weights()
        for name, p in self.params.items():
            buffer = self.optimizer.state.get(p, {}).get("momentum_buffer")
            if buffer is not None:
                buffer.mul_(mask[name].to(device=buffer.device, dtype=buffer.dtype))
        self.sparse_flops = self.flops.forward(mask)

    def state_dict(self) -> dict[str, Any]:
        return {
            "mask": dict(self.mask),  # an update makes a new mask; none is changed in place
            "step": self.step,
            "train_flops": self.train_flops,
            "updater": self.updater.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.step, self.train_flops = state["step"], state["train_flops"]
        self.updater.load_state_dict(state["updater"])
        self.set_mask({name: keep.to(torch.bool) for name, keep in state["mask"].items()})
