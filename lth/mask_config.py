"""The config's `masks` list: the mask sources an experiment spends every variant on. Torch-free.

    masks:
      - magnitude                                   # prune.method's chain (IMP or OMP), the paper's tickets
      - {source: random, like: magnitude, label: random_like}
      - snip
      - {source: file, path: "my_masks/level{level}.npz"}  # quoted: braces are YAML syntax

An entry is a source name (lth.names.MASK_SOURCES) or a mapping with `source`, an optional `label`
(the summary's `mask_source`; default: the source's name; labels are unique) and that source's
settings (SETTINGS, with their defaults). Every source but `file` keeps IMP level k's count at
level k, so levels line up across sources. A label names a series only: it never enters a hash.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lth.errors import LthError
from lth.names import MASK_SOURCES

# Each source's settings and their defaults (`lth prune` takes the same defaults).
SETTINGS: dict[str, dict[str, Any]] = {
    "magnitude": {},  # prune.method, prune.rate/scope/include_linear, prune.rewind_epoch
    "random": {"like": None},  # like: magnitude -> each layer keeps the magnitude mask's count at that level
    "snip": {"batches": 1, "batch_size": 128},  # training batches scored at theta0
    "grasp": {"batches": 1, "batch_size": 128},
    "synflow": {"rounds": 100},  # pruning rounds of the exponential schedule
    "file": {"path": None},  # one file per level: `{level}` (and optionally `{seed}`) in the path
}
REQUIRED: dict[str, tuple[str, ...]] = {"file": ("path",)}
LIKE = ("magnitude",)  # sources whose per-layer counts `random` may copy
LABEL = re.compile(r"[a-z0-9_]+")
MISSING = ("nan", "null", "na", "none")  # labels a CSV reader takes for an empty cell


class MaskConfigError(LthError):
    """A `masks` entry that cannot be planned."""


@dataclass(frozen=True)
class MaskSpec:
    source: str
    label: str
    settings: Mapping[str, Any]


def parse_masks(entries: list[Any]) -> list[MaskSpec]:
    """The `masks` entries as specs with every setting filled in, each checked (the schema only asks for
    names or mappings)."""
    specs = []
    for index, entry in enumerate(entries):
        key = f"masks[{index}]"
        if not isinstance(entry, (str, Mapping)):
            raise MaskConfigError(f"{key}: {entry!r} is not allowed; give a source name or {{source: NAME, ...}}")
        entry = {"source": entry} if isinstance(entry, str) else dict(entry)
        source = entry.pop("source", None)
        if source not in SETTINGS:
            raise MaskConfigError(f"{key}: source {source!r} is not allowed; choose one of {', '.join(MASK_SOURCES)}")
        label = entry.pop("label", source)
        if not isinstance(label, str) or not LABEL.fullmatch(label) or label in MISSING:
            raise MaskConfigError(
                f"{key}.label: {label!r} is not allowed; use lower-case letters, digits and '_' "
                f"(not {', '.join(MISSING)}, which tables read as empty)"
            )
        unknown = [name for name in entry if name not in SETTINGS[source]]
        if unknown:
            allowed = ", ".join(SETTINGS[source]) or "none"
            raise MaskConfigError(f"{key}.{unknown[0]}: not a setting of source {source!r}; its settings: {allowed}")
        missing = [name for name in REQUIRED.get(source, ()) if entry.get(name) is None]
        if missing:
            raise MaskConfigError(f"{key}: source {source!r} needs `{missing[0]}`")
        for name, value in entry.items():
            _check_setting(f"{key}.{name}", name, value)
        settings = {**SETTINGS[source], **entry}
        if source == "file":
            check_pattern(f"{key}.path", settings["path"])
        specs.append(MaskSpec(source, label, settings))
    labels = [spec.label for spec in specs]
    twice = next((label for label in labels if labels.count(label) > 1), None)
    if twice:
        raise MaskConfigError(f"masks: two entries are labelled {twice!r}; give one a `label` of its own")
    return specs


def _check_setting(key: str, name: str, value: Any) -> None:
    """A setting's value: a count >= 1, a reference source, or a path (the schema leaves entries
    loose so that these messages, not a schema dump, name what is wrong)."""
    if name in ("batches", "batch_size", "rounds"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise MaskConfigError(f"{key}: {value!r} is not allowed; must be an integer >= 1")
    elif name == "like" and value not in (None, *LIKE):
        raise MaskConfigError(f"{key}: {value!r} is not allowed; choose one of {', '.join(LIKE)}")
    elif name == "path" and not isinstance(value, str):
        raise MaskConfigError(f"{key}: {value!r} is not allowed; give a path with {{level}}")


def check_pattern(key: str, pattern: str) -> None:
    """A file source's path names each level's file by `{level}`, and may use `{seed}`."""
    try:
        names = {level: level_file(pattern, level, seed=0) for level in (1, 2)}
    except (KeyError, IndexError, ValueError) as error:
        raise MaskConfigError(
            f"{key}: {pattern!r} is not allowed ({error!r}); the only fields are {{level}} and {{seed}}"
        ) from None
    if names[1] == names[2]:
        raise MaskConfigError(f"{key}: {pattern!r} has no {{level}}; one file per level, e.g. masks/level{{level}}.npz")


def level_file(pattern: str, level: int, seed: int) -> str:
    return pattern.format(level=level, seed=seed)


def ranks_across_layers(source: str, like: str | None) -> bool:
    """Whether `source` ranks weights globally, as its paper does (random: unless it copies a mask's
    per-layer counts), so that it cannot keep `prune.scope: layerwise`."""
    return source in ("random", "snip", "grasp", "synflow") and not like
