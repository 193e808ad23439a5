"""`lth estimate`: the GPU-hours (or CPU-hours) a config's jobs still need, before launching them."""

from __future__ import annotations

import argparse
import csv
import io
import json
from typing import Any

from lth.cli.options import add_command


def add_commands(commands: Any) -> None:
    from lth.reference_devices import DEVICES

    estimate = add_command(
        commands,
        "estimate",
        cmd_estimate,
        "estimate the compute of the jobs a config still has to run (those finished in the results "
        "store are not counted), on a reference device of measured throughput (BENCHMARKS.md), and "
        "the wall time on N of them; run from the repository root, as snakemake",
    )
    estimate.add_argument(
        "--configfile",
        nargs="+",
        default=[],
        metavar="CONFIG",
        help="the config files, as snakemake's --configfile (later ones merged over earlier); default: config.yaml",
    )
    estimate.add_argument(
        "--device",
        default="h200-bf16",
        help=f"the reference device: {', '.join(f'{name} ({device.label})' for name, device in DEVICES.items())} "
        "(default: h200-bf16)",
    )
    estimate.add_argument(
        "--gpus",
        type=int,
        default=1,
        metavar="N",
        help="devices working at once, for the wall time (GPUs; for a CPU device, machines); default 1",
    )
    estimate.add_argument(
        "--results", default=None, help="the results folder whose finished runs are not counted (default: the config's)"
    )
    estimate.add_argument("--format", choices=("table", "csv", "json"), default="table", help="the output's form")


def cmd_estimate(args: argparse.Namespace) -> None:
    from lth.estimate import as_records, estimate, report

    result = estimate(args.configfile, args.device, args.gpus, args.results)
    if args.format == "table":
        print(report(result))
    elif args.format == "json":
        print(json.dumps(as_records(result), indent=2))
    else:
        rows = as_records(result)["rows"]
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["experiment"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        print(out.getvalue(), end="")
