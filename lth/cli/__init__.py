"""`lth` command line: one subcommand per workflow stage, explicit input and output paths.

One module per stage family, each adding its subcommands and their flags; a `cmd_*` function parses
and delegates to the library. Heavy modules (torch, data sources, plotting) are imported inside each
command, so a call pays only for what it uses.
"""

from __future__ import annotations

import argparse
import logging
import sys

from lth.cli import analyze, data, estimate, prune, report, store, train
from lth.cli.options import check_common
from lth.errors import LthError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lth", description=__doc__.splitlines()[0])
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for family in (data, train, prune, store, report, analyze, estimate):
        family.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        check_common(args)
        args.func(args)
    except LthError as error:
        print(f"lth {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
