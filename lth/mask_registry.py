"""The mask sources (`lth prune --method`, the config's `masks`), one entry each; torch-free, since
Snakemake plans every job from here (the drawing functions, in lth/mask_sources.py, load lazily).
The config's `masks` list:

    masks:
      - magnitude                                   # prune.method's chain (IMP or OMP), the paper's tickets
      - {source: random, like: magnitude, label: random_like}
      - snip
      - {source: file, path: "my_masks/level{level}.npz"}  # quoted: braces are YAML syntax

An entry is a source name or a mapping with `source`, an optional `label` (the summary's
`mask_source`; default: the source's name; labels are unique) and that source's settings, with their
defaults. Every source but `file` keeps IMP level k's count at level k, so levels line up across
sources. A label names a series only: it never enters a hash.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lth.errors import LthError

LABEL = re.compile(r"[a-z0-9_]+")
MISSING = ("nan", "null", "na", "none")  # labels a CSV reader takes for an empty cell


class MaskConfigError(LthError):
    """A `masks` entry that cannot be planned."""


def check_count(key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MaskConfigError(f"{key}: {value!r} is not allowed; must be an integer >= 1")


def check_like(key: str, value: Any) -> None:
    likeable = [name for name, source in MASK_SOURCES.items() if source.likeable]
    if value not in (None, *likeable):
        raise MaskConfigError(f"{key}: {value!r} is not allowed; choose one of {', '.join(likeable)}")


def check_path(key: str, value: Any) -> None:
    """A file source's path names each level's file by `{level}`, and may use `{seed}`."""
    if not isinstance(value, str):
        raise MaskConfigError(f"{key}: {value!r} is not allowed; give a path with {{level}}")
    try:
        names = {level: level_file(value, level, seed=0) for level in (1, 2)}
    except (KeyError, IndexError, ValueError) as error:
        raise MaskConfigError(
            f"{key}: {value!r} is not allowed ({error!r}); the only fields are {{level}} and {{seed}}"
        ) from None
    if names[1] == names[2]:
        raise MaskConfigError(f"{key}: {value!r} has no {{level}}; one file per level, e.g. masks/level{{level}}.npz")


@dataclass(frozen=True)
class Setting:
    """A source's setting: the config's key and default, and the `lth prune` flag that takes it."""

    name: str
    default: Any
    flag: str  # `lth prune --FLAG`; sources sharing a flag share its help
    help: str
    check: Callable[[str, Any], None] = check_count  # raises MaskConfigError naming the key
    # How the workflow passes it: its value, a mask the job reads (prune_inputs: "input"), or "file": the
    # level's file by path (a pattern with `{level}`, and optionally `{seed}`).
    role: str = "value"
    required: str = ""  # what the flag holds, for a setting the source cannot go without


@dataclass(frozen=True)
class MaskSource:
    settings: tuple[Setting, ...] = ()
    needs_data: bool = False  # reads training batches or the image size: its prune job gets the --data.* flags
    global_ranking: bool = False  # ranks weights across layers as its paper does (no `prune.scope: layerwise`)
    likeable: bool = False  # `random` may copy its masks' per-layer counts (`like`)
    drawer: str = ""  # its function in lth/mask_sources.py: (args, config, model, names, count) -> (mask, record)

    @property
    def user_file(self) -> str | None:
        """Its setting naming the user's file of each level (each level then a chain of its own)."""
        return next((setting.name for setting in self.settings if setting.role == "file"), None)

    def draw(self) -> Callable[..., Any] | None:
        """Its drawing function (torch), or None for magnitude pruning, which `lth prune` does itself."""
        from lth import mask_sources

        return getattr(mask_sources, self.drawer) if self.drawer else None


LIKE = Setting(
    "like", None, "like", "keep each layer's count of this mask (the random-pruning control)", check_like, "input"
)
BATCHES = (
    Setting("batches", 1, "batches", "training batches scored"),
    Setting("batch_size", 128, "batch-size", "images per batch"),
)
ROUNDS = Setting("rounds", 100, "synflow-rounds", "pruning rounds (exponential schedule)")
PATH = Setting(
    "path",
    None,
    "file",
    "the user's mask (.pt or .npz, parameter name -> boolean array; or a torch.nn.utils.prune state dict, "
    "or open_lth's mask.pth)",
    check_path,
    "file",
    "the user's mask file",
)
MASK_SOURCES: dict[str, MaskSource] = {
    "magnitude": MaskSource(likeable=True),  # prune.method (IMP/OMP), prune.rate/scope/include_linear, rewind_epoch
    "random": MaskSource((LIKE,), global_ranking=True, drawer="draw_random"),
    "snip": MaskSource(BATCHES, needs_data=True, global_ranking=True, drawer="draw_snip"),
    "grasp": MaskSource(BATCHES, needs_data=True, global_ranking=True, drawer="draw_grasp"),
    "synflow": MaskSource((ROUNDS,), needs_data=True, global_ranking=True, drawer="draw_synflow"),  # the image size
    "file": MaskSource((PATH,), drawer="draw_file"),
}


def source_flags() -> dict[str, tuple[Setting, list[str]]]:
    """`lth prune`'s source flags: flag -> its setting and the sources that read it; the path flags
    first, as `lth prune --help` has always listed them."""
    found: dict[str, tuple[Setting, list[str]]] = {}
    for name, source in MASK_SOURCES.items():
        for setting in source.settings:
            found.setdefault(setting.flag, (setting, []))[1].append(name)
    return dict(sorted(found.items(), key=lambda item: item[1][0].default is not None))


def source_of(method: str) -> MaskSource:
    """A chain's source: the IMP and OMP chains are magnitude pruning's."""
    return MASK_SOURCES["magnitude" if method in ("imp", "omp") else method]


def ranks_across_layers(source: str, like: str | None) -> bool:
    """Whether `source` ranks weights globally (random: unless it copies a mask's per-layer counts), so
    that it cannot keep `prune.scope: layerwise`."""
    return MASK_SOURCES[source].global_ranking and not like


@dataclass(frozen=True)
class MaskSpec:
    source: str
    label: str
    settings: Mapping[str, Any]


def parse_masks(entries: list[Any]) -> list[MaskSpec]:
    """The `masks` entries as specs with every setting filled in, each checked (the schema only asks for
    names or mappings, so that these messages, not a schema dump, name what is wrong)."""
    specs = []
    for index, entry in enumerate(entries):
        key = f"masks[{index}]"
        if not isinstance(entry, (str, Mapping)):
            raise MaskConfigError(f"{key}: {entry!r} is not allowed; give a source name or {{source: NAME, ...}}")
        entry = {"source": entry} if isinstance(entry, str) else dict(entry)
        source = entry.pop("source", None)
        if source not in MASK_SOURCES:
            raise MaskConfigError(f"{key}: source {source!r} is not allowed; choose one of {', '.join(MASK_SOURCES)}")
        label = entry.pop("label", source)
        if not isinstance(label, str) or not LABEL.fullmatch(label) or label in MISSING:
            raise MaskConfigError(
                f"{key}.label: {label!r} is not allowed; use lower-case letters, digits and '_' "
                f"(not {', '.join(MISSING)}, which tables read as empty)"
            )
        settings = {setting.name: setting for setting in MASK_SOURCES[source].settings}
        unknown = [name for name in entry if name not in settings]
        if unknown:
            allowed = ", ".join(settings) or "none"
            raise MaskConfigError(f"{key}.{unknown[0]}: not a setting of source {source!r}; its settings: {allowed}")
        missing = [name for name, setting in settings.items() if setting.required and entry.get(name) is None]
        if missing:
            raise MaskConfigError(f"{key}: source {source!r} needs `{missing[0]}`")
        for name, value in entry.items():
            settings[name].check(f"{key}.{name}", value)
        specs.append(MaskSpec(source, label, {**{name: s.default for name, s in settings.items()}, **entry}))
    labels = [spec.label for spec in specs]
    twice = next((label for label in labels if labels.count(label) > 1), None)
    if twice:
        raise MaskConfigError(f"masks: two entries are labelled {twice!r}; give one a `label` of its own")
    return specs


def level_file(pattern: str, level: int, seed: int) -> str:
    return pattern.format(level=level, seed=seed)
