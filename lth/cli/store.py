"""`lth info`, `lth ls`, `lth link`, `lth gc`: what a file or the run store holds, and its upkeep."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

from lth import store
from lth.cli.options import add_command
from lth.errors import LthError, UsageError


def add_commands(commands: Any) -> None:
    info = add_command(commands, "info", cmd_info, "describe a checkpoint, a mask, or a run folder")
    info.add_argument("path")
    info.add_argument("--json", action="store_true", help="JSON instead of YAML")

    ls = add_command(
        commands,
        "ls",
        cmd_ls,
        "list the run folders of a results folder: kind, hash, status, variant (what the "
        "run trained: lth, at+trt, dense, dense+swish, ...), settings, test_acc_pct (test accuracy in "
        "percent at the epoch of best validation accuracy, as summary.csv's column of that name), age, size",
    )
    ls.add_argument("results", nargs="?", default="results", help="the workflow's results folder")
    ls.add_argument(
        "--json",
        action="store_true",
        help="JSON instead of a table (with final_test_acc_pct too: the test accuracy in %% after the last epoch)",
    )

    link = add_command(
        commands,
        "link",
        cmd_link,
        "publish finished files of a results folder as links under "
        "RESULTS/published (what the workflow's jobs declare as their outputs; lth/store.py)",
    )
    link.add_argument("--results", required=True, help="the results folder the files are in")
    link.add_argument("targets", nargs="+", metavar="FILE", help="finished files under --results")
    _add_gc(commands)


def _add_gc(commands: Any) -> None:
    gc = add_command(
        commands,
        "gc",
        cmd_gc,
        "list the run folders no experiment uses, and why; delete them with --yes. A "
        "folder is kept while an experiment recorded in the store uses it (each workflow run records "
        "its experiments' runs) or a given config plans it",
    )
    gc.add_argument(
        "configs",
        nargs="*",
        metavar="CONFIG",
        help="configs whose planned runs to keep too, recorded or not (they also name the results folder)",
    )
    gc.add_argument(
        "--results", default="results", help="the results folder, when no config is given (default: results)"
    )
    gc.add_argument(
        "--forget",
        nargs="+",
        default=[],
        metavar="EXPERIMENT",
        help="drop these experiments' records, so that the runs only they used are deleted too",
    )
    gc.add_argument(
        "--yes",
        action="store_true",
        help="delete the folders listed (and forget --forget's "
        "experiments); refused while a workflow is running on the store",
    )


def cmd_info(args: argparse.Namespace) -> None:
    from lth.info import describe_path

    info = describe_path(Path(args.path))
    print(json.dumps(info, indent=2) if args.json else yaml.safe_dump(info, sort_keys=False), end="")


def cmd_ls(args: argparse.Namespace) -> None:
    from lth import run_folders as runs

    folders = runs.scan(Path(args.results))
    print(runs.as_json(folders) if args.json else runs.table(folders))


def cmd_link(args: argparse.Namespace) -> None:
    try:
        store.link(args.results, args.targets)
    except LthError as error:
        raise UsageError(str(error)) from None


def cmd_gc(args: argparse.Namespace) -> None:
    from lth import run_folders as runs

    results, planned = Path(args.results), set()
    if args.configs:
        results, planned = runs.referenced([Path(path) for path in args.configs])
        if args.results != "results" and Path(args.results).resolve() != results.resolve():
            raise UsageError(f"--results: {args.results} is not the results folder of these configs ({results})")
    recorded = store.references(results)
    unknown = [name for name in args.forget if name not in recorded]
    if unknown:
        raise UsageError(
            f"--forget: {unknown[0]} is not a recorded experiment of {results / 'runs'}; recorded: "
            f"{', '.join(recorded) or 'none'}"
        )
    plan = runs.collection(results, planned, recorded, args.forget)
    print(plan.report())
    if not args.yes:
        if plan.unused or args.forget:
            print("pass --yes to delete" + (f" them and forget {', '.join(args.forget)}" if args.forget else " them"))
        return
    with store.exclusive(results):
        plan = runs.collection(results, planned, store.references(results), args.forget)  # as it is now
        for name in args.forget:
            store.references_file(results, name).unlink(missing_ok=True)
        for folder in plan.unused:
            runs.delete(results, folder)
    print(
        f"deleted {len(plan.unused)} run folders ({runs.human_size(plan.size)})"
        + (f"; forgot {', '.join(args.forget)}" if args.forget else "")
    )
