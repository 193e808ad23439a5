"""summary.csv, one row per (seed, variant, level) of finished run folders (`lth aggregate`), and
results/summary.csv, every experiment's rows together; how every table and figure reads them.

summary.csv columns (README.md, "Tables", says the same):
- seed, variant, level: the row; the dense network is variant `dense`, level 0; a dense-with-tweak
  baseline is `dense+<tweak>`, level 0.
- mask_source: the label of the `masks` entry whose mask the run was re-trained on (magnitude,
  random, snip, rigl, ...; lth/mask_registry.py), or `<label>_run` for a sparse training's own run
  (gmp, set, rigl: its mask changed as it trained); empty for the dense rows, which no mask made.
- sparsity_pct (the mask's, in %), nonzero_params, total_params, forward_flops,
  forward_flops_effective: of the trained network (skip branches included in the counts);
  train_flops: the training's FLOPs as the RigL paper counts them (lth.train; empty for a run of an
  older lth).
- test_acc_pct (the test accuracy in % at the epoch of best validation accuracy: what every figure,
  tickets.csv and `lth ls` call test accuracy), best_val_epoch, final_test_acc_pct (the test
  accuracy in % after the last epoch), epochs_trained, seconds: the training's results.
- model, width, dataset, activation, skip: what was trained; rewind_epoch: the epoch its weights
  started from (0 = theta0); gradinit: whether GradInit rescaled them first.
- label_smoothing, label_smoothing_form, kd_alpha, kd_temperature, kd_reduction: the loss (a form,
  temperature or reduction is empty while its term is off).
- run: the run folder.

Units: accuracies and sparsities are in % wherever a person reads them (summary.csv, tickets.csv,
the collected analysis CSVs, `lth ls`), each in a column whose name ends in `_pct`; run folders
keep fractions (summary.json, mask.json).

Mask sources: the column `mask_source` names what made each ticket's mask (empty for the dense
rows). A summary's sources are those of its sparse rows in order of first appearance, the config's
order, and the first is the experiment's primary source (`sources_of`). A summary without the column
(written before it existed) has one source without a label (None), so every older summary.csv reads
as before. Variants are matched by what they resolve to (`parts_of`), never by spelling.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lth.artifacts import HPARAMS
from lth.errors import LthError
from lth.io import check_sealed, write_sealed_csv
from lth.manifest import verify_run
from lth.yamlio import read_yaml

if TYPE_CHECKING:
    import pandas as pd

LOSS_COLUMNS = ("label_smoothing", "label_smoothing_form", "kd_alpha", "kd_temperature", "kd_reduction")
COLUMNS = [  # grouped as the docstring lists them
    *("seed", "variant", "level", "mask_source"),
    *("sparsity_pct", "nonzero_params", "total_params", "forward_flops", "forward_flops_effective", "train_flops"),
    *("test_acc_pct", "best_val_epoch", "final_test_acc_pct", "epochs_trained", "seconds"),
    *("model", "width", "dataset", "activation", "skip", "rewind_epoch", "gradinit"),
    *LOSS_COLUMNS,
    "run",
]
# An older lth wrote these columns as fractions; each is now its `_pct` column (upgrade_summary).
FRACTION_COLUMNS = {"sparsity": "sparsity_pct", "test_acc": "test_acc_pct", "final_test_acc": "final_test_acc_pct"}
LATER_COLUMNS = ("mask_source", "train_flops")  # absent from an older lth's summary.csv: read as empty
SUMMARY_COLUMNS = ("seed", "variant", "level", "sparsity_pct", "test_acc_pct")  # what every accuracy figure reads
# What a title says about the runs (lth.report.style.describe_runs): summary.csv's columns.
TITLE_COLUMNS = ("model", "width", "dataset", "epochs_trained", "rewind_epoch")
STATS_COLUMNS = ["level", "sparsity_pct", "x", "mean", "std", "seeds"]  # what level_means returns
MASK_SOURCE = "mask_source"  # what made a ticket's mask (empty for dense rows)


def percent(fraction: float) -> float:
    """A fraction in %, rounded to 8 decimals so that 0.36 is written 36.0, not 35.99999999999999."""
    return round(100 * fraction, 8)


def _legacy(columns: Sequence[str]) -> list[str]:
    """`columns` as an older lth named them: the fractions' names (FRACTION_COLUMNS)."""
    old = {new: name for name, new in FRACTION_COLUMNS.items()}
    return [old.get(column, column) for column in columns]


def upgrade_summary(table: Any, where: str = "a summary.csv") -> Any:
    """A summary.csv frame (pandas) written by an older lth, with fractions `sparsity`, `test_acc`
    and `final_test_acc`, as this lth writes it: in % under their `_pct` names (`where` names the
    file in errors). Any other frame is returned as it is."""
    import pandas as pd

    present = [name for name in FRACTION_COLUMNS if name in table and FRACTION_COLUMNS[name] not in table]
    converted = {}
    for name in present:
        try:
            converted[FRACTION_COLUMNS[name]] = 100 * pd.to_numeric(table[name])
        except ValueError:
            raise LthError(
                f"{where}: column {name!r} (written by an older lth) holds a value that is not a "
                "number; rebuild it with `lth aggregate` (in the workflow: `snakemake --forcerun "
                "aggregate`)"
            ) from None
    # The new columns where the old ones were, so the table reads as this lth writes it.
    return table.assign(**converted)[[FRACTION_COLUMNS[c] if c in present else c for c in table.columns]]


ROW_FORMAT = "SEED:VARIANT:LEVEL:MASK_SOURCE:RUN_FOLDER"  # MASK_SOURCE empty for dense rows


def parse_row(text: str) -> tuple[int, str, int, str, Path]:
    try:
        seed, variant, level, mask_source, run = text.split(":", 4)
        return int(seed), variant, int(level), mask_source, Path(run)
    except ValueError:
        raise LthError(f"row {text!r} is not {ROW_FORMAT}") from None


def run_record(run: Path) -> dict[str, Any]:
    """What the finished run in `run` was trained as, in its own record (hparams.yaml): its `model`,
    `data` and `train` sections, or an LthError naming the file."""
    try:
        hparams = read_yaml(run / HPARAMS)
        return {"model": dict(hparams["model"]), "data": dict(hparams["data"]), "train": dict(hparams["train"])}
    except (OSError, yaml.YAMLError, TypeError, KeyError, ValueError) as error:
        raise LthError(
            f"{run / HPARAMS} cannot be read as an lth run record ({error}); retrain the run "
            f"with `lth train ... --out-dir {run} --force`"
        ) from None


def summary_row(seed: int, variant: str, level: int, mask_source: str, run: Path) -> dict[str, Any]:
    summary = verify_run(run, files=False)  # summary.json's own digest and finite values: cheap for many runs
    record = run_record(run)
    model, data = record["model"], record["data"]
    return {
        "seed": seed,
        "variant": variant,
        "level": level,
        "mask_source": mask_source,
        "sparsity_pct": percent(summary["sparsity"]),
        "nonzero_params": summary["nonzero_params"],
        "total_params": summary["total_params"],
        "forward_flops": summary["forward_flops"],
        "forward_flops_effective": summary["forward_flops_effective"],
        "train_flops": summary.get("train_flops", ""),  # a run finished by an older lth did not count them
        "test_acc_pct": percent(summary["test_acc_at_best_val"]),
        "best_val_epoch": summary["best_val_epoch"],
        "final_test_acc_pct": percent(summary["final_test_acc"]),
        "epochs_trained": summary["epochs"] - summary["start_epoch"],
        "seconds": summary["wall_seconds"],
        "model": model["name"],
        "width": model["width"],
        "dataset": data["name"],
        "activation": model["activation"],
        "skip": model["skip"],
        "rewind_epoch": summary["start_epoch"],
        "gradinit": summary["gradinit"],
        **{column: summary[column] for column in LOSS_COLUMNS},
        "run": str(run),
    }


def aggregate(rows: Sequence[str], out: Path) -> None:
    write_sealed_csv(out, [summary_row(*parse_row(text)) for text in rows], COLUMNS)


def _in_percent(row: dict[str, str], path: str) -> dict[str, str]:
    """A row of an older summary.csv with its fractions (FRACTION_COLUMNS) in % under their new names."""
    converted = {}
    for key, value in row.items():
        if key in FRACTION_COLUMNS and value:
            try:
                value = str(percent(float(value)))
            except ValueError:
                raise LthError(
                    f"--experiments: {path}: column {key!r} holds {value!r}, not a number; rebuild it "
                    "with `lth aggregate` (in the workflow: `snakemake --forcerun aggregate`)"
                ) from None
        converted[FRACTION_COLUMNS.get(key, key)] = value
    return converted


def merge_summaries(experiments: Sequence[str], out: Path) -> None:
    """results/summary.csv: the rows of each NAME=SUMMARY_CSV, after a first column `experiment`.
    A summary.csv of an older lth (fractions, FRACTION_COLUMNS; or before mask sources) is merged
    as this lth writes it."""
    rows = []
    for text in experiments:
        name, _, path = text.partition("=")
        if not name or not path:
            raise LthError(f"--experiments: {text!r} is not NAME=SUMMARY_CSV")
        check_sealed(path, "lth aggregate")
        try:
            with open(path, newline="") as handle:
                reader = csv.DictReader(handle)
                fields = list(reader.fieldnames or [])
                later = [column for column in LATER_COLUMNS if column not in fields]
                written = [column for column in COLUMNS if column not in later]  # what it should have
                if fields == _legacy(written):
                    # Written as fractions: the same numbers in % under the new names.
                    reader = (_in_percent(row, path) for row in reader)
                    fields = [FRACTION_COLUMNS.get(key, key) for key in fields]
                if fields == written and later:
                    # Written before mask sources (its tickets are of one source, which it does not
                    # name) or training FLOPs: those cells are empty.
                    reader = ({**row, **dict.fromkeys(later, "")} for row in reader)
                elif fields != COLUMNS:
                    raise LthError(
                        f"--experiments: {path} lacks columns this lth writes (an older lth wrote it?); "
                        "rebuild it with `lth aggregate` (in the workflow: `snakemake --forcerun "
                        "aggregate`)"
                    )
                rows += [{"experiment": name, **row} for row in reader]  # the text as written, unparsed
        except OSError as error:
            raise LthError(f"--experiments: {path} cannot be read ({error.strerror})") from None
    write_sealed_csv(out, rows, ["experiment", *COLUMNS])


# ---------------------------------------------------------------------------------------------
# Reading a summary.csv


def read_summary(csv: str | Path, columns: Sequence[str] = SUMMARY_COLUMNS) -> pd.DataFrame:
    """A summary.csv (written by `lth aggregate`) that has `columns` and rows, or an LthError naming it.
    It must match its seal (lth.io.check_sealed): a table edited by hand is refused, not drawn.
    One written before the columns were in % (an older lth) is read in % (upgrade_summary)."""
    import pandas as pd

    check_sealed(csv, "lth aggregate")
    try:  # mask sources as text: a label of digits (`^[a-z0-9_]+$`) would otherwise be read as a number
        table = pd.read_csv(csv, dtype={MASK_SOURCE: str})
    except (OSError, ValueError) as error:  # pandas' parse errors are ValueErrors
        raise LthError(f"{csv} cannot be read as a CSV ({error}); rerun `lth aggregate`") from None
    table = upgrade_summary(table, str(csv))
    missing = [column for column in dict.fromkeys(columns) if column not in table]
    if missing:
        raise LthError(
            f"{csv} lacks the column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}; "
            "give a summary.csv written by `lth aggregate`"
        )
    if table.empty:
        raise LthError(f"{csv} has no rows; give a summary.csv of finished runs")
    return table


def check_one_experiment(table: pd.DataFrame, where: str) -> None:
    """An LthError when `table` (a summary) holds rows of several experiments (results/summary.csv)."""
    if "experiment" in table and table["experiment"].nunique() > 1:
        raise LthError(
            f"{where} holds {table['experiment'].nunique()} experiments "
            f"({', '.join(map(str, table['experiment'].unique()))}); give one experiment's "
            "summary.csv (results/<experiment>/summary.csv)"
        )


def level_means(rows: pd.DataFrame, x: str = "sparsity_pct") -> pd.DataFrame:
    """Per level of `rows` (one series), in order of level: level, sparsity_pct (the level's mean), x
    (the mean of column `x`), mean and std (ddof 1; NaN with one seed) of test_acc_pct, and
    seeds (distinct seeds, or rows where there is no seed column)."""
    counted = ("seed", "nunique") if "seed" in rows else ("acc", "size")
    stats = (
        rows.assign(acc=rows["test_acc_pct"], x=rows[x])
        .groupby("level")
        .agg(
            sparsity_pct=("sparsity_pct", "mean"),
            x=("x", "mean"),
            mean=("acc", "mean"),
            std=("acc", "std"),
            seeds=counted,
        )
    )
    return stats.reset_index()[STATS_COLUMNS]


def parts_of(name: str) -> frozenset[str] | None:
    """What variant `name` resolves to (lth.variants.resolve; `lth` is no parts), or None for a name
    that does not resolve (`dense`, `dense+<tweak>`). Figures and statistics match variants by this,
    never by spelling, so `skip+swish+gradinit+ls` is `at+trt`."""
    from lth.variants import resolve  # torch-free

    try:
        return frozenset(resolve(name).parts)
    except LthError:
        return None


def find_variant(expression: str, names: Iterable[str]) -> str | None:
    """The first of `names` that resolves to the same parts as `expression`, or None."""
    wanted = parts_of(expression)
    return next((name for name in names if parts_of(name) == wanted), None) if wanted is not None else None


def dense_baselines(table: pd.DataFrame) -> list[str]:
    """The dense-with-tweak baselines of a summary (variants `dense+<tweak>`), in order of appearance."""
    return [name for name in dict.fromkeys(table["variant"]) if str(name).startswith("dense+")]


def sparse_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of tickets: neither the dense network nor a dense-with-tweak baseline."""
    return table[(table["variant"] != "dense") & ~table["variant"].isin(dense_baselines(table))]


def sources_of(table: pd.DataFrame, where: str = "the summary") -> list[str | None]:
    """The mask sources of a summary's sparse rows in order of first appearance (the config's order;
    the first is the primary source), or [None] where there is no `mask_source` column or no sparse
    row has a label (an older summary.csv: one source without a label). An LthError, naming `where`,
    when only some sparse rows have a label."""
    sparse = sparse_rows(table)
    if MASK_SOURCE not in sparse or sparse[MASK_SOURCE].isna().all():
        return [None]
    unlabelled = sparse[sparse[MASK_SOURCE].isna()]
    if not unlabelled.empty:
        raise LthError(
            f"{where}: {len(unlabelled)} sparse rows (variants "
            f"{', '.join(map(str, dict.fromkeys(unlabelled['variant'])))}) have no {MASK_SOURCE} while "
            f"others have one; every ticket's row needs its mask source (rerun `lth aggregate`)"
        )
    return [str(source) for source in dict.fromkeys(sparse[MASK_SOURCE])]


def with_source(table: pd.DataFrame, source: str | None) -> pd.DataFrame:
    """The dense rows (every source shares them) and the sparse rows of mask source `source` (None: all
    sparse rows, for a summary of sources_of [None])."""
    if source is None:
        return table
    dense = table["variant"].isin(["dense", *dense_baselines(table)])
    return table[dense | (table[MASK_SOURCE].astype(str) == source)]


def primary_rows(table: pd.DataFrame, where: str = "the summary") -> pd.DataFrame:
    """with_source of the primary (first) mask source: what a figure of one source draws."""
    return with_source(table, sources_of(table, where)[0])
