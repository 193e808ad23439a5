"""Model registry: CIFAR-style ResNet, VGG and MobileNet with a width multiplier.

Every registered class takes ``(num_classes, width, activation, jump)`` where ``width``
is the base channel count (64 reproduces the standard models), ``activation`` is a
zero-arg factory returning a new activation module, and ``jump`` builds the skip
tweak's jump branches (None: no branches; see lth/models/skip.py).
"""

from collections.abc import Callable
from typing import TypeVar

from torch import nn

from lth.models.activations import activation_factory
from lth.models.skip import jump_factory
from lth.names import MODELS

_REGISTRY: dict[str, type[nn.Module]] = {}

M = TypeVar("M", bound=type[nn.Module])


def register(name: str) -> Callable[[M], M]:
    """Class decorator adding a model to the registry under ``name``."""

    def decorator(cls: M) -> M:
        if name in _REGISTRY:
            raise ValueError(f"Model {name!r} is already registered")
        if name not in MODELS:  # configs are validated against lth.names without importing torch
            raise ValueError(f"Model {name!r} is missing from lth.names.MODELS")
        _REGISTRY[name] = cls
        return cls

    return decorator


def names() -> list[str]:
    """Sorted names of all registered models."""
    return sorted(_REGISTRY)


def scale_channels(channels: int, width: int) -> int:
    """Scale a channel count defined for width 64 to ``width``, never below 1."""
    return max(1, channels * width // 64)


def build(name: str, num_classes: int, width: int = 64, activation: str = "relu", skip: str = "none") -> nn.Module:
    """Instantiate the registered model ``name``."""
    if name not in _REGISTRY:
        raise ValueError(f"Unknown model {name!r}; expected one of {names()}")
    if not isinstance(width, int) or isinstance(width, bool) or width < 1:
        raise ValueError(f"width must be a positive int, got {width!r}")
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    return _REGISTRY[name](num_classes, width, activation_factory(activation), jump_factory(skip))


# Imported last: these modules use `register` and `scale_channels` defined above,
# and importing them is what populates the registry.
from lth.models import mobilenet, resnet, vgg  # noqa: E402, F401
