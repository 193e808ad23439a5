"""Flags several commands share, and the checks argparse cannot make."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from lth.errors import UsageError

Command = Callable[[argparse.Namespace], None]


def add_command(commands: Any, name: str, func: Command, help: str) -> argparse.ArgumentParser:
    """A subcommand `name` that runs `func` (its description is its help)."""
    sub = commands.add_parser(name, help=help, description=help)
    sub.set_defaults(func=func)
    return sub


def add_store_flags(parser: argparse.ArgumentParser, what: str = "--out") -> None:
    """--reuse and --force of a command whose output may be shared (the workflow's run store)."""
    parser.add_argument(
        "--reuse",
        action="store_true",
        help=f"if {what} already holds an intact result, succeed "
        "without touching it (the workflow's store names outputs by their settings' hash)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help=f"replace {what} if it is damaged or incomplete; an "
        "intact result is never replaced (delete it by hand to redo it)",
    )


def add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default="auto",
        help="auto, cpu, cuda or cuda:N; with several GPUs visible, auto and cuda take a free one",
    )
    parser.add_argument(
        "--jobs-per-gpu",
        type=int,
        default=1,
        help="jobs that may share one GPU when auto or cuda picks a card (lth/devices.py)",
    )


def add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file with sections model/data/train/prune/gradinit (flags override it)")


def check_common(args: argparse.Namespace) -> None:
    """Options several commands share; argparse only checks that they are integers."""
    seed, threads = getattr(args, "seed", None), getattr(args, "threads", None)
    if seed is not None and seed < 0:
        raise UsageError(f"--seed: {seed} is not allowed; seeds must be >= 0")
    if threads is not None and threads < 1:
        raise UsageError(f"--threads: {threads} is not allowed; must be >= 1 (omit it for torch's choice)")
    jobs_per_gpu = getattr(args, "jobs_per_gpu", None)
    if jobs_per_gpu is not None and jobs_per_gpu < 1:
        raise UsageError(f"--jobs-per-gpu: {jobs_per_gpu} is not allowed; must be >= 1")
