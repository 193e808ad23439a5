"""Activation functions selectable by name (ToST swaps ReLU for smoother ones)."""

from collections.abc import Callable

from torch import nn

# Non-inplace on purpose: forward hooks (e.g. activation statistics) must see
# each call's output unaltered by a later in-place op.
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "swish": nn.SiLU, "mish": nn.Mish}


def activation_factory(name: str) -> Callable[[], nn.Module]:
    """Return a zero-arg callable that creates a fresh activation module per call.

    Models call it once per activation site so that every site is its own module
    and can be hooked or replaced independently.
    """
    if name not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]
