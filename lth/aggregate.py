"""`lth aggregate`: one summary.csv row per (seed, variant, level) from finished run folders."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lth.errors import LthError
from lth.io import write_csv
from lth.manifest import verify_run

COLUMNS = ["seed", "variant", "level", "sparsity", "nonzero_params", "total_params", "forward_flops",
           "forward_flops_effective", "test_acc", "best_val_epoch", "final_test_acc", "epochs_trained", "seconds",
           "run"]


def parse_row(text: str) -> tuple[int, str, int, Path]:
    try:
        seed, variant, level, run = text.split(":", 3)
        return int(seed), variant, int(level), Path(run)
    except ValueError:
        raise LthError(f"row {text!r} is not SEED:VARIANT:LEVEL:RUN_FOLDER") from None


def summary_row(seed: int, variant: str, level: int, run: Path) -> dict[str, Any]:
    summary = verify_run(run, files=False)  # summary.json's own digest and finite values: cheap for many runs
    return {
        "seed": seed,
        "variant": variant,
        "level": level,
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
        "run": str(run),
    }


def aggregate(rows: Sequence[str], out: Path) -> None:
    write_csv(out, [summary_row(*parse_row(text)) for text in rows], COLUMNS)
