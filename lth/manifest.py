"""A run folder's manifest: summary.json, written last, marks the run finished and lists the sha256
of every file the run published, so a changed or damaged output is found by whoever reads it.

`verify_run` is the one check of a run folder: `lth aggregate` checks summary.json's own digest
(cheap, for hundreds of runs), `lth info` every file it lists.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lth.artifacts import RUN_FILES, SUMMARY
from lth.errors import LthError
from lth.io import IntegrityError, read_sealed_json, sha256_file, write_sealed_json


def run_files(folder: str | Path) -> list[Path]:
    """The files of an `lth train` run present in `folder` (summary.json first)."""
    folder = Path(folder)
    named = [folder / name for name in RUN_FILES if (folder / name).is_file()]
    return named + sorted(folder.glob("epoch*.pt"))


def write_summary(folder: str | Path, summary: dict[str, Any], published: Sequence[str]) -> dict[str, Any]:
    """Write summary.json with the sha256 of each of the `published` files (names in `folder`)."""
    folder = Path(folder)
    files = {name: sha256_file(folder / name) for name in published}
    return write_sealed_json(folder / SUMMARY, {**summary, "files": files})


def verify_run(folder: str | Path, *, files: bool) -> dict[str, Any]:
    """The summary of the finished run in `folder`, once verified: summary.json's own digest and
    finite numbers, and with `files` the sha256 of every file it lists."""
    folder = Path(folder)
    path = folder / SUMMARY
    fix = f"retrain the run with `lth train ... --out-dir {folder} --force`"
    if not path.is_file():
        raise LthError(f"{folder} holds no finished run (no {SUMMARY}); run its training first")
    summary = read_sealed_json(path, "an lth run summary (written by `lth train`)", fix)
    bad = [key for key, value in summary.items() if isinstance(value, float) and not math.isfinite(value)]
    if bad:
        raise IntegrityError(
            f"{path} records non-finite {', '.join(f'{key}={summary[key]}' for key in bad)}: "
            f"the run diverged; {fix} with a lower train.lr"
        )
    listed = summary.get("files")
    if not isinstance(listed, dict):
        raise IntegrityError(f"{path} lists no files (written by an lth before runs had manifests); {fix}")
    for name, digest in listed.items() if files else ():
        file = folder / name
        if not file.is_file():
            raise IntegrityError(f"{file} is missing, but {path} lists it as part of the run; {fix}")
        if sha256_file(file) != digest:
            raise IntegrityError(
                f"{file} does not match the sha256 recorded in {path}: it was changed or damaged "
                f"after the run finished; {fix}"
            )
    return summary
