"""N:M structured sparsity: in every group of M consecutive weights, keep the N of largest magnitude.

2:4 is the pattern NVIDIA's sparse tensor cores (Ampere and later) run at up to twice the dense
speed; other N:M patterns are for study and are not accelerated.

Grouping follows the reduction (input) dimension, the way the sparse kernels lay the weight out as
the GEMM operand:

- linear weight (out, in): groups of M consecutive inputs in each row, so it fits when in % M == 0;
- conv weight (out, in, k_h, k_w): the weight is read as (out, k_h, k_w, in), the NHWC
  implicit-GEMM order that NVIDIA's apex ASP (automatic sparsity) also uses, and groups are M
  consecutive input channels at each (out, k_h, k_w) position, so it fits when in_channels % M == 0.
  Grouping along the flat (out, in, k_h, k_w) memory order instead would mix kernel positions and
  give a pattern the hardware cannot use.

In general dimension 1 is the reduction dimension and is moved last before grouping. Within a group
the ties are broken by position, the earlier weight winning (a stable sort), so the masks are
deterministic. Masks are bool tensors in each weight's own shape, layout and device.

A layer whose reduction size is not a multiple of M (the 3-channel stem conv, say) is refused by
default, so that no run silently ends up with a layer that is not N:M; `indivisible="dense"`
keeps such layers fully dense instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from lth.errors import LthError

if TYPE_CHECKING:  # torch-free to import: the planner checks N:M settings with parse_nm
    import torch

INDIVISIBLE = ("refuse", "dense")
_PATTERN = re.compile(r"(\d+):(\d+)")


def parse_nm(text: str) -> tuple[int, int]:
    """'2:4' -> (2, 4), checked by `check_nm`."""
    found = _PATTERN.fullmatch(text.strip()) if isinstance(text, str) else None
    if found is None:
        raise LthError(f"N:M sparsity {text!r} is not of the form N:M with whole numbers N < M, e.g. 2:4")
    n, m = int(found[1]), int(found[2])
    check_nm(n, m)
    return n, m


def check_nm(n: int, m: int) -> None:
    """Refuse an N:M that keeps nothing (N < 1) or everything (N >= M)."""
    whole = all(isinstance(value, int) and not isinstance(value, bool) for value in (n, m))
    if not whole or not 1 <= n < m:
        raise LthError(
            f"N:M sparsity {n!r}:{m!r} is not allowed: N and M must be whole numbers with 1 <= N < M, e.g. 2:4"
        )


def nm_groups_fit(shape: Sequence[int], m: int) -> bool:
    """Whether a weight of this shape splits into groups of M along its reduction dimension (the inputs of
    a linear layer, the input channels of a conv); False for a tensor with fewer than 2 dimensions."""
    return len(shape) >= 2 and shape[1] % m == 0


def _reduction_name(shape: Sequence[int]) -> str:
    return "input channels" if len(shape) > 2 else "inputs"


def nm_mask(
    weights: Mapping[str, torch.Tensor], n: int, m: int, indivisible: str = "refuse"
) -> dict[str, torch.Tensor]:
    """Each weight's N:M magnitude mask: in every group of M along the reduction dimension, the N
    weights of largest |w| are kept (the earlier on a tie). A layer that does not split into groups
    of M is refused, or with indivisible="dense" kept fully dense."""
    check_nm(n, m)
    if indivisible not in INDIVISIBLE:
        raise LthError(f"indivisible: {indivisible!r} is not allowed; allowed: {', '.join(INDIVISIBLE)}")
    import torch

    masks: dict[str, torch.Tensor] = {}
    for name, weight in weights.items():
        shape = tuple(weight.shape)
        if len(shape) < 2:
            raise LthError(
                f"layer {name!r} has shape {shape}: N:M sparsity applies to linear weights (out, in) "
                "and conv weights (out, in, k_h, k_w), not to 1-D tensors"
            )
        if not nm_groups_fit(shape, m):
            if indivisible == "dense":
                masks[name] = torch.ones_like(weight, dtype=torch.bool)
                continue
            raise LthError(
                f"layer {name!r} has {shape[1]} {_reduction_name(shape)}, not a multiple of M={m}, so it does "
                f"not split into {n}:{m} groups; set `indivisible: dense` to keep such layers dense"
            )
        magnitude = weight.detach().abs().movedim(1, -1)  # (out, k_h, k_w, in): groups run along `in`
        if magnitude.isnan().any():
            raise LthError(f"layer {name!r} holds NaN weights: no magnitude order to keep N of M by")
        groups = magnitude.reshape(-1, m)
        order = torch.sort(groups, dim=1, descending=True, stable=True).indices
        keep = torch.zeros(groups.shape, dtype=torch.bool, device=weight.device)
        keep.scatter_(1, order[:, :n], True)
        masks[name] = keep.reshape(magnitude.shape).movedim(-1, 1).contiguous()
    return masks
