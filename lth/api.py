"""The Python API: a finished run as a ticket in a notebook, found by what it is.

    import lth
    ticket = lth.find_ticket("results/quickstart", variant="at+trt", level=3, seed=0)
    logits = ticket.model(images)

`load_ticket` reads a run folder with the readers the commands use (lth.manifest.verify_run, the
checkpoint and mask readers, summary.csv's reader), so a ticket is exactly what `lth train` wrote:
every file checked against the run's manifest, the mask against the sha256 the run recorded.
Paths recorded in the tables and run records are relative to the project folder the workflow ran in;
they are looked up from the working directory, then from the folders above the file that names them,
so a notebook in a subfolder finds them too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lth.artifacts import FINAL, HPARAMS, METRICS
from lth.errors import LthError
from lth.io import IntegrityError

if TYPE_CHECKING:
    import pandas as pd
    from torch import nn

    from lth.masks import Mask, MaskEnforcer

SUMMARY_CSV = "summary.csv"
# What find_ticket selects by, and the columns `runs` requires of a summary.csv.
KEYS = ("variant", "level", "seed", "mask_source")


@dataclass
class Ticket:
    """A finished run: `model` (final weights, pruned weights zero, eval mode, on the CPU), `mask`
    (parameter name -> bool tensor, True = kept; empty for a dense run), `settings` (the run's record,
    hparams.yaml: seed, model, data, train, init, mask, gradinit, ...), `metrics` (metrics.csv: one
    row per epoch) and `summary` (summary.json: accuracies as fractions, sparsity, counts)."""

    folder: Path
    model: nn.Module
    mask: Mask
    settings: dict[str, Any]
    metrics: pd.DataFrame
    summary: dict[str, Any]

    @property
    def sparsity(self) -> float:
        """The fraction of the masked weights that are pruned (0.0 for a dense run)."""
        from lth.masks import sparsity

        return sparsity(self.mask)

    @property
    def test_acc_pct(self) -> float:
        """Test accuracy in % at the epoch of best validation accuracy (summary.csv's test_acc_pct)."""
        return 100 * self.summary["test_acc_at_best_val"]

    def enforcer(self) -> MaskEnforcer:
        """What keeps the pruned weights zero when training the model further: call its
        `apply_to_grads()` after backward and `apply_to_weights()` after each optimizer step."""
        from lth.masks import MaskEnforcer

        return MaskEnforcer(self.model, self.mask)


def locate(recorded: str | Path, near: Path) -> Path:
    """The file or folder a table or record names: absolute, or relative to the working directory (as
    the workflow ran), else to `near` or a folder above it."""
    path = Path(recorded)
    candidates = [path] if path.is_absolute() else [path, *(base / path for base in (near, *near.resolve().parents))]
    found = next((candidate for candidate in candidates if candidate.exists()), None)
    if found is None:
        raise LthError(
            f"{path} (named in {near}) is not found here ({Path.cwd()}) nor in a folder above {near}; "
            "run from the project folder the workflow ran in"
        )
    return found


def load_ticket(run_folder: str | Path) -> Ticket:
    """The finished run in `run_folder` (a results/runs/<kind>-<hash> folder of `lth train`), verified
    first: its summary.json and every file it lists, and the mask against the sha256 recorded in its
    hparams.yaml."""
    import pandas as pd

    from lth.checkpoints import load_checkpoint, model_from_checkpoint
    from lth.manifest import verify_run
    from lth.masks import MaskEnforcer
    from lth.yamlio import read_yaml

    folder = Path(run_folder)
    summary = verify_run(folder, files=True)
    settings = read_yaml(folder / HPARAMS)
    checkpoint = load_checkpoint(folder / FINAL)
    model = model_from_checkpoint(checkpoint)  # final.pt is this very architecture, jump branches included
    mask = _recorded_mask(folder, settings.get("mask"))
    try:
        MaskEnforcer(model, mask).apply_to_weights()  # already zero after training; applied so no reader depends on it
    except LthError as error:
        raise IntegrityError(f"{folder}: the run's mask does not fit its final weights ({error})") from None
    return Ticket(folder, model.eval(), mask, settings, pd.read_csv(folder / METRICS), summary)


def _recorded_mask(folder: Path, record: dict[str, Any] | None) -> Mask:
    """The mask the run in `folder` trained with, by the path and sha256 its hparams.yaml records."""
    from lth.masks import load_mask, mask_hash

    if not record:
        return {}
    path = locate(record["path"], folder)
    mask = load_mask(path)
    if mask_hash(mask) != record.get("sha256"):
        raise IntegrityError(
            f"{path} is not the mask {folder} trained with (sha256 {mask_hash(mask)}, the run's "
            f"{folder / HPARAMS} records {record.get('sha256')}): it was redrawn after the training; "
            "rerun the workflow, which retrains on the new mask"
        )
    return mask


def summary_csv(experiment_folder: str | Path) -> Path:
    """results/<experiment>/summary.csv for its folder (a summary.csv itself is taken as it is)."""
    path = Path(experiment_folder)
    csv = path if path.suffix == ".csv" else path / SUMMARY_CSV
    if not csv.is_file():
        raise LthError(
            f"{csv} not found: give an experiment's results folder (results/<experiment>, e.g. "
            "results/quickstart after `make quickstart`), which holds its summary.csv"
        )
    return csv


def runs(experiment_folder: str | Path) -> pd.DataFrame:
    """The experiment's summary.csv (one row per finished run: seed, variant, level, mask_source,
    accuracies in %, sparsity_pct, ..., `run`: its folder), checked against its seal as every reader does."""
    from lth.report.summary import read_summary

    return read_summary(summary_csv(experiment_folder), columns=("seed", "variant", "level", "run"))


def find_ticket(
    experiment_folder: str | Path,
    *,
    variant: str | None = None,
    level: int | None = None,
    seed: int | None = None,
    mask_source: str | None = None,
) -> Ticket:
    """The ticket of the one run of the experiment's summary.csv that is `variant` (matched by what it
    resolves to, so `skip+swish+gradinit+ls` finds `at+trt`), at `level`, of `seed`, and whose mask
    `mask_source` made; a key left None matches any value. An LthError naming what was asked and what
    the summary holds when no run or several runs match."""
    from lth.report.summary import MASK_SOURCE, find_variant

    csv = summary_csv(experiment_folder)
    table = runs(csv)
    asked = {key: value for key, value in zip(KEYS, (variant, level, seed, mask_source)) if value is not None}
    chosen = table
    if variant is not None:
        names = [str(name) for name in dict.fromkeys(table["variant"])]
        name = find_variant(variant, names) or variant  # dense, dense+<tweak>: by name
        chosen = chosen[chosen["variant"].astype(str) == name]
    for key, value in (("level", level), ("seed", seed)):
        if value is not None:
            chosen = chosen[chosen[key] == value]
    if mask_source is not None:
        chosen = chosen[chosen[MASK_SOURCE].astype(str) == mask_source] if MASK_SOURCE in chosen else chosen[:0]
    wanted = ", ".join(f"{key}={value!r}" for key, value in asked.items()) or "any run"
    if chosen.empty:
        raise LthError(f"no run in {csv} is {wanted}; it holds {_holds(table)}")
    if len(chosen) > 1:
        rows = "; ".join(_row(row) for _, row in chosen.head(5).iterrows())
        more = f"; and {len(chosen) - 5} more" if len(chosen) > 5 else ""
        narrow = ", ".join(f"{key}=" for key in KEYS if key not in asked)
        raise LthError(f"{len(chosen)} runs in {csv} are {wanted} ({rows}{more}); name one by {narrow}")
    return load_ticket(locate(chosen.iloc[0]["run"], csv.parent))


def _values(table: pd.DataFrame, key: str) -> str:
    present = table[key].dropna() if key in table else []
    return ", ".join(map(str, dict.fromkeys(present))) or "none"  # in the table's order: the config's


def _holds(table: pd.DataFrame) -> str:
    """What a summary offers to choose from, key by key."""
    return "; ".join(f"{key.replace('_', ' ')}s {_values(table, key)}" for key in KEYS)


def _row(row: pd.Series) -> str:
    source = row.get("mask_source")
    return (
        f"variant={row['variant']!r}, level={row['level']}, seed={row['seed']}"
        + (f", mask_source={source!r}" if isinstance(source, str) else "")
        + f": {row['run']}"
    )
