"""`lth aggregate`: one summary.csv row per (seed, variant, level) from finished run folders, and
results/summary.csv, every experiment's rows together.

summary.csv columns (README.md, "Tables", says the same):
- seed, variant, level: the row; the dense network is variant `dense`, level 0; a dense-with-tweak
  baseline is `dense+<tweak>`, level 0.
- mask_source: the label of the `masks` entry whose mask the run was re-trained on (magnitude,
  random, snip, ...; lth/mask_config.py); empty for the dense rows, which no mask made.
- sparsity, nonzero_params, total_params, forward_flops, forward_flops_effective: of the trained
  network (skip branches included in the counts).
- test_acc (at the epoch of best validation accuracy), best_val_epoch, final_test_acc,
  epochs_trained, seconds: the training's results.
- model, width, dataset, activation, skip: what was trained; rewind_epoch: the epoch its weights
  started from (0 = theta0); gradinit: whether GradInit rescaled them first.
- label_smoothing, label_smoothing_form, kd_alpha, kd_temperature, kd_reduction: the loss (a form,
  temperature or reduction is empty while its term is off).
- run: the run folder.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from lth.errors import LthError
from lth.io import write_csv
from lth.manifest import verify_run

COLUMNS = ["seed", "variant", "level", "mask_source", "sparsity", "nonzero_params", "total_params", "forward_flops",
           "forward_flops_effective", "test_acc", "best_val_epoch", "final_test_acc", "epochs_trained", "seconds",
           "model", "width", "dataset", "activation", "skip", "rewind_epoch", "gradinit", "label_smoothing",
           "label_smoothing_form", "kd_alpha", "kd_temperature", "kd_reduction", "run"]
LOSS_COLUMNS = ("label_smoothing", "label_smoothing_form", "kd_alpha", "kd_temperature", "kd_reduction")


ROW_FORMAT = "SEED:VARIANT:LEVEL:MASK_SOURCE:RUN_FOLDER"  # MASK_SOURCE empty for dense rows


def parse_row(text: str) -> tuple[int, str, int, str, Path]:
    try:
        seed, variant, level, mask_source, run = text.split(":", 4)
        return int(seed), variant, int(level), mask_source, Path(run)
    except ValueError:
        raise LthError(f"row {text!r} is not {ROW_FORMAT}") from None


def summary_row(seed: int, variant: str, level: int, mask_source: str, run: Path) -> dict[str, Any]:
    summary = verify_run(run, files=False)  # summary.json's own digest and finite values: cheap for many runs
    try:  # what the run was trained as, in its own record
        hparams = yaml.safe_load((run / "hparams.yaml").read_text())
        model, data = hparams["model"], hparams["data"]
    except (OSError, yaml.YAMLError, TypeError, KeyError) as error:
        raise LthError(f"{run / 'hparams.yaml'} cannot be read as an lth run record ({error}); retrain the run "
                       f"with `lth train ... --out-dir {run} --force`") from None
    return {
        "seed": seed,
        "variant": variant,
        "level": level,
        "mask_source": mask_source,
        "sparsity": summary["sparsity"],
        "nonzero_params": summary["nonzero_params"],
        "total_params": summary["total_params"],
        "forward_flops": summary["forward_flops"],
        "forward_flops_effective": summary["forward_flops_effective"],
        "test_acc": summary["test_acc_at_best_val"],
        "best_val_epoch": summary["best_val_epoch"],
        "final_test_acc": summary["final_test_acc"],
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
    write_csv(out, [summary_row(*parse_row(text)) for text in rows], COLUMNS)


def merge_summaries(experiments: Sequence[str], out: Path) -> None:
    """results/summary.csv: the rows of each NAME=SUMMARY_CSV, after a first column `experiment`."""
    rows = []
    for text in experiments:
        name, _, path = text.partition("=")
        if not name or not path:
            raise LthError(f"--experiments: {text!r} is not NAME=SUMMARY_CSV")
        try:
            with open(path, newline="") as handle:
                reader = csv.DictReader(handle)
                if reader.fieldnames == [column for column in COLUMNS if column != "mask_source"]:
                    # Written before mask sources: its tickets are of one source, which it does not name.
                    reader = ({**row, "mask_source": ""} for row in reader)
                elif reader.fieldnames != COLUMNS:
                    raise LthError(f"--experiments: {path} lacks columns this lth writes (an older lth wrote it?); "
                                   "rebuild it with `lth aggregate` (in the workflow: `snakemake --forcerun "
                                   "aggregate`)")
                rows += [{"experiment": name, **row} for row in reader]  # the text as written, unparsed
        except OSError as error:
            raise LthError(f"--experiments: {path} cannot be read ({error.strerror})") from None
    write_csv(out, rows, ["experiment", *COLUMNS])
