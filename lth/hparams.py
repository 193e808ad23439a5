"""Typed hyperparameters, one dataclass per concern, built from YAML sections or CLI flags.

Every field declares its type and the values it allows; `from_dict` rejects unknown keys and bad
values with a message naming the key, the value and what is allowed, before any work starts.
Allowed names for models, activations and data sources come from their registries, imported
lazily so that reading a config (e.g. in the Snakefile) does not import torch unless it must.

Each field also says how it enters a run's hash (`Hparams.identity`, hence its folder's name): the
settings that existed when the run names were pinned (tests/test_hparams.py) always do; a setting
added since must pass `hashed="unless_default"`, so that at its default every existing run keeps its
name, or `hashed="never"` for how a run executes rather than what it computes.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from lth.errors import LthError
from lth.names import ACTIVATIONS, MODELS, SKIP_FORMS
from lth.yamlio import load_yaml

T = TypeVar("T", bound="Hparams")


class HparamError(LthError, ValueError):
    """A hyperparameter is unknown or has a value that is not allowed."""


def hp(
    default: Any,
    help: str,
    *,
    choices: Sequence[Any] | Callable[[], Sequence[Any]] | None = None,
    minimum: float | None = None,
    exclusive_minimum: float | None = None,
    maximum: float | None = None,
    exclusive_maximum: float | None = None,
    hashed: str = "always",
    off_when: tuple[str, Any] | None = None,
) -> Any:
    """A dataclass field with its help text and the values it allows (JSON-schema words). `hashed`:
    always, unless_default or never in a run's hash; `off_when` (field, value): left out of it while
    that field has that value (the details of a loss term that is off), so they do not split the cache."""
    bounds = {
        "minimum": minimum,
        "exclusiveMinimum": exclusive_minimum,
        "maximum": maximum,
        "exclusiveMaximum": exclusive_maximum,
    }
    bounds = {k: v for k, v in bounds.items() if v is not None}
    meta = {"help": help, "choices": choices, "bounds": bounds, "hashed": hashed, "off_when": off_when}
    return dataclasses.field(default=default, metadata=meta)


BOUND_CHECKS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "minimum": (lambda v, b: v >= b, ">="),
    "exclusiveMinimum": (lambda v, b: v > b, ">"),
    "maximum": (lambda v, b: v <= b, "<="),
    "exclusiveMaximum": (lambda v, b: v < b, "<"),
}


_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp`; ints are accepted where floats are expected."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None:
            if type(None) in options:
                return None
            raise HparamError(f"{key}: null is not allowed; expected {' or '.join(_type_name(o) for o in options)}")
        (inner,) = [o for o in options if o is not type(None)]
        return _coerce(value, inner, key)
    if origin is tuple:
        (inner, _) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise HparamError(f"{key}: {value!r} is not allowed; expected a list of {_type_name(inner)}")
        return tuple(_coerce(item, inner, key) for item in value)
    if tp is bool:
        if not isinstance(value, bool):
            raise HparamError(f"{key}: {value!r} is not allowed; expected true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise HparamError(f"{key}: {value!r} is not allowed; expected an integer")
        return value
    if tp is float:
        number = value
        if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
            number = float(value)  # YAML 1.1 (PyYAML) reads `1e-3` as a string, not a number
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise HparamError(f"{key}: {value!r} is not allowed; expected a number")
        if not math.isfinite(number):  # YAML's .inf/.nan, or 1e999: no setting means anything there
            raise HparamError(f"{key}: {value!r} is not allowed; expected a finite number")
        return float(number)
    if tp is str:
        if not isinstance(value, str):
            raise HparamError(f"{key}: {value!r} is not allowed; expected a string")
        return value
    raise TypeError(f"unsupported hparam type {tp!r} for {key}")


def _check(value: Any, field: dataclasses.Field, key: str) -> None:
    items = value if isinstance(value, tuple) else (value,)
    choices = field.metadata.get("choices")
    if callable(choices):
        choices = choices()
    for item in items:
        if item is None:
            continue
        if choices is not None and item not in choices:
            allowed = ", ".join(str(c) for c in choices)
            raise HparamError(f"{key}: {item!r} is not allowed; choose one of: {allowed}")
        for bound_name, bound in field.metadata.get("bounds", {}).items():
            test, symbol = BOUND_CHECKS[bound_name]
            if not test(item, bound):
                raise HparamError(f"{key}: {item!r} is not allowed; must be {symbol} {bound}")


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)  # slow, and a plan builds thousands of hparams


@dataclasses.dataclass(frozen=True)
class Hparams:
    """Base class: a named section of hyperparameters."""

    section: ClassVar[str] = ""

    @classmethod
    def from_dict(cls: type[T], data: Mapping[str, Any] | None) -> T:
        data = dict(data or {})
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise HparamError(
                f"{cls.section}.{unknown[0]}: unknown key; allowed keys in '{cls.section}': {', '.join(known)}"
            )
        hints = _type_hints(cls)
        values = {}
        for name, field in known.items():
            key = f"{cls.section}.{name}"
            value = _coerce(data[name], hints[name], key) if name in data else field.default
            _check(value, field, key)
            values[name] = value
        instance = cls(**values)
        instance.validate()
        return instance

    def validate(self) -> None:
        """Cross-field checks; subclasses override."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def identity(self) -> dict[str, Any]:
        """The settings that shape a result, as a run's hash takes them (each field's `hashed` and
        `off_when`): a setting at a default that changes nothing never renames a run."""
        settings = self.to_dict()
        return {
            f.name: settings[f.name]
            for f in dataclasses.fields(self)
            if f.metadata["hashed"] != "never"
            and not (f.metadata["hashed"] == "unless_default" and settings[f.name] == _plain(f.default))
            and not (f.metadata["off_when"] and settings[f.metadata["off_when"][0]] == f.metadata["off_when"][1])
        }

    @classmethod
    def what_it_computes(cls, settings: Mapping[str, Any]) -> dict[str, Any]:
        """`settings` (a section, as to_dict gives it) without how the job runs (`hashed="never"`):
        what resume-state fingerprints compare."""
        never = {f.name for f in dataclasses.fields(cls) if f.metadata["hashed"] == "never"}
        return {key: value for key, value in settings.items() if key not in never}

    def replace(self: T, **changes: Any) -> T:
        return type(self).from_dict({**self.to_dict(), **changes})

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """One `--section.field VALUE` flag per field; values are parsed as YAML (`[0.5, 0.75]`, `null`)."""
        group = parser.add_argument_group(f"{cls.section} hyperparameters")
        for field in dataclasses.fields(cls):
            group.add_argument(
                f"--{cls.section}.{field.name}",
                dest=f"{cls.section}.{field.name}",
                metavar="VALUE",
                default=argparse.SUPPRESS,
                help=f"{field.metadata['help']} (default: {_plain(field.default)})",
            )

    @classmethod
    def from_sources(cls: type[T], config: Mapping[str, Any] | None, args: argparse.Namespace | None) -> T:
        """Dataclass defaults < the config's section < command-line flags."""
        data = dict((config or {}).get(cls.section) or {})
        for name, raw in vars(args or argparse.Namespace()).items():
            section, _, key = name.partition(".")
            if section == cls.section and key:
                data[key] = cls._flag_value(key, raw, f"--{name}") if isinstance(raw, str) else raw
        return cls.from_dict(data)

    @classmethod
    def _flag_value(cls, key: str, raw: str, flag: str) -> Any:
        """A flag's value: YAML (`[0.5, 0.75]`, `true`, `null`), except for a text setting (a name, a
        path), which is taken as typed: YAML would read the folder `run #2` as `run` (the rest a
        comment) and `a: b` as a mapping. There only `null` (or `~`) means None, where None is allowed."""
        kind = next((field.type for field in dataclasses.fields(cls) if field.name == key), None)
        if kind == "str":
            return raw
        if kind == "str | None":
            return None if raw in ("null", "~") else raw
        return load_yaml(raw, flag)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _source_names() -> list[str]:
    from lth.data.sources import SOURCES

    return list(SOURCES)


@dataclasses.dataclass(frozen=True)
class ModelHparams(Hparams):
    section: ClassVar[str] = "model"

    name: str = hp("resnet18", "architecture", choices=MODELS)
    width: int = hp(64, "base channel count (64 is the paper's)", minimum=1)
    activation: str = hp("relu", "activation at every call site", choices=ACTIVATIONS)
    skip: str = hp(
        "none",
        "jump branches for re-training: none, conv1x1 (the official 1x1 conv + BN) or identity (parameter-free)",
        choices=SKIP_FORMS,
    )


@dataclasses.dataclass(frozen=True)
class DataHparams(Hparams):
    section: ClassVar[str] = "data"

    name: str = hp("cifar10", "dataset source", choices=_source_names)
    # Where the data lives and how it got there are not what a run computes (data_identity keys the content).
    root: str | None = hp(None, "folder holding (or receiving) the dataset; not needed for digits", hashed="never")
    download: bool = hp(False, "download the dataset into root when it is missing", hashed="never")
    subset_per_class: int | None = hp(None, "class-balanced training subset: images per class", minimum=1)
    val_fraction: float = hp(
        0.1, "share of the training set held out for validation", exclusive_minimum=0.0, exclusive_maximum=1.0
    )


@dataclasses.dataclass(frozen=True)
class TrainHparams(Hparams):
    section: ClassVar[str] = "train"

    epochs: int = hp(180, "training epochs (E)", minimum=1)
    batch_size: int = hp(128, "mini-batch size", minimum=1)
    lr: float = hp(0.1, "initial SGD learning rate", exclusive_minimum=0.0)
    momentum: float = hp(0.9, "SGD momentum", minimum=0.0, exclusive_maximum=1.0)
    nesterov: bool = hp(False, "Nesterov momentum")
    weight_decay: float = hp(2e-4, "L2 weight decay", minimum=0.0)
    milestones: tuple[float, ...] = hp(
        (0.5, 0.75),
        "learning-rate drops, as fractions of the epochs: each "
        "before 0-based epoch round(fraction * epochs) (Python's rounding), at "
        "least 1, so the first epoch always runs at train.lr",
        exclusive_minimum=0.0,
        exclusive_maximum=1.0,
    )
    gamma: float = hp(0.1, "learning-rate factor at each milestone", exclusive_minimum=0.0, maximum=1.0)
    precision: str = hp("fp32", "fp32, or bf16 autocast (CUDA only)", choices=("fp32", "bf16"))
    compile: bool = hp(
        False,
        "torch.compile the model for training steps; not part of a run's hash. Off by "
        "default: measured on the CPU, the compile takes 40 s or more and the compiled step is no "
        "faster at width 64 (BENCHMARKS.md)",
        hashed="never",  # how a run executes, not what it computes
    )
    label_smoothing: float = hp(
        0.0, "label smoothing: probability mass moved off the true class (0 = off)", minimum=0.0, exclusive_maximum=1.0
    )
    label_smoothing_form: str = hp(
        "official",
        "official: a/(C-1) on each other class (the ToST code); "
        "pytorch: a/C on every class (CrossEntropyLoss(label_smoothing=a))",
        choices=("official", "pytorch"),
        off_when=("label_smoothing", 0),
    )
    kd_alpha: float = hp(
        0.0,
        "knowledge distillation: weight of the teacher term, the label term gets "
        "1 - kd_alpha (0 = off; > 0 needs a teacher)",
        minimum=0.0,
        maximum=1.0,
    )
    kd_temperature: float = hp(5.0, "distillation temperature T", exclusive_minimum=0.0, off_when=("kd_alpha", 0))
    kd_reduction: str = hp(
        "batchmean",
        "batchmean: the KL per sample; mean: also divided by the number of classes, as in the KD-ticket code",
        choices=("batchmean", "mean"),
        off_when=("kd_alpha", 0),
    )

    def milestone_epochs(self) -> list[int]:
        """The 0-based epochs from which each drop applies: round(fraction * epochs) with Python's
        round (half to even), clamped to >= 1 so no drop comes before the first epoch (with 1 epoch,
        0.5 would round to 0)."""
        return sorted(max(1, round(fraction * self.epochs)) for fraction in self.milestones)

    def lr_at(self, epoch: int) -> float:
        """Learning rate during 0-based `epoch`: a pure function, so rewinding and resuming need no scheduler state."""
        drops = sum(1 for milestone in self.milestone_epochs() if epoch >= milestone)
        return self.lr * self.gamma**drops


@dataclasses.dataclass(frozen=True)
class PruneHparams(Hparams):
    section: ClassVar[str] = "prune"

    rate: float = hp(
        0.2, "fraction of the remaining weights removed per round", exclusive_minimum=0.0, exclusive_maximum=1.0
    )
    scope: str = hp(
        "global", "rank magnitudes across all layers, or within each layer", choices=("global", "layerwise")
    )
    include_linear: bool = hp(False, "also prune Linear weights (Conv2d weights always are)")


@dataclasses.dataclass(frozen=True)
class GradinitHparams(Hparams):
    """GradInit (Zhu et al. 2021), applied once before (re-)training; defaults are the ToST code's flags."""

    section: ClassVar[str] = "gradinit"

    enabled: bool = hp(False, "learn one scale per weight and bias tensor before training")
    algorithm: str = hp(
        "sgd",
        "the optimizer whose first step is simulated: sgd (L2 gradient norm) or adam (sign step, L1 norm)",
        choices=("sgd", "adam"),
    )
    normalize_grad: bool = hp(True, "sgd: step along g/||g|| rather than g")
    eta: float = hp(0.1, "look-ahead step size", exclusive_minimum=0.0)
    gamma: float = hp(1.0, "gradient-norm bound: above it a step only shrinks the norm", exclusive_minimum=0.0)
    lr: float = hp(1e-2, "Adam learning rate of the scales", exclusive_minimum=0.0)
    min_scale: float = hp(0.01, "lower bound of weight scales (bias scales are bounded by 0)", minimum=0.0)
    iterations: int = hp(180, "GradInit iterations", minimum=1)
    grad_clip: float = hp(1.0, "clip each scale's gradient to +-this (0 = off)", minimum=0.0)
    batch_size: int = hp(
        256,
        "images per gradient batch S0 u S1, drawn as two halves (the ToST code's two "
        "loader batches of 128; GradInit's own CIFAR code uses 128)",
        minimum=2,
    )
    weights: str = hp(
        "dense",
        "what GradInit rescales: dense (the unpruned starting weights; the mask is "
        "applied after it, as in the ToST code) or ticket (the masked weights: the gradient "
        "norm and the look-ahead step ignore pruned weights)",
        choices=("dense", "ticket"),
    )


SECTIONS: tuple[type[Hparams], ...] = (ModelHparams, DataHparams, TrainHparams, PruneHparams, GradinitHparams)
