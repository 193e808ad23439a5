"""The mask sources (`lth prune --method`, the config's `masks`), one entry each; torch-free, since
Snakemake plans every job from here (the drawing functions, in lth/mask_sources.py, load lazily).
The config's `masks` list:

    masks:
      - magnitude                                   # prune.method's chain (IMP or OMP), the paper's tickets
      - {source: random, like: magnitude, label: random_like}
      - snip
      - {source: rigl, update_every: 50}            # a sparse training's final mask (lth/sparse)
      - {source: nm, n: 2, m: 4}                    # 2:4 by magnitude of the trained dense network
      - {source: file, path: "my_masks/level{level}.npz"}  # quoted: braces are YAML syntax

An entry is a source name or a mapping with `source`, an optional `label` (the summary's
`mask_source`; default: the source's name; labels are unique) and that source's settings, with their
defaults. Every source but `file` keeps IMP level k's count at level k, so levels line up across
sources; a sparse training (gmp, set, rigl) ends at level k's nominal sparsity 1 - (1 - rate)^k, to
the nearest weight. Its own runs are rows too, labelled `<label>_run`. An N:M mask (`nm`) has one
sparsity, 1 - N/M, so it is drawn once, in the rows of the experiment's first level. A label names a
series only: it never enters a hash.
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


def check_indivisible(key: str, value: Any) -> None:
    from lth.sparse.nm import INDIVISIBLE

    if value not in INDIVISIBLE:
        raise MaskConfigError(f"{key}: {value!r} is not allowed; choose one of {', '.join(INDIVISIBLE)}")


def check_nm_entry(key: str, settings: Mapping[str, Any]) -> None:
    """N:M's own rule (lth.sparse.nm.check_nm), named by the entry's keys."""
    from lth.sparse.nm import check_nm

    try:
        check_nm(settings["n"], settings["m"])
    except LthError:
        raise MaskConfigError(
            f"{key}: n {settings['n']!r} and m {settings['m']!r} are not allowed; N:M needs 1 <= n < m, e.g. 2:4"
        ) from None


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
    algorithm: str = ""  # a sparse training (lth/sparse/settings.py): the final mask of its own run, per level
    trained: bool = False  # ranks the trained dense network's weights (as OMP does), not theta0's
    one_level: bool = False  # its masks have one sparsity whatever the level: drawn at the first level only
    check: Callable[[str, Mapping[str, Any]], None] | None = None  # checks an entry's settings together

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
NM = (
    Setting("n", 2, "nm-n", "N: weights kept in every group of M"),
    Setting("m", 4, "nm-m", "M: the group, consecutive weights along the reduction dimension"),
    Setting(
        "indivisible",
        "refuse",
        "nm-indivisible",
        "a layer whose reduction size is not a multiple of M: refuse, or keep it dense",
        check_indivisible,
    ),
)
MASK_SOURCES: dict[str, MaskSource] = {
    "magnitude": MaskSource(likeable=True),  # prune.method (IMP/OMP), prune.rate/scope/include_linear, rewind_epoch
    "random": MaskSource((LIKE,), global_ranking=True, drawer="draw_random"),
    "snip": MaskSource(BATCHES, needs_data=True, global_ranking=True, drawer="draw_snip"),
    "grasp": MaskSource(BATCHES, needs_data=True, global_ranking=True, drawer="draw_grasp"),
    "synflow": MaskSource((ROUNDS,), needs_data=True, global_ranking=True, drawer="draw_synflow"),  # the image size
    "file": MaskSource((PATH,), drawer="draw_file"),
    "nm": MaskSource(NM, drawer="draw_nm", trained=True, one_level=True, check=check_nm_entry),
    **{name: MaskSource(drawer="draw_trained", algorithm=name) for name in ("gmp", "set", "rigl")},
}
OWN_RUN = "{label}_run"  # the `mask_source` of a sparse training's own runs
LEVEL_SET = ("sparsity", "include_linear")  # a sparse training's settings that come from the level and `prune`


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
        if MASK_SOURCES[source].algorithm:
            specs.append(MaskSpec(source, label, algorithm_settings(key, source, entry)))
            continue
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
        filled = {**{name: s.default for name, s in settings.items()}, **entry}
        if MASK_SOURCES[source].check:
            MASK_SOURCES[source].check(key, filled)
        specs.append(MaskSpec(source, label, filled))
    labels = [spec.label for spec in specs]
    labels += [OWN_RUN.format(label=spec.label) for spec in specs if MASK_SOURCES[spec.source].algorithm]
    twice = next((label for label in labels if labels.count(label) > 1), None)
    if twice:
        raise MaskConfigError(
            f"masks: two entries are labelled {twice!r} (a sparse training's own runs are `<label>_run`); give "
            "one a `label` of its own"
        )
    return specs


def one_sparsity(spec: MaskSpec) -> bool:
    """Whether `spec`'s masks have one sparsity whatever the level (N:M: `nm`, or GMP to N:M), so that
    they are drawn at the first level only."""
    return MASK_SOURCES[spec.source].one_level or bool(spec.settings.get("nm"))


def level_file(pattern: str, level: int, seed: int) -> str:
    return pattern.format(level=level, seed=seed)


def algorithm_settings(key: str, source: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    """A sparse training's settings (`masks[i]` is `key`), checked, with their defaults; the sparsity
    and include_linear come from each level and `prune`."""
    from lth.hparams import HparamError
    from lth.sparse.settings import ALGORITHMS, nm_sparsity

    hparams = ALGORITHMS[source]
    given = [name for name in LEVEL_SET if name in entry]
    if given:
        raise MaskConfigError(
            f"{key}.{given[0]}: not a setting of a `masks` entry: each level sets the sparsity "
            "(prune.rate, prune.levels) and prune.include_linear which weights are sparse"
        )
    probe = dict(entry)
    try:
        if entry.get("nm"):  # GMP to N:M ends at 1 - N/M, whatever the level
            probe["sparsity"] = nm_sparsity(entry["nm"])
        settings = hparams.from_dict(probe).identity()  # a setting added later, at its default, renames nothing
    except (HparamError, LthError) as error:
        raise MaskConfigError(str(error).replace(f"{source}.", f"{key}.", 1)) from None
    return {name: value for name, value in settings.items() if name not in LEVEL_SET}
