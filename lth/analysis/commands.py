"""`lth analyze`: one subcommand per analysis, explicit input and output paths, a CSV out.

Each reads a checkpoint (and its mask, if sparse), loads the data the run was trained on (the
`data` settings and `--seed`, which fixes the run's train/validation split), and writes one
long-form CSV. The definitions live in the analysis modules' docstrings.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from lth.cli import (
    UsageError,
    _add_config,
    _add_device,
    _add_run_options,
    _add_store_flags,
    _load_config,
    _output_file,
    _produce,
    _read,
    _require_file,
)
from lth.errors import LthError
from lth.hparams import DataHparams, ModelHparams

log = logging.getLogger("lth")


@dataclasses.dataclass
class Subject:
    """What an analysis looks at: the network (weights loaded, in eval mode), its mask and its data,
    loaded when first read (after every check and once --out is this process's to write)."""

    model: Any
    mask: Any
    device: Any
    data_hp: DataHparams
    seed: int

    @functools.cached_property
    def data(self) -> Any:
        from lth import data

        return data.load(self.data_hp, self.seed)


def _subject(args: argparse.Namespace) -> Subject:
    """Every cheap check (paths, settings, mask fit); the data load waits for the analysis."""
    from lth.checkpoints import build_model, load_checkpoint
    from lth.devices import assign_device
    from lth.masks import MaskEnforcer, load_mask
    from lth.train import resolve_device

    config = _load_config(args.config)
    weights = _require_file(args.weights, "--weights")
    mask_path = _require_file(args.mask, "--mask")
    data_hp = DataHparams.from_sources(config, args)
    checkpoint = _read("--weights", weights, load_checkpoint)
    model = build_model(ModelHparams.from_dict(checkpoint["model"]), checkpoint["num_classes"])
    model.load_state_dict(checkpoint["state_dict"])
    mask = _read("--mask", mask_path, load_mask) if mask_path else None
    if mask:
        try:
            MaskEnforcer(model, mask).apply_to_weights()  # also checks that the mask fits the model
        except LthError as error:
            raise UsageError(f"--mask: {mask_path} does not fit {weights} ({error})") from None
    device = resolve_device(assign_device(args.device, args.jobs_per_gpu))
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    return Subject(model.to(device).eval(), mask, device, data_hp, args.seed)


def _write_csv(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    from lth.io import write_csv

    rows = list(rows)
    write_csv(path, rows, list(rows[0]))
    log.info("wrote %s (%d rows)", path, len(rows))


def _check_activations(args: argparse.Namespace) -> None:
    """The thresholds, before the data load; ascending, as the CSV lists them."""
    from lth.analysis.activations import ActivationSparsityError, check_thresholds

    try:
        args.thresholds = check_thresholds(args.thresholds, "--thresholds")
    except ActivationSparsityError as error:
        raise UsageError(str(error)) from None


def cmd_activations(args: argparse.Namespace, subject: Subject) -> None:
    from lth.analysis.activations import activation_sparsity
    from lth.data.batches import Batches

    out = Path(args.out)
    test = subject.data.test
    batches = Batches(test, 500, subject.data.mean, subject.data.std, subject.device)
    results = activation_sparsity(subject.model, batches, thresholds=args.thresholds)  # one pass, every threshold
    _write_csv(out, (row for result in results for row in result.rows()))


def _check_grid(args: argparse.Namespace) -> None:
    """The grid settings, before the data load."""
    from lth.analysis.landscape import grid_coordinates, part_indices

    part_indices(len(grid_coordinates(args.points, args.extent)) ** 2, args.part, args.parts)
    if args.sample < 1:
        raise UsageError(f"--sample: {args.sample} is not allowed; must be >= 1")


def cmd_landscape(args: argparse.Namespace, subject: Subject) -> None:
    from lth.analysis.landscape import landscape_batches, landscape_directions, weight_landscape

    out = Path(args.out)
    batches = landscape_batches(subject.data, "train", args.sample, args.sample_seed, device=subject.device)
    directions = landscape_directions(subject.model, subject.mask, seed=args.sample_seed)
    points = weight_landscape(
        subject.model, batches, directions, points=args.points, extent=args.extent, part=args.part, parts=args.parts
    )
    _write_csv(out, (dataclasses.asdict(point) for point in points))


def cmd_input_landscape(args: argparse.Namespace, subject: Subject) -> None:
    from lth.analysis.landscape import input_landscape, landscape_batches

    out = Path(args.out)
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
    _write_csv(out, (dataclasses.asdict(point) for point in points))


def _check_hessian(args: argparse.Namespace) -> None:
    """The power-iteration settings, before the data load."""
    from lth.analysis.hessian import MAX_K

    checks = [
        ("--sample", args.sample, args.sample >= 0, ">= 0"),
        ("--tol", args.tol, args.tol > 0, "> 0"),
        ("--max-iter", args.max_iter, args.max_iter >= 1, ">= 1"),
        ("--k", getattr(args, "k", 1), 1 <= getattr(args, "k", 1) <= MAX_K, f"in [1, {MAX_K}]"),
    ]
    for flag, value, ok, allowed in checks:
        if not ok:
            raise UsageError(f"{flag}: {value} is not allowed; must be {allowed}")


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

    out = Path(args.out)
    result = _hessian(args, subject)
    write_json(out, result.to_dict())
    log.info(
        "top eigenvalue %.6g after %d iterations (converged: %s) in %.1fs; wrote %s",
        result.eigenvalue,
        result.iterations[0],
        result.converged[0],
        result.seconds,
        out,
    )


def _check_perturb(args: argparse.Namespace) -> None:
    from lth.analysis.landscape import grid_coordinates

    _check_hessian(args)
    grid_coordinates(args.points, args.extent)
    if args.test_sample < 1:
        raise UsageError(f"--test-sample: {args.test_sample} is not allowed; must be >= 1")


def cmd_perturb(args: argparse.Namespace, subject: Subject) -> None:
    from lth.analysis.landscape import eigen_perturbation, landscape_batches

    out = Path(args.out)
    result = _hessian(args, subject)
    batches = landscape_batches(subject.data, "test", args.test_sample, args.sample_seed, device=subject.device)
    points = eigen_perturbation(subject.model, batches, result.eigenvector, extent=args.extent, points=args.points)
    _write_csv(
        out,
        (
            {**dataclasses.asdict(point), "eigenvalue": result.eigenvalue, "converged": result.converged[0]}
            for point in points
        ),
    )


def cmd_collect(args: argparse.Namespace) -> None:
    from lth.analysis.collect import collect

    out = _output_file(args.out, "--out", args.force)
    log.info("wrote %s (%d rows)", out, collect(args.analysis, args.rows, out))


def cmd_merge(args: argparse.Namespace) -> None:
    from lth.analysis.collect import merge_grid

    def prepare() -> Callable[[], None]:
        parts = [_require_file(path, "PART") for path in args.parts]
        return lambda: log.info("wrote %s (%d points)", args.out, merge_grid(parts, args.points, Path(args.out)))

    _produce(args.out, "--out", args, _complete, prepare)


def _complete(path: Path) -> None:
    """An analysis output is written whole or not at all: one that reads back as CSV or JSON is done."""
    import json

    try:
        text = path.read_text()
        if path.suffix == ".json":
            json.loads(text)
        elif not text.strip():
            raise ValueError("empty")
    except (OSError, ValueError) as error:
        raise LthError(f"unreadable ({error})") from None


def _stored(
    check: Callable[[argparse.Namespace], None] | None, func: Callable[[argparse.Namespace, Subject], None]
) -> Callable[[argparse.Namespace], None]:
    """The analysis `func`, run only when --out is not already there (lth.cli._produce: --reuse,
    --force), after its own `check` and the subject's: a refused command writes nothing."""

    def run(args: argparse.Namespace) -> None:
        def prepare() -> Callable[[], None]:
            if check is not None:
                check(args)
            subject = _subject(args)
            return lambda: func(args, subject)

        _produce(args.out, "--out", args, _complete, prepare)

    return run


def _hessian_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sample",
        type=int,
        default=200,
        help="training images in the fixed sample; 0 = the whole training split (default: 200)",
    )
    parser.add_argument("--tol", type=float, default=1e-3, help="relative tolerance (default: 1e-3)")
    parser.add_argument("--max-iter", type=int, default=100, help="power-iteration budget (default: 100)")


def _grid_options(parser: argparse.ArgumentParser, sample: int) -> None:
    parser.add_argument("--points", type=int, default=21, help="grid points per axis (default: 21)")
    parser.add_argument("--extent", type=float, default=1.0, help="grid over [-extent, extent]^2 (default: 1)")
    parser.add_argument("--sample", type=int, default=sample, help=f"images in the fixed sample (default: {sample})")
    parser.add_argument("--part", type=int, default=0, help="evaluate only part PART of PARTS of the grid")
    parser.add_argument("--parts", type=int, default=1, help="how many parts the grid is split into")


def add_analyze(commands: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    """Register `lth analyze <analysis>` under the main parser's subcommands."""
    analyze = command("analyze", lambda args: args.analysis_func(args), "analyses of a trained (sparse) network")
    analyses = analyze.add_subparsers(dest="analysis", required=True, metavar="ANALYSIS")

    def analysis(
        name: str,
        func: Callable[[argparse.Namespace, Subject], None],
        help: str,
        check: Callable[[argparse.Namespace], None] | None = None,
    ) -> argparse.ArgumentParser:
        sub = analyses.add_parser(name, help=help, description=help)
        sub.set_defaults(analysis_func=_stored(check, func))
        sub.add_argument("--weights", required=True, help="checkpoint to analyse (.pt)")
        sub.add_argument("--mask", help="its mask (from `lth prune`), for a sparse network")
        sub.add_argument("--out", required=True, help="CSV to write")
        sub.add_argument("--seed", type=int, required=True, help="the run's seed (fixes its train/validation split)")
        sub.add_argument("--sample-seed", type=int, default=0, help="seed of the sample and the random directions")
        _add_device(sub)
        _add_store_flags(sub)
        _add_config(sub)
        _add_run_options(sub)
        DataHparams.add_arguments(sub)
        return sub

    from lth.analysis.activations import (
        DEFAULT_THRESHOLDS,
        THRESHOLD_RULE,
        threshold_text,
    )

    def threshold(text: str) -> float:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not allowed; each threshold must be {THRESHOLD_RULE}"
            ) from None

    sub = analysis(
        "activations",
        cmd_activations,
        "activation sparsity per stage over the test set, at each threshold in one pass",
        _check_activations,
    )
    sub.add_argument(
        "--thresholds",
        type=threshold,
        nargs="+",
        default=list(DEFAULT_THRESHOLDS),
        metavar="T",
        help=f"|a| <= T counts as zero; one row per (threshold, stage), all counted in one pass; "
        f"each {THRESHOLD_RULE}, no repeats (default: {threshold_text(DEFAULT_THRESHOLDS)})",
    )
    _grid_options(
        analysis(
            "landscape",
            cmd_landscape,
            "weight-space loss landscape (Li et al. 2018) on a fixed sample of training images",
            _check_grid,
        ),
        2000,
    )
    hessian = analysis(
        "hessian",
        cmd_hessian,
        "top Hessian eigenvalue(s) of plain cross-entropy by power iteration over the kept coordinates (JSON out)",
        _check_hessian,
    )
    _hessian_options(hessian)
    hessian.add_argument("--k", type=int, default=1, help="top-k eigenvalues by deflation, k <= 5 (default: 1)")
    perturb = analysis(
        "perturb", cmd_perturb, "test loss along the top Hessian eigenvector: theta + e v/||v||", _check_perturb
    )
    _hessian_options(perturb)
    perturb.add_argument("--points", type=int, default=21, help="values of e (default: 21)")
    perturb.add_argument("--extent", type=float, default=0.5, help="e over [-extent, extent] (default: 0.5)")
    perturb.add_argument("--test-sample", type=int, default=2000, help="test images evaluated (default: 2000)")
    _grid_options(
        analysis(
            "input-landscape",
            cmd_input_landscape,
            "loss around each image of a fixed test sample along two random input directions",
            _check_grid,
        ),
        2000,
    )

    from lth.analysis.collect import READERS

    collect = analyses.add_parser(
        "collect", help="per-run analysis outputs into one long-form CSV (lth/analysis/collect.py lists its columns)"
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
    _add_store_flags(merge)
    merge.add_argument("parts", nargs="+", metavar="PART", help="the parts' CSVs")
