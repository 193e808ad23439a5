"""`lth analyze collect` and `lth analyze merge`: per-run analysis outputs into one long-form CSV.

Every collected CSV starts with the columns `seed, variant, level, sparsity_pct, epoch, run`: the
experiment's row (variant `dense`, level 0 for the dense run), the mask's sparsity in % (of the
fraction the run's summary.json records), the training epoch of the weights analysed, and the run
folder's name; then `model, width, dataset, train_epochs`: what the run trained (its hparams.yaml;
train_epochs is the schedule's length), so that a figure's title can say it. The analysis' own
columns follow (the module docstrings define them), accuracies and fractions in % under `_pct`
names, as in every table (lth/report/summary.py; the run folders keep fractions):
- activation_sparsity.csv: one row per (threshold, stage): stage, near_zero, total, near_zero_pct
  (100 * near_zero / total, the run's `fraction`), threshold (stage `all` = the network);
- hessian.csv: rank (1..k), eigenvalue, iterations, converged, residual, seconds, sample (images);
- hessian_per_epoch.csv: one row per training epoch (the `epoch` column), eigenvalue, iterations,
  converged, residual, seconds (from the tracked run's metrics.csv);
- perturbation.csv: index, epsilon, loss, accuracy_pct, eigenvalue, converged;
- landscape.csv and input_landscape.csv: index, i, j, alpha, beta, loss, accuracy_pct (alpha along
  the first direction; alpha = beta = 0 is the network itself).

A landscape computed in parts (`lth analyze landscape --part`) is merged first (`merge_grid`): every
point of the grid once, sorted by index.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from lth.errors import LthError
from lth.io import write_csv, write_sealed_csv
from lth.manifest import verify_run
from lth.report.summary import percent, run_record

ID_COLUMNS = ("seed", "variant", "level", "sparsity_pct", "epoch", "run")  # lth/report/analysis.py reads them
RUN_COLUMNS = ("model", "width", "dataset", "train_epochs")  # what the run trained: the figures' titles
# A run's fractions (its own CSVs' columns) and their columns in % in a collected CSV.
PERCENT_COLUMNS = {"fraction": "near_zero_pct", "accuracy": "accuracy_pct"}
TRACKED_PREFIX = "hessian_"  # metrics.csv columns of `lth train --track hessian`


class LandscapeError(LthError):
    """A bad grid, sample, part, mask or direction."""


# One point of a loss landscape (lth/analysis/landscape.py computes them; a row of landscape.csv).
@dataclasses.dataclass(frozen=True)
class LandscapePoint:
    index: int  # k = i * points + j
    i: int
    j: int
    alpha: float  # coefficient of the first direction
    beta: float  # coefficient of the second direction
    loss: float
    accuracy: float


def _read_csv(path: Path) -> list[dict[str, Any]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _hessian(path: Path) -> list[dict[str, Any]]:
    result = json.loads(path.read_text())
    return [
        {
            "rank": rank + 1,
            "eigenvalue": value,
            "iterations": result["iterations"][rank],
            "converged": result["converged"][rank],
            "residual": result["residuals"][rank],
            "seconds": result["seconds"],
            "sample": len(result["indices"]),
        }
        for rank, value in enumerate(result["eigenvalues"])
    ]


def _per_epoch(path: Path) -> list[dict[str, Any]]:
    rows = _read_csv(path)
    if not rows or f"{TRACKED_PREFIX}eigenvalue" not in rows[0]:
        raise LthError(
            f"{path} has no {TRACKED_PREFIX}eigenvalue column; it must come from `lth train --track hessian`"
        )
    records = [
        {
            "epoch": row["epoch"],
            **{key.removeprefix(TRACKED_PREFIX): value for key, value in row.items() if key.startswith(TRACKED_PREFIX)},
        }
        for row in rows
    ]
    for record in records:  # metrics.csv holds numbers only: 1/0, here True/False as in hessian.csv
        record["converged"] = bool(float(record["converged"]))
    return records


READERS: dict[str, Callable[[Path], list[dict[str, Any]]]] = {
    "activations": _read_csv,
    "hessian": _hessian,
    "hessian_per_epoch": _per_epoch,
    "perturbation": _read_csv,
    "landscape": _read_csv,
    "input_landscape": _read_csv,
}


def parse_row(text: str) -> tuple[int, str, int, int, Path, str]:
    try:
        head, file = text.rsplit(":", 1)
        seed, variant, level, epoch, run = head.split(":", 4)
        return int(seed), variant, int(level), int(epoch), Path(run), file
    except ValueError:
        raise LthError(f"row {text!r} is not SEED:VARIANT:LEVEL:EPOCH:RUN_FOLDER:FILE") from None


def _in_percent(record: dict[str, Any], path: Path) -> dict[str, Any]:
    """A copy of `record` with its fractions (PERCENT_COLUMNS) in % under their `_pct` names."""
    converted = {}
    for key, value in record.items():
        if key in PERCENT_COLUMNS:
            try:  # a CSV's text; empty (no value) stays empty
                value = percent(float(value)) if str(value).strip() else ""
            except ValueError:
                raise LthError(f"{path}: column {key!r} holds {value!r}, not a number; rerun its analysis") from None
        converted[PERCENT_COLUMNS.get(key, key)] = value
    return converted


def collect(analysis: str, rows: Sequence[str], out: Path) -> int:
    """Write the collected CSV of `analysis` from `rows`; returns the number of lines."""
    if analysis not in READERS:
        raise LthError(f"--analysis: {analysis!r} is not allowed; choose one of {', '.join(READERS)}")
    records: list[dict[str, Any]] = []
    for text in rows:
        seed, variant, level, epoch, run, file = parse_row(text)
        summary = verify_run(run, files=False)
        path = run / file
        if not path.is_file():
            raise LthError(f"{path} does not exist; run the {analysis} analysis of {run} first")
        trained = run_record(run)
        ids = {
            "seed": seed,
            "variant": variant,
            "level": level,
            "sparsity_pct": percent(summary["sparsity"]),
            "epoch": epoch,
            "run": run.name,
            "model": trained["model"]["name"],
            "width": trained["model"]["width"],
            "dataset": trained["data"]["name"],
            "train_epochs": trained["train"]["epochs"],
        }
        records += [{**ids, **_in_percent(record, path)} for record in READERS[analysis](path)]
    if not records:
        raise LthError(f"no {analysis} results to collect; give at least one row")
    columns = [*ID_COLUMNS, *RUN_COLUMNS, *(key for key in records[0] if key not in (*ID_COLUMNS, *RUN_COLUMNS))]
    write_sealed_csv(out, records, columns)
    return len(records)


def merge_grid(parts: Sequence[Path], points: int, out: Path) -> int:
    """The whole landscape grid from its parts' CSVs (each point exactly once), sorted by index."""
    fields = dict(LandscapePoint.__annotations__)  # name -> "int" or "float"
    tables = []
    for path in parts:
        try:
            tables.append(
                [
                    LandscapePoint(**{key: (int if fields[key] == "int" else float)(row[key]) for key in fields})
                    for row in _read_csv(path)
                ]
            )
        except (OSError, KeyError, ValueError) as error:
            raise LthError(
                f"{path} is not a landscape part written by `lth analyze landscape --part` ({error})"
            ) from None
    merged = merge_parts(tables, points)
    write_csv(out, [dataclasses.asdict(point) for point in merged], list(fields))
    return len(merged)


def merge_parts(parts: Iterable[Sequence[LandscapePoint]], points: int) -> list[LandscapePoint]:
    """The whole grid from its parts, sorted by index; every point must appear exactly once."""
    merged = sorted((point for part in parts for point in part), key=lambda point: point.index)
    indices = [point.index for point in merged]
    if indices != list(range(points * points)):
        seen = set(indices)
        missing = [k for k in range(points * points) if k not in seen]
        repeated = sorted({k for k in indices if indices.count(k) > 1})
        raise LandscapeError(
            f"the parts do not cover the {points}x{points} grid once: missing points "
            f"{missing[:5]}, repeated points {repeated[:5]}, out of range "
            f"{[k for k in seen if not 0 <= k < points * points][:5]}"
        )
    return merged
