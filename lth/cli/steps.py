"""The workflow's steps called from Python: `lth init`, `lth prune` and `lth train` with typed settings.

    from lth.hparams import DataHparams, ModelHparams, PruneHparams, TrainHparams
    model, data, train = ModelHparams(width=16), DataHparams(name="cifar10"), TrainHparams(epochs=30)
    lth.init_weights("run/init.pt", seed=0, model=model, data=data)
    dense = lth.train_run("run/dense", init="run/init.pt", seed=0, model=model, data=data, train=train)
    lth.draw_mask("run/mask1.pt", weights="run/dense/final.pt", prune=PruneHparams(rate=0.2))
    ticket = lth.train_run("run/ticket", init="run/init.pt", mask="run/mask1.pt", seed=0, ...)

Each call turns the settings into the flags a workflow job passes (lth.plan.arguments.flags) and runs
the command through the same parser and code, in this process: no second code path. As in the
workflow, an intact result already at the output is kept (--reuse), a damaged one is redone
(--force), and an interrupted training resumes. Errors raise lth.errors.LthError, naming the bad value.
"""

from __future__ import annotations

import contextlib
import io
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lth.api import Ticket
    from lth.hparams import DataHparams, GradinitHparams, Hparams, ModelHparams, PruneHparams, TrainHparams


def _run(command: str, *words: Any, sections: tuple[Hparams | None, ...] = ()) -> None:
    from lth.cli import build_parser
    from lth.cli.options import check_common
    from lth.errors import UsageError
    from lth.plan.arguments import flags

    present = [section for section in sections if section is not None]
    argv = [command, *(str(word) for word in words), "--reuse", "--force", *shlex.split(flags(*present))]
    try:  # argparse prints its error and exits: in a notebook that is an exception naming the value
        with contextlib.redirect_stderr(io.StringIO()) as printed:
            args = build_parser().parse_args(argv)
    except SystemExit:
        raise UsageError(printed.getvalue().strip().splitlines()[-1]) from None
    check_common(args)
    args.func(args)


def _optional(**values: Any) -> list[str]:
    """`--name value` for each value given (None: the command's default)."""
    return [word for name, value in values.items() if value is not None for word in (f"--{name}", value)]


def init_weights(
    out: str | Path, *, seed: int, model: ModelHparams, data: DataHparams, threads: int | None = None
) -> Path:
    """theta0 of `model` for `seed` (`lth init`), written to `out`; returns its path."""
    _run("init", "--out", out, "--seed", seed, *_optional(threads=threads), sections=(model, data))
    return Path(out)


def draw_mask(
    out: str | Path,
    *,
    weights: str | Path,
    method: str = "magnitude",
    prune: PruneHparams | None = None,
    mask: str | Path | None = None,
    rounds: int = 1,
    seed: int = 0,
    data: DataHparams | None = None,
    threads: int | None = None,
    **source_settings: Any,
) -> Path:
    """A mask (`lth prune`) written to `out` (.pt, with its .json sidecar); returns its path.

    `method`: magnitude pruning of the trained `weights` (given the current `mask`: one IMP step, or
    `rounds` steps at once for one-shot pruning), or another source drawn from theta0 at level
    `rounds`'s count (random, snip, grasp, synflow, file; lth/mask_registry.py), with its settings
    as keywords (`like=`, `file=`, ...; `lth prune --help` lists them) and `data` where it needs data."""
    words = ["--weights", weights, "--method", method, "--rounds", rounds, "--seed", seed]
    options = {name.replace("_", "-"): value for name, value in source_settings.items()}
    words += _optional(mask=mask, threads=threads, **options)
    _run("prune", "--out", out, *words, sections=(prune, data))
    return Path(out)


def train_run(
    out_dir: str | Path,
    *,
    init: str | Path,
    seed: int,
    model: ModelHparams,
    data: DataHparams,
    train: TrainHparams,
    mask: str | Path | None = None,
    teacher: str | Path | None = None,
    gradinit: GradinitHparams | None = None,
    start_epoch: int | None = None,
    save_epochs: tuple[int, ...] = (),
    device: str = "auto",
    threads: int | None = None,
) -> Ticket:
    """A training (`lth train`) from `init` into the run folder `out_dir`: dense, or sparse with `mask`
    (and distilled from `teacher` when `train.kd_alpha` > 0, rescaled by GradInit when
    `gradinit.enabled`); returns the finished run as a ticket (lth.load_ticket)."""
    from lth.api import load_ticket

    words = ["--init", init, "--seed", seed, "--device", device]
    words += _optional(mask=mask, teacher=teacher, threads=threads, **{"start-epoch": start_epoch})
    if save_epochs:
        words += ["--save-epochs", *save_epochs]
    _run("train", "--out-dir", out_dir, *words, sections=(model, data, train, gradinit))
    return load_ticket(out_dir)
