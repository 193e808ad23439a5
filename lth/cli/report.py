"""`lth aggregate`, `lth plot`, `lth figure`, `lth tickets`: CSVs in, tables and figures out."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from lth import store
from lth.cli.options import add_command
from lth.errors import LthError, UsageError
from lth.inputs import require_file
from lth.report.accuracy import MASK_SOURCE_LAYOUTS
from lth.report.style import X_AXES

log = logging.getLogger("lth")
TITLE_HELP = "put before the title (the workflow gives the experiment); the title always says "
HTML_HELP = "also write the table as a page to read in a browser (sortable; the workflow's report shows it)"


def add_commands(commands: Any) -> None:
    aggregate = add_command(commands, "aggregate", cmd_aggregate, "collect finished runs into one summary.csv")
    aggregate.add_argument("--out", required=True, help="summary.csv to write")
    aggregate.add_argument("--force", action="store_true", help="replace --out (and --html) if it exists")
    aggregate.add_argument("--html", default=None, help=HTML_HELP)
    aggregate.add_argument(
        "--experiments",
        nargs="+",
        metavar="NAME=SUMMARY_CSV",
        default=[],
        help="write every experiment's summary.csv into one table, after a column `experiment`",
    )
    aggregate.add_argument(
        "rows",
        nargs="*",
        metavar="SEED:VARIANT:LEVEL:MASK_SOURCE:RUN_FOLDER",
        help="one per row; each run folder must hold a finished run",
    )

    plot = add_command(commands, "plot", cmd_plot, "draw accuracy vs sparsity from a summary.csv")
    plot.add_argument("--summary", required=True)
    plot.add_argument("--out", required=True, nargs="+", help="figure files (.png, .pdf)")
    plot.add_argument("--x", default="sparsity", choices=tuple(X_AXES))
    plot.add_argument("--title", default=None, help=TITLE_HELP + "the model, data, epochs and seeds")
    plot.add_argument(
        "--mask-sources",
        default="panels",
        choices=MASK_SOURCE_LAYOUTS,
        help="with several mask sources (column mask_source): a panel per source (default), or "
        "one axes with a curve per variant and source, line style by source",
    )
    plot.add_argument("--force", action="store_true", help="replace the --out files if they exist")
    _add_figure(commands)
    _add_tickets(commands)


def _add_figure(commands: Any) -> None:
    # light: pandas and matplotlib load only when drawing
    from lth.report.registry import ANALYSIS_FIGURES, GRID_FIGURES, SUMMARY_FIGURES

    figures = {**ANALYSIS_FIGURES, **SUMMARY_FIGURES, **GRID_FIGURES}  # the order of the help
    figure = add_command(
        commands,
        "figure",
        cmd_figure,
        "draw a paper figure or table from CSVs: accuracy figures from a "
        "summary.csv (grids from results/summary.csv), analysis figures from their collected CSV",
    )
    descriptions = [f"{name}: {entry.description}" for name, entry in figures.items()]
    figure.add_argument("name", choices=tuple(figures), metavar="NAME", help="; ".join(descriptions).replace("%", "%%"))
    figure.add_argument(
        "--csv",
        required=True,
        help="summary.csv (accuracy figures), results/summary.csv (grids) or "
        "the collected analysis CSV (results/<experiment>/analysis/*.csv)",
    )
    figure.add_argument(
        "--out", required=True, nargs="+", help="files to write (.png, .pdf, .svg; a table also .csv, .html)"
    )
    figure.add_argument(
        "--x",
        default=None,
        choices=tuple(X_AXES),
        help="accuracy figures: the x axis (default sparsity, levels spaced by log remaining weights)",
    )
    figure.add_argument(
        "--epoch",
        default=None,
        help="analysis figures: the training epoch shown, or `final` (each "
        "run's largest epoch; the default); not for figA12_hessian_per_epoch, which shows every epoch",
    )
    figure.add_argument(
        "--title", default=None, help=TITLE_HELP + "what the figure shows and the model, data, epochs and seeds"
    )
    figure.add_argument("--force", action="store_true", help="replace the --out files if they exist")


def _add_tickets(commands: Any) -> None:
    tickets = add_command(
        commands,
        "tickets",
        cmd_tickets,
        "ticket statistics of a summary.csv, per mask source: gains over "
        "vanilla, winning-ticket thresholds, critical sparsities (lth/report/tickets.py)",
    )
    tickets.add_argument("--summary", required=True, help="an experiment's summary.csv")
    tickets.add_argument("--out", required=True, help="tickets.csv to write")
    tickets.add_argument(
        "--pair",
        action="append",
        default=[],
        metavar="A:B",
        help="a variant pair whose critical sparsity to report (repeatable), e.g. at+trt:rewind",
    )
    tickets.add_argument("--force", action="store_true", help="replace --out (and --html) if it exists")
    tickets.add_argument("--html", default=None, help=HTML_HELP)


def cmd_aggregate(args: argparse.Namespace) -> None:
    from lth.report.summary import ROW_FORMAT, aggregate, merge_summaries

    if bool(args.rows) == bool(args.experiments):
        raise UsageError(
            f"give either rows {ROW_FORMAT} (one experiment's summary.csv) or "
            "--experiments NAME=SUMMARY_CSV ... (every experiment's rows in one table), not both"
        )
    out = store.output_path(args.out, "--out", args.force)
    page = _html_path(args)
    if args.experiments:
        merge_summaries(args.experiments, out)
    else:
        aggregate(args.rows, out)
    _write_page(out, page)


def _html_path(args: argparse.Namespace) -> Path | None:
    """--html checked before any work, as --out is (None without --html)."""
    return None if args.html is None else store.output_path(args.html, "--html", args.force)


def _write_page(table: Path, page: Path | None) -> None:
    from lth.report.html import write_csv_html

    if page is not None:
        write_csv_html(table, page)
        log.info("wrote %s", page)


def cmd_plot(args: argparse.Namespace) -> None:
    from lth.report.accuracy import plot_accuracy_vs_sparsity

    summary = require_file(args.summary, "--summary")
    outputs = [store.output_path(path, "--out", args.force) for path in args.out]
    plot_accuracy_vs_sparsity(summary, outputs, x=args.x, title=args.title, mask_sources=args.mask_sources)


def _flagged(flag: str, check: Any, *values: Any) -> Any:
    """`check(*values)`, with `flag` in front of its error."""
    try:
        return check(*values)
    except LthError as error:
        raise UsageError(f"{flag}: {error}") from None


def cmd_figure(args: argparse.Namespace) -> None:
    from lth.report.registry import FIGURES, AnalysisFigure
    from lth.report.style import check_outputs

    figure = FIGURES[args.name]
    if isinstance(figure, AnalysisFigure):
        if args.x is not None:
            accuracy = [name for name, entry in FIGURES.items() if not isinstance(entry, AnalysisFigure)]
            raise UsageError(
                f"--x: {args.name} is an analysis figure and takes no --x; it is for the accuracy "
                f"figures ({', '.join(accuracy)})"
            )
        options = {"epoch": _flagged("--epoch", figure.parse_epoch, args.epoch)}  # every cheap check first
    else:
        if args.epoch is not None:
            raise UsageError(f"--epoch: {args.name} draws accuracy from a summary.csv and takes no --epoch")
        options = {"x": args.x or "sparsity"}  # argparse has checked --x
    _flagged("--out", check_outputs, args.name, args.out, figure.suffixes)
    csv = require_file(args.csv, "--csv")
    outputs = [store.output_path(path, "--out", args.force) for path in args.out]
    figure.draw(csv, outputs, title=args.title, **options)
    log.info("wrote %s from %s", ", ".join(map(str, outputs)), csv)


def cmd_tickets(args: argparse.Namespace) -> None:
    from lth.report.tickets import parse_pair, write_tickets

    try:
        pairs = [parse_pair(text) for text in args.pair]
    except LthError as error:
        raise UsageError(str(error)) from None
    summary = require_file(args.summary, "--summary")
    out = store.output_path(args.out, "--out", args.force)
    page = _html_path(args)
    statistics = write_tickets(summary, out, pairs)
    log.info("wrote %d statistics to %s", len(statistics), out)
    _write_page(out, page)
