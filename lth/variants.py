"""Re-training variants: `+`-joined parts (or an alias) resolved into concrete setting changes.

A part is a small table of settings it changes, so adding a tweak is one entry here plus the
code that reads its setting; the workflow needs no new rule. Two parts that set the same key
to different values conflict (e.g. swish+mish). Runs are keyed by the resolved settings, never
by the name, so `swish+rewind` and `rewind+swish` are one run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lth.errors import LthError

# Setting keys: "start" (theta0 | rewind | reinit), "model.<field>", "train.<field>", "gradinit.<field>".
PARTS: dict[str, dict[str, Any]] = {
    "rewind": {"start": "rewind"},  # dense weights at the rewind epoch instead of theta0
    "reinit": {"start": "reinit"},  # a fresh initialisation, another seed: the random re-init control
    "swish": {"model.activation": "swish"},  # nn.SiLU at every activation call site
    "mish": {"model.activation": "mish"},  # nn.Mish at every activation call site
    "ls": {"train.label_smoothing": 0.1},  # label smoothing, a = 0.1 (form: train.label_smoothing_form)
    "kd": {"train.kd_alpha": 0.9},  # distil from the dense network of the same seed, T = train.kd_temperature
    "gradinit": {"gradinit.enabled": True},  # GradInit rescales the ticket's tensors before re-training
    "skip": {"model.skip": "conv1x1"},  # dense 1x1 conv + BN jump branches (the official form)
    "skip_identity": {"model.skip": "identity"},  # parameter-free jump branches: the paths without the weights
}
ALIASES: dict[str, tuple[str, ...]] = {
    "lth": (),  # the vanilla ticket: mask + theta0, the dense recipe
    "at": ("skip", "swish"),  # the paper's architecture tweaks together
    "trt": ("gradinit", "ls"),  # the paper's training-recipe tweaks together
}
DEFAULTS: dict[str, Any] = {"start": "theta0"}


class VariantError(LthError):
    """A variant name that does not resolve."""


@dataclass(frozen=True)
class Variant:
    name: str
    parts: tuple[str, ...]
    settings: Mapping[str, Any]

    @property
    def start(self) -> str:
        return self.settings["start"]

    def section(self, section: str) -> dict[str, Any]:
        """Overrides for one hparams section, e.g. {'activation': 'swish'} for 'model'."""
        prefix = f"{section}."
        return {key[len(prefix) :]: value for key, value in self.settings.items() if key.startswith(prefix)}


def resolve(name: str, source: str = "variants") -> Variant:
    """The variant `name` (`source` names the config list it comes from, for errors)."""
    parts: list[str] = []
    for token in name.split("+"):
        if token in ALIASES:
            parts.extend(ALIASES[token])
        elif token in PARTS:
            parts.append(token)
        else:
            allowed = ", ".join([*PARTS, *ALIASES])
            raise VariantError(f"{source}: {name!r} has unknown part {token!r}; parts and aliases: {allowed}")
    settings: dict[str, Any] = {}
    setter: dict[str, str] = {}
    for part in dict.fromkeys(parts):
        for key, value in PARTS[part].items():
            if key in settings and settings[key] != value:
                raise VariantError(f"{source}: {name!r} combines {setter[key]!r} and {part!r}, which both set {key}")
            settings[key], setter[key] = value, part
    return Variant(name=name, parts=tuple(sorted(dict.fromkeys(parts))), settings={**DEFAULTS, **settings})
