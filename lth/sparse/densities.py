"""How a global budget of kept weights is spread over layers: uniform or ERK (Erdos-Renyi-Kernel).

ERK is from Evci et al. 2020, "Rigging the Lottery: Making All Tickets Winners" (ICML), following
its official code (google-research/rigl, `sparse_utils.get_sparsities_erdos_renyi`, erk_power_scale 1):

- score: layer l's density is proportional to erk_score = sum(shape) / prod(shape), that is
  (n_in + n_out + k_h + k_w) / (n_in * n_out * k_h * k_w) for a conv weight (n_out, n_in, k_h, k_w)
  and (n_in + n_out) / (n_in * n_out) for a linear weight (n_out, n_in): plain Erdos-Renyi, as the
  official code gets for a 2-D variable. Small layers (few inputs and outputs) end up denser.
- scale: density_l = eps * score_l, with eps chosen so that sum(eps * score_l * size_l) over the
  sparse layers is the budget left after the dense ones. A layer whose density would exceed 1 is
  made dense (its full size comes out of the budget) and eps is recomputed over the rest, until no
  density exceeds 1. The official code moves only the highest-scored layer per round; moving every
  layer over 1 at once ends at the same set, because eps only grows as dense layers are removed,
  so a layer over 1 stays over 1.
- budget: `kept` is the total over ALL layers in `shapes`, dense ones included: a layer ERK makes
  dense spends its whole size from it, as in the official code, and so does a layer the caller keeps
  dense (`dense`, such as the first conv), which the official code instead leaves out of the budget.
  So a network laid out with ERK or uniform has exactly the number of weights magnitude pruning
  keeps globally at the same `kept`, and the two compare at equal parameter counts.
- exactness: eps and the densities are computed in exact fractions (no float drift in which layer
  crosses 1), and returned as floats.
- rounding (`layer_counts`): floor(density * size) per layer, then the weights still missing to
  reach `kept` handed out one each by largest fractional remainder, ties to the earlier layer in
  `shapes` order. That is the largest-remainder method: the counts sum to exactly `kept`, each is
  within one of density * size, and none exceeds its layer's size.

Uniform gives every non-dense layer the same density (kept - dense sizes) / (total - dense sizes).

Pure Python (no torch), so the torch-free workflow planner can size sparse runs.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from fractions import Fraction

from lth.errors import LthError

DISTRIBUTIONS = ("uniform", "erk")


def _size(name: str, shape: Sequence[int]) -> int:
    dims = tuple(shape)
    if not dims or any(not isinstance(dim, int) or isinstance(dim, bool) or dim < 1 for dim in dims):
        raise LthError(f"layer {name!r} has shape {dims}: a weight shape needs one or more whole dimensions >= 1")
    return math.prod(dims)


def _score(shape: Sequence[int]) -> Fraction:
    return Fraction(sum(shape), math.prod(shape))


def erk_score(shape: Sequence[int]) -> float:
    """ERK's unnormalised density for a weight of this shape: sum(shape) / prod(shape), i.e.
    (n_in + n_out + k_h + k_w) / (n_in * n_out * k_h * k_w) for a conv, (n_in + n_out) / (n_in * n_out)
    for a linear layer."""
    _size("shape", shape)
    return float(_score(shape))


def _check(
    shapes: Mapping[str, Sequence[int]], kept: int, distribution: str, dense: Collection[str]
) -> tuple[dict[str, int], set[str]]:
    """The layers' sizes and the dense set, once every argument is known to be usable."""
    if distribution not in DISTRIBUTIONS:
        raise LthError(f"layer density distribution {distribution!r} is unknown; allowed: {', '.join(DISTRIBUTIONS)}")
    sizes = {name: _size(name, shape) for name, shape in shapes.items()}
    unknown = [name for name in dense if name not in sizes]
    if unknown:
        raise LthError(
            f"dense layer {unknown[0]!r} is not one of the layers laid out; allowed: {', '.join(map(repr, sizes))}"
        )
    total = sum(sizes.values())
    if not isinstance(kept, int) or isinstance(kept, bool) or not 0 <= kept <= total:
        raise LthError(
            f"kept={kept!r} weights is not allowed: must be a whole number from 0 to {total}, the layers' total"
        )
    dense_set = set(dense)
    needed = sum(sizes[name] for name in dense_set)
    if kept < needed:
        listed = ", ".join(f"{name} ({sizes[name]})" for name in sizes if name in dense_set)
        raise LthError(
            f"kept={kept} weights is fewer than the {needed} that the layers kept dense need: {listed}; "
            f"keep at least {needed} weights or keep fewer layers dense"
        )
    return sizes, dense_set


def _densities(
    shapes: Mapping[str, Sequence[int]], kept: int, distribution: str, dense: Collection[str]
) -> tuple[dict[str, int], dict[str, Fraction]]:
    """Exact densities (and the sizes), in `shapes` order."""
    sizes, dense_set = _check(shapes, kept, distribution, dense)
    full = set(dense_set)
    if distribution == "uniform":
        rest = sum(size for name, size in sizes.items() if name not in full)
        budget = kept - sum(sizes[name] for name in full)
        share = Fraction(budget, rest) if rest else Fraction(1)
        return sizes, {name: Fraction(1) if name in full else share for name in sizes}
    scores = {name: _score(shapes[name]) for name in sizes}
    while True:
        sparse = [name for name in sizes if name not in full]
        budget = kept - sum(sizes[name] for name in full)
        divisor = sum(scores[name] * sizes[name] for name in sparse)
        eps = Fraction(budget) / divisor if sparse else Fraction(0)
        over = [name for name in sparse if eps * scores[name] > 1]
        if not over:
            break
        full.update(over)
    return sizes, {name: Fraction(1) if name in full else eps * scores[name] for name in sizes}


def layer_densities(
    shapes: Mapping[str, Sequence[int]], kept: int, distribution: str, dense: Collection[str] = ()
) -> dict[str, float]:
    """Each layer's density (kept fraction, 0 to 1) so that the layers keep `kept` weights in all;
    layers in `dense` are 1.0 and spend their size from `kept`."""
    _, densities = _densities(shapes, kept, distribution, dense)
    return {name: float(density) for name, density in densities.items()}


def layer_counts(
    shapes: Mapping[str, Sequence[int]], kept: int, distribution: str, dense: Collection[str] = ()
) -> dict[str, int]:
    """Each layer's whole number of kept weights, summing to exactly `kept`: floor(density * size),
    then one more to the layers with the largest fractional remainders (the earlier layer on a tie)."""
    sizes, densities = _densities(shapes, kept, distribution, dense)
    exact = {name: densities[name] * sizes[name] for name in sizes}
    counts = {name: math.floor(value) for name, value in exact.items()}
    # The exact shares sum to `kept`, so the shortfall is the sum of the remainders: fewer than the
    # layers that have one, and a layer with a remainder is below its size, so +1 never overflows it.
    order = sorted(sizes, key=lambda name: exact[name] - counts[name], reverse=True)  # stable: earlier first
    for name in order[: kept - sum(counts.values())]:
        counts[name] += 1
    return counts
