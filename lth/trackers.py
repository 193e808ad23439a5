"""Trackers: measurements `lth train --track NAME` takes at the end of every epoch, as extra
metrics.csv columns. One entry each in `TRACKERS`; the CLI derives `--track`'s choices and each
setting's flag `--NAME-SETTING` from it. The chosen settings go into the run's record
(hparams.yaml), so a resume state written with other tracking is refused."""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lth.analysis.registry import PowerIterationSettings  # hessian_per_epoch's settings
from lth.errors import UsageError

if TYPE_CHECKING:  # they import torch, which a command pays for only when it trains
    from lth.data import Data
    from lth.masks import Mask
    from lth.train import EpochCallback


@dataclass(frozen=True)
class Tracker:
    """A registry entry: its help, its settings and how the epoch callback is built."""

    help: str
    settings: dict[str, tuple[int | float, str]]  # setting -> (default, help); the flag's type is the default's
    check: Callable[[dict[str, Any]], None]  # raises UsageError naming the flag; runs before the data load
    build: Callable[[dict[str, Any], Data, Mask | None], EpochCallback]  # after the data load, before training


def flag(name: str, setting: str) -> str:
    """The command-line flag of a tracker's setting."""
    return f"--{name}-{setting.replace('_', '-')}"


def _check_hessian(settings: dict[str, Any]) -> None:
    # `lth analyze hessian` names its own flags and allows --sample 0 (the whole training split, an
    # epoch's worth of Hessian-vector products per iteration): not a per-epoch setting.
    checks = [
        ("sample", settings["sample"] >= 1, ">= 1, at most the training split's images"),
        ("sample_seed", settings["sample_seed"] >= 0, ">= 0"),
        ("tol", math.isfinite(settings["tol"]) and settings["tol"] > 0, "a finite number > 0"),
        ("max_iter", settings["max_iter"] >= 1, ">= 1"),
    ]
    for setting, ok, allowed in checks:
        if not ok:
            raise UsageError(f"{flag('hessian', setting)}: {settings[setting]} is not allowed; must be {allowed}")


def _hessian(settings: dict[str, Any], dataset: Data, mask: Mask | None) -> EpochCallback:
    from lth.analysis.hessian import HessianTracker

    available = len(dataset.train.labels)
    if settings["sample"] > available:  # known only once the data is loaded; still before training
        raise UsageError(
            f"--hessian-sample: {settings['sample']} is not allowed; the training split has only "
            f"{available} images (must be in [1, {available}])"
        )
    return HessianTracker(dataset, mask, **settings)


TRACKERS: dict[str, Tracker] = {
    "hessian": Tracker(
        "the top eigenvalue of the masked Hessian of plain cross-entropy, as `lth analyze hessian` computes it",
        {f.name: (f.default, f.metadata["help"]) for f in dataclasses.fields(PowerIterationSettings)},
        _check_hessian,
        _hessian,
    ),
}


def chosen(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The trackers --track asks for and their settings (flags, else defaults), checked. A setting
    of a tracker that is not asked for is an error: it would be silently ignored."""
    tracking = {}
    for name, tracker in TRACKERS.items():
        given = {setting: getattr(args, f"{name}_{setting}", None) for setting in tracker.settings}
        if name not in args.track:
            unused = [setting for setting, value in given.items() if value is not None]
            if unused:
                raise UsageError(
                    f"{flag(name, unused[0])}: only used with --track {name}; add --track {name} or drop the flag"
                )
            continue
        settings = {
            setting: default if given[setting] is None else given[setting]
            for setting, (default, _) in tracker.settings.items()
        }
        tracker.check(settings)
        tracking[name] = settings
    return tracking


def callbacks(tracking: dict[str, dict[str, Any]], dataset: Data, mask: Mask | None) -> list[EpochCallback]:
    """The epoch callbacks of the chosen trackers (`chosen`), for this data and mask."""
    return [TRACKERS[name].build(settings, dataset, mask) for name, settings in tracking.items()]
