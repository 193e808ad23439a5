"""The settings of each sparse-training algorithm (torch-free: the workflow plans from them), one
Hparams section each, with its paper's defaults; `lth train --sparse-training NAME` takes them as
`--NAME.KEY` flags, a `masks` entry `{source: NAME, ...}` as keys. The algorithms themselves are
in lth/sparse/updaters.py.

Steps are counted over the run's own training (from its start epoch): the optimizer steps it takes
are `total = epochs_trained * batches_per_epoch`, and fractions of training (`start`, `end`) are
rounded to steps of that count.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from lth.errors import LthError
from lth.hparams import HparamError, Hparams, hp
from lth.sparse.densities import DISTRIBUTIONS
from lth.sparse.nm import parse_nm

DENSE_LAYERS = ("none", "first", "last", "first+last")


def nm_sparsity(nm: str) -> float:
    """The sparsity of an N:M mask, 1 - N/M, whatever the level (an LthError for a malformed N:M)."""
    n, m = parse_nm(nm)
    return 1 - n / m


@dataclasses.dataclass(frozen=True)
class SparseTrainingHparams(Hparams):
    """What every algorithm has: the sparsity it ends at and how often it changes the mask."""

    sparsity: float = hp(
        0.9, "final fraction of the prunable weights that are zero", minimum=0.0, exclusive_maximum=1.0
    )
    update_every: int = hp(100, "optimizer steps between mask updates (dt)", minimum=1)
    include_linear: bool = hp(
        False, "also sparsify Linear weights (Conv2d weights always are), as prune.include_linear"
    )

    def record(self) -> dict[str, Any]:
        """How hparams.yaml and summary.json record a sparse training: its algorithm and settings."""
        return {"algorithm": self.section, **self.to_dict()}


@dataclasses.dataclass(frozen=True)
class GmpHparams(SparseTrainingHparams):
    """Gradual magnitude pruning (Zhu & Gupta 2017): from dense, the sparsity follows
    s_t = s_f + (s_i - s_f) (1 - (t - t_0) / (n dt))^3 at t = t_0, t_0 + dt, ..., t_0 + n dt. The
    defaults are the RigL code's CIFAR pruning baseline (steps 20,000 to 75,000 of 97,656, every 1,000,
    each layer pruned on its own, from s_i = 0), as fractions of training."""

    section: ClassVar[str] = "gmp"

    update_every: int = hp(1000, "optimizer steps between pruning steps (dt)", minimum=1)
    initial_sparsity: float = hp(0.0, "s_i: the sparsity of the first pruning step", minimum=0.0, exclusive_maximum=1.0)
    start: float = hp(0.2, "t_0: the first pruning step, as a fraction of training", minimum=0.0, exclusive_maximum=1.0)
    end: float = hp(
        0.75, "t_0 + n dt: the last pruning step, as a fraction of training", exclusive_minimum=0.0, maximum=1.0
    )
    scope: str = hp(
        "layerwise",
        "prune each layer to s_t (the paper's), or the smallest weights across all layers to s_t",
        choices=("layerwise", "global"),
    )
    nm: str = hp(
        "",
        "N:M structure, e.g. 2:4 (empty: none): each pruning step keeps max(N, round(M (1 - s_t))) of every "
        "group of M weights along the reduction dimension, ending at N:M (sparsity must be 1 - N/M)",
        hashed="unless_default",
    )
    indivisible: str = hp(
        "refuse",
        "with nm: a layer whose reduction size is not a multiple of M is refused, or kept dense",
        choices=("refuse", "dense"),
        hashed="unless_default",
    )

    def validate(self) -> None:
        if self.nm:
            try:
                final = nm_sparsity(self.nm)
            except LthError as error:
                raise HparamError(f"gmp.nm: {error}") from None
            if abs(self.sparsity - final) > 1e-9:
                raise HparamError(
                    f"gmp.sparsity: {self.sparsity} is not allowed with gmp.nm {self.nm}: an N:M mask's "
                    f"sparsity is 1 - N/M = {final:g}"
                )
        if self.end <= self.start:
            raise HparamError(f"gmp.end: {self.end} is not allowed; must be > gmp.start={self.start}")
        if self.initial_sparsity > self.sparsity:
            raise HparamError(
                f"gmp.initial_sparsity: {self.initial_sparsity} is not allowed; must be <= gmp.sparsity={self.sparsity}"
            )


@dataclasses.dataclass(frozen=True)
class DynamicHparams(SparseTrainingHparams):
    """Dynamic sparse training: a random mask with the layer densities `distribution`, whose weights
    are dropped and regrown every `update_every` steps until `end`, each layer's count unchanged."""

    distribution: str = hp(
        "erk", "layer densities of the mask: erk (Erdos-Renyi-Kernel) or uniform", choices=DISTRIBUTIONS
    )
    dense_layers: str = hp(
        "first",
        "layers kept dense (within the sparsity budget): the first prunable weight (the stem conv), the "
        "last (the classifier: with include_linear only), both, or none",
        choices=DENSE_LAYERS,
    )
    drop_fraction: float = hp(
        0.3, "fraction of each layer's active weights dropped per update", exclusive_minimum=0.0, maximum=1.0
    )
    end: float = hp(0.75, "T_end: no update after this fraction of training", exclusive_minimum=0.0, maximum=1.0)

    def validate(self) -> None:
        if "last" in self.dense_layers and not self.include_linear:
            raise HparamError(
                f"{self.section}.dense_layers: {self.dense_layers!r} is not allowed without include_linear "
                "(prune.include_linear): `last` is the classifier, which is then dense anyway; use first or none"
            )


@dataclasses.dataclass(frozen=True)
class SetHparams(DynamicHparams):
    """SET (Mocanu et al. 2018): drop the fraction zeta (`drop_fraction`, 0.3 as in the paper) of each
    layer's active weights by magnitude, regrow as many at random; on the RigL paper's schedule (dt 100,
    T_end 75% of training) and layer densities (ERK, the first layer dense)."""

    section: ClassVar[str] = "set"


@dataclasses.dataclass(frozen=True)
class RiglHparams(DynamicHparams):
    """RigL (Evci et al. 2020): drop alpha/2 (1 + cos(pi t / T_end)) of each layer's active weights by
    magnitude (alpha: `drop_fraction`), grow as many where the dense gradient is largest. Defaults:
    the paper's (alpha 0.3, dt 100, T_end 75% of training, ERK, the first layer dense)."""

    section: ClassVar[str] = "rigl"


ALGORITHMS: dict[str, type[SparseTrainingHparams]] = {cls.section: cls for cls in (GmpHparams, SetHparams, RiglHparams)}
