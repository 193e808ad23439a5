"""Masks in torch.nn.utils.prune's form, the one torch's pruning utilities and much published code use.

A pruned module keeps its parameter as `<name>_orig` and a buffer `<name>_mask` (0/1), and computes
`<name> = <name>_orig * <name>_mask` before every forward. `to_prune` puts an lth mask into that form
with torch's own `prune.custom_from_mask`; `mask_from_prune` reads it back from such a model or its
state dict (`conv1.weight_mask` -> `conv1.weight`), which is also how `lth prune --method file` reads
the masks of codes that save such state dicts (lth.mask_sources.load_user_mask).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from lth.errors import LthError
from lth.masks import Mask

SUFFIX = "_mask"  # torch.nn.utils.prune's buffer: `<parameter>_mask`, next to `<parameter>_orig`


def zero_one(value: Any, where: str, name: str) -> torch.Tensor:
    """`value` as a bool tensor: a bool tensor as it is, a numeric one when it holds only 0 and 1
    (torch's float masks, open_lth's int masks); anything else an LthError naming `where` and `name`."""
    if not isinstance(value, torch.Tensor):
        raise LthError(f"{where}: {name!r} holds {type(value).__name__}, not a tensor of booleans or 0/1")
    if value.dtype == torch.bool:
        return value.clone()
    if value.is_complex() or not bool(((value == 0) | (value == 1)).all()):
        raise LthError(f"{where}: {name!r} holds {value.dtype} values other than 0 and 1, not booleans")
    return value != 0


def masks_in_state_dict(state: Mapping[str, Any], where: str = "the state dict") -> Mask:
    """The mask in a torch.nn.utils.prune state dict: every `<parameter>_mask` entry as `<parameter>`;
    the other entries (`weight_orig`, biases, BatchNorm statistics) are not masks and are ignored."""
    found = {
        name[: -len(SUFFIX)]: zero_one(value, where, name)
        for name, value in state.items()
        if isinstance(name, str) and name.endswith(SUFFIX)
    }
    if not found:
        raise LthError(
            f"{where} holds no `<parameter>{SUFFIX}` entry: it is not the state dict of a model pruned with "
            "torch.nn.utils.prune"
        )
    return found


def to_prune(model: nn.Module, mask: Mapping[str, torch.Tensor]) -> nn.Module:
    """Put `mask` (parameter name -> bool) on `model` in torch.nn.utils.prune's form, in place: each
    masked parameter `<module>.<name>` becomes `<name>_orig` plus the buffer `<name>_mask`, through
    `prune.custom_from_mask`. The forward is unchanged where the pruned weights are already zero (an lth
    ticket's are). Returns `model`; `prune.remove(module, name)` makes a module's pruning permanent."""
    from torch.nn.utils import prune

    params = dict(model.named_parameters())
    for name, keep in mask.items():  # every name checked before the model is changed
        if name not in params:
            raise LthError(f"mask names {name!r}, which the model does not have as a parameter")
        if keep.shape != params[name].shape:
            raise LthError(f"mask {name!r} has shape {tuple(keep.shape)}, the model's {tuple(params[name].shape)}")
    for name, keep in mask.items():
        module_name, _, tensor_name = name.rpartition(".")
        module = model.get_submodule(module_name)
        prune.custom_from_mask(module, tensor_name, keep.to(device=params[name].device, dtype=torch.bool))
    return model


def mask_from_prune(model_or_state_dict: nn.Module | Mapping[str, Any]) -> Mask:
    """The mask (parameter name -> bool tensor, on the CPU) of a model pruned with torch.nn.utils.prune,
    or of its state dict: each `<module>.<name>_mask` as `<module>.<name>`."""
    if isinstance(model_or_state_dict, nn.Module):
        model = model_or_state_dict
        originals = {name for name, _ in model.named_parameters() if name.endswith("_orig")}
        # A module's own buffer named `*_mask` is no pruning mask unless its `*_orig` parameter is there.
        state = {
            name: buffer
            for name, buffer in model.named_buffers()
            if name.endswith(SUFFIX) and f"{name[: -len(SUFFIX)]}_orig" in originals
        }
        where = f"the model ({type(model).__name__})"
    elif isinstance(model_or_state_dict, Mapping):
        state, where = model_or_state_dict, "the state dict"
    else:
        raise LthError(f"expected a model or a state dict, not {type(model_or_state_dict).__name__}")
    return {name: keep.cpu() for name, keep in masks_in_state_dict(state, where).items()}
