"""Run the Snakemake workflow in a scratch folder and read what it did."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"


def write_config(folder: Path, name: str, config: dict[str, Any]) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# Root passes every write-permission check, so Snakemake's protected() files do not stop it; these
# tests act as an ordinary user does by dropping the capabilities that let root ignore file modes.
AS_USER = (
    [
        "setpriv",
        "--bounding-set=-dac_override,-dac_read_search,-fowner",
        "--inh-caps=-dac_override,-dac_read_search,-fowner",
    ]
    if os.geteuid() == 0
    else []
)


def snakemake(
    workdir: Path, config: Path, *extra: str, check: bool = True, as_user: bool = False
) -> subprocess.CompletedProcess:
    command = [
        *(AS_USER if as_user else []),
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(SNAKEFILE),
        "-d",
        str(workdir),
        "--configfile",
        str(config),
        "--cores",
        "2",
        *extra,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def planned_jobs(workdir: Path, config: Path, *targets: str) -> dict[str, int]:
    """Jobs per rule that a dry run would execute ({} when there is nothing to do)."""
    result = snakemake(workdir, config, "-n", *targets)
    output = result.stdout + result.stderr
    if "Nothing to be done" in output:
        return {}
    table = output.split("Job stats:", 1)[1]
    counts = {}
    for line in table.splitlines():
        match = re.fullmatch(r"\s*(\w+)\s+(\d+)\s*", line)
        if match and match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
        elif line.strip().startswith("total"):
            break
    return counts


def mtimes(paths: list[Path]) -> dict[Path, int]:
    return {path: path.stat().st_mtime_ns for path in paths}


def dry_run_commands(cwd: Path, *args: str, env: dict[str, str] | None = None) -> tuple[list[str], str]:
    """Every job's shell command (sorted) and the whole output of `snakemake -n -F` run in `cwd`."""
    command = [sys.executable, "-m", "snakemake", "-n", "-F", "--cores", "2", *args]
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300, env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return sorted(line for line in output.splitlines() if line.startswith("Shell command: ")), output
