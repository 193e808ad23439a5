"""`lth analyze`: one subcommand per analysis (lth/analysis/registry.py: its help and its settings'
flags), explicit input and output paths, a CSV out. `COMMANDS` says how each runs.

Each reads a checkpoint (and its mask, if sparse), loads the data the run was trained on (the
`data` settings and `--seed`, which fixes the run's train/validation split), and writes one
long-form CSV. The definitions live in the analysis modules' docstrings.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lth import store
from lth.analysis.registry import ANALYSES, Analysis, PowerIterationSettings, option
from lth.cli.options import Command, add_command, add_config, add_device, add_run_options, add_store_flags
from lth.errors import UsageError
from lth.hparams import BOUND_CHECKS, DataHparams, Hparams
from lth.inputs import require_file

if TYPE_CHECKING:
    from lth.analysis.subject import Subject

log = logging.getLogger("lth")
Run = Callable[[argparse.Namespace, "Subject"], None]


def _write_csv(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    from lth.io import write_csv

    rows = list(rows)
    write_csv(path, rows, list(rows[0]))
    log.info("wrote %s (%d rows)", path, len(rows))


def cmd_activations(args: argparse.Namespace, subject: Subject) -> None:
    from lth.analysis.activations import activation_sparsity
    from lth.data.batches import Batches

    test = subject.data.test
    batches = Batches(test, 500, subject.data.mean, subject.data.std, subject.device)
    results = activation_sparsity(subject.model, batches, thresholds=args.thresholds)  # one pass, every threshold
    _write_csv(Path(args.out), (row for result in results for row in result.rows()))


def cmd_landscape(args: argparse.Namespace, subject: Subject) -> None:
    from lth.analysis.landscape import landscape_batches, landscape_directions, weight_landscape

    batches = landscape_batches(subject.data, "train", args.sample, args.sample_seed, device=subject.device)
    directions = landscape_directions(subject.model, subject.mask, seed=args.sample_seed)
    points = weight_landscape(
        subject.model, batches, directions, points=args.points, extent=args.extent, part=args.part, parts=args.parts
    )
    _write_csv(Path(args.out), (dataclasses.asdict(point) for point in points))


def cmd_input_landscape(args: argparse.Namespace, subject: Subject) -> None:
    from lth.analysis.landscape import input_landscape, landscape_batches

    batches = landscape_batches(subject.data, "test", args.sample, args.sample_seed, device=subject.device)
    points = input_landscape(
        subject.model,
        batches,
        points=args.points,
        extent=args.extent,
        seed=args.sample_seed,
        part=args.part,
        parts=args.parts,
    )
    _write_csv(Path(args.out), (dataclasses.asdict(point) for point in points))


def _hessian(args: argparse.Namespace, subject: Subject) -> Any:
    from lth.analysis.hessian import hessian_eigen

    return hessian_eigen(
        subject.model,
        subject.data,
        subject.mask,
        size=None if args.sample == 0 else args.sample,
        sample_seed=args.sample_seed,
        k=getattr(args, "k", 1),
        tol=args.tol,
        max_iter=args.max_iter,
        device=subject.device,
    )


def cmd_hessian(args: argparse.Namespace, subject: Subject) -> None:
    from lth.io import write_json

    result = _hessian(args, subject)
    write_json(Path(args.out), result.to_dict())
    log.info(
        "top eigenvalue %.6g after %d iterations (converged: %s) in %.1fs; wrote %s",
        result.eigenvalue,
        result.iterations[0],
        result.converged[0],
        result.seconds,
        args.out,
    )


def cmd_perturb(args: argparse.Namespace, subject: Subject) -> None:
    from lth.analysis.landscape import eigen_perturbation, landscape_batches

    result = _hessian(args, subject)
    batches = landscape_batches(subject.data, "test", args.test_sample, args.sample_seed, device=subject.device)
    points = eigen_perturbation(subject.model, batches, result.eigenvector, extent=args.extent, points=args.points)
    extra = {"eigenvalue": result.eigenvalue, "converged": result.converged[0]}
    _write_csv(Path(args.out), ({**dataclasses.asdict(point), **extra} for point in points))


def cmd_collect(args: argparse.Namespace) -> None:
    from lth.report.collect import collect

    out = store.output_path(args.out, "--out", args.force)
    log.info("wrote %s (%d rows)", out, collect(args.analysis, args.rows, out))


def cmd_merge(args: argparse.Namespace) -> None:
    from lth.report.collect import merge_grid

    def prepare() -> Callable[[], None]:
        parts = [require_file(path, "PART") for path in args.parts]
        return lambda: log.info("wrote %s (%d points)", args.out, merge_grid(parts, args.points, Path(args.out)))

    store.produce(args.out, "--out", reuse=args.reuse, force=args.force, intact=store.check_complete, prepare=prepare)


def _check(args: argparse.Namespace, analysis: Analysis) -> None:
    """Before the data load: the analysis' own check, the grid's (in the words of lth.analysis.landscape),
    then its settings' bounds (a list's are its own check's)."""
    from lth.analysis.landscape import grid_coordinates, part_indices

    if analysis.check:
        vars(args).update(analysis.check("--", vars(args)))
    if "extent" in args:
        total = len(grid_coordinates(args.points, args.extent)) ** 2
        if analysis.grid:
            part_indices(total, args.part, args.parts)
    for field in dataclasses.fields(analysis.settings):
        value, bounds = getattr(args, field.name), field.metadata["bounds"]
        if (
            field.name in COMMON
            or isinstance(value, list)
            or all(BOUND_CHECKS[k][0](value, b) for k, b in bounds.items())
        ):
            continue
        if {"minimum", "maximum"} <= bounds.keys():
            allowed = f"in [{bounds['minimum']:g}, {bounds['maximum']:g}]"
        else:
            allowed = " and ".join(f"{BOUND_CHECKS[name][1]} {bound:g}" for name, bound in bounds.items())
        raise UsageError(f"{option(field.name)}: {value} is not allowed; must be {allowed}")


def _stored(analysis: Analysis, func: Run) -> Command:
    """The analysis `func`, run only when --out is not already there (lth.store.produce: --reuse,
    --force), after its checks and the subject's: a refused command writes nothing."""

    def run(args: argparse.Namespace) -> None:
        from lth.analysis.subject import load_subject

        def prepare() -> Callable[[], None]:
            _check(args, analysis)
            subject = load_subject(args)
            return lambda: func(args, subject)

        store.produce(
            args.out, "--out", reuse=args.reuse, force=args.force, intact=store.check_complete, prepare=prepare
        )

    return run


def _threshold(text: str) -> float:
    from lth.analysis.activations import THRESHOLD_RULE

    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; each threshold must be {THRESHOLD_RULE}") from None


# Analysis name -> how its command runs, in the order `lth analyze --help` lists them.
COMMANDS: dict[str, Run] = {
    "activations": cmd_activations,
    "landscape": cmd_landscape,
    "hessian": cmd_hessian,
    "perturbation": cmd_perturb,
    "input_landscape": cmd_input_landscape,
}
COMMON = {"sample_seed"}  # a flag of every analysis' command (below), used or not
ARGUMENTS = {"thresholds": {"type": _threshold, "metavar": "T"}}  # argparse's words for what it cannot derive


def add_settings(parser: argparse.ArgumentParser, settings: type[Hparams]) -> None:
    """One flag per setting (`max_iter`: `--max-iter`) with its type, default and help; a list takes one or more."""
    hints = typing.get_type_hints(settings)
    for field in dataclasses.fields(settings):
        if field.name in COMMON:
            continue
        kind, many = hints[field.name], isinstance(field.default, tuple)
        shown = ", ".join(
            f"{v:g}" if isinstance(v, float) else str(v) for v in (field.default if many else [field.default])
        )
        derived = {
            "type": typing.get_args(kind)[0] if many else kind,
            "nargs": "+" if many else None,
            "default": list(field.default) if many else field.default,
            "help": f"{field.metadata['help']} (default: {shown})",
        }
        parser.add_argument(option(field.name), **{**derived, **ARGUMENTS.get(field.name, {})})


def add_commands(commands: Any) -> None:
    """`lth analyze <analysis>` for each analysis of the registry with a command, and `collect` and
    `merge` of the analyses' outputs."""
    analyze = add_command(
        commands, "analyze", lambda args: args.analysis_func(args), "analyses of a trained (sparse) network"
    )
    analyses = analyze.add_subparsers(dest="analysis", required=True, metavar="ANALYSIS")
    for name, func in COMMANDS.items():
        analysis = ANALYSES[name]
        described = {"help": analysis.settings.__doc__, "description": analysis.settings.__doc__}
        sub = analyses.add_parser(analysis.command, **described)
        sub.set_defaults(analysis_func=_stored(analysis, func))
        sub.add_argument("--weights", required=True, help="checkpoint to analyse (.pt)")
        sub.add_argument("--mask", help="its mask (from `lth prune`), for a sparse network")
        sub.add_argument("--out", required=True, help="CSV to write")
        sub.add_argument("--seed", type=int, required=True, help="the run's seed (fixes its train/validation split)")
        sub.add_argument(
            "--sample-seed",
            type=int,
            default=PowerIterationSettings.sample_seed,
            help="seed of the sample and the random directions",
        )
        add_device(sub)
        add_store_flags(sub)
        add_config(sub)
        add_run_options(sub)
        DataHparams.add_arguments(sub)
        add_settings(sub, analysis.settings)
        if analysis.grid:
            sub.add_argument("--part", type=int, default=0, help="evaluate only part PART of PARTS of the grid")
            sub.add_argument("--parts", type=int, default=1, help="how many parts the grid is split into")
    _add_collect_and_merge(analyses)


def _add_collect_and_merge(analyses: Any) -> None:
    from lth.report.collect import READERS

    collect = analyses.add_parser(
        "collect", help="per-run analysis outputs into one long-form CSV (lth/report/collect.py lists its columns)"
    )
    collect.set_defaults(analysis_func=cmd_collect)
    collect.add_argument("--analysis", required=True, choices=tuple(READERS))
    collect.add_argument("--out", required=True, help="CSV to write")
    collect.add_argument("--force", action="store_true", help="replace --out if it exists")
    collect.add_argument(
        "rows",
        nargs="+",
        metavar="SEED:VARIANT:LEVEL:EPOCH:RUN_FOLDER:FILE",
        help="one per row; FILE is the analysis output, relative to the finished RUN_FOLDER",
    )
    merge = analyses.add_parser("merge", help="a landscape grid from the CSVs of its --part runs")
    merge.set_defaults(analysis_func=cmd_merge)
    merge.add_argument("--points", type=int, required=True, help="grid points per axis")
    merge.add_argument("--out", required=True, help="CSV to write")
    add_store_flags(merge)
    merge.add_argument("parts", nargs="+", metavar="PART", help="the parts' CSVs")
