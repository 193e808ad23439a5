"""Several experiments in one config: `experiments: {name: overrides}` over a shared base.

    seeds: [0, 1, 2]
    train: {epochs: 180}
    variants: [lth, at+trt]
    experiments:
      resnet18-cifar10: {model: {name: resnet18}, data: {name: cifar10}}
      vgg16-cifar100: {model: {name: vgg16}, data: {name: cifar100}}

Each experiment is the base (every key but `experiments`) with its overrides merged in: mappings
merge key by key, anything else (lists, numbers, names) replaces the base's value; its name is its
key. The experiments share one set of rules and, since run folders are named by what they
compute, every run whose settings agree (a shared dense network, a shared mask chain). A config
without `experiments` is one experiment, as before. Torch-free: the Snakefile parses it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from lth.errors import LthError

# How jobs run and where they write is the same for every experiment: the run folders they share
# are one cache, built with one set of job settings.
WORKFLOW_KEYS = ("results", "cache_version", "threads", "device", "resources")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
RESERVED = ("runs", "figures", "logs", "data")  # folders of results/ itself


class ExperimentsError(LthError):
    """The `experiments` section is malformed."""


def merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` merged in: mappings key by key, any other value replaced."""
    merged = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def experiment_configs(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Experiment name -> its config (not yet validated), in the config's order."""
    if "experiments" not in config:
        _check_name("experiment", config.get("experiment"))
        return {str(config.get("experiment")): config}  # the schema fills its defaults in place
    section = config["experiments"]
    if not isinstance(section, Mapping) or not section:
        raise ExperimentsError(
            f"experiments: {section!r} is not allowed; give a mapping of experiment names to "
            "their overrides of the base config, e.g. {resnet18: {model: {name: resnet18}}}"
        )
    if "experiment" in config:
        raise ExperimentsError(
            f"experiment: {config['experiment']!r} is not allowed beside `experiments`, whose "
            f"keys name the experiments ({', '.join(map(str, section))})"
        )
    base = {key: value for key, value in config.items() if key != "experiments"}
    configs = {}
    for name, overrides in section.items():
        _check_name("experiments", name)
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise ExperimentsError(
                f"experiments: the name {name!r} is not allowed; use letters, digits, '.', '_' "
                "and '-', starting with a letter or digit (it names a folder)"
            )
        overrides = overrides or {}
        if not isinstance(overrides, Mapping):
            raise ExperimentsError(
                f"experiments.{name}: {overrides!r} is not allowed; give a mapping of overrides "
                "(or nothing, for the base itself)"
            )
        fixed = [key for key in (*WORKFLOW_KEYS, "experiment", "experiments") if key in overrides]
        if fixed:
            raise ExperimentsError(
                f"experiments.{name}.{fixed[0]}: not allowed in an experiment; "
                f"{', '.join(WORKFLOW_KEYS)} are set once, in the base config, for every "
                "experiment (their runs share one cache)"
            )
        configs[name] = {**merge(base, overrides), "experiment": name}
    return configs


def _check_name(key: str, name: Any) -> None:
    if name in RESERVED:
        raise ExperimentsError(
            f"{key}: the name {name!r} is not allowed; results/{name}/ is not an experiment's "
            f"folder ({', '.join(RESERVED)} are taken)"
        )
