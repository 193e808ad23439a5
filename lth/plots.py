"""Figures drawn only from summary.csv, so every figure can be rebuilt without touching a run."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from lth.errors import LthError
from lth.io import atomic_open

X_AXES = {
    "sparsity": "Sparsity (% of prunable weights removed; log-spaced in weights remaining)",
    "nonzero_params": "Nonzero parameters of the trained network (log scale)",
    "forward_flops_effective": "Forward FLOPs per image, pruned weights skipped (log scale)",
}


def remaining_percent(sparsity: Any) -> Any:  # a float, a numpy array or a pandas Series alike
    """The x position of a sparsity (a fraction) on `sparsity_axis`: the % of weights remaining."""
    return 100 * (1 - sparsity)


def sparsity_axis(ax: Any, sparsities: Iterable[float]) -> None:  # ax: a matplotlib Axes
    """The lottery-ticket x axis, shared by every figure against sparsity: logarithmic in the weights
    that remain (plot at `remaining_percent`), so each IMP level is one even step, inverted so
    sparser is to the right, with one tick per given sparsity labelled by the sparsity in %."""
    import numpy as np

    ax.set_xscale("log")
    ax.invert_xaxis()  # sparser to the right
    ticks = sorted(set(np.round(remaining_percent(np.asarray(list(sparsities), dtype=float)), 6)), reverse=True)
    ax.set_xticks(ticks, [f"{100 - t:.1f}" for t in ticks], rotation=60, fontsize=7)
    ax.minorticks_off()


def plot_accuracy_vs_sparsity(summary_csv: Path, outputs: Sequence[Path], x: str = "sparsity",
                              title: str | None = None) -> None:
    """Test accuracy (at the best-validation epoch) against sparsity, one line per variant.

    The dense accuracy is a dashed line; with several seeds each line is the mean and the band
    +- one standard deviation. As is usual for lottery tickets the x axis is logarithmic in the
    weights that remain, so each IMP level is one even step to the right.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    if x not in X_AXES:
        raise LthError(f"--x: {x!r} is not allowed; choose one of: {', '.join(X_AXES)}")
    try:
        table = pd.read_csv(summary_csv)
    except (OSError, ValueError) as error:  # pandas' parse errors are ValueErrors
        raise LthError(f"{summary_csv} cannot be read as a CSV ({error}); rerun `lth aggregate`") from None
    missing = [column for column in ("variant", "level", "test_acc", "sparsity", x) if column not in table]
    if missing:
        raise LthError(f"{summary_csv} lacks the column {missing[0]!r}; give a summary.csv written by "
                       "`lth aggregate`")
    dense = table[table["variant"] == "dense"]
    sparse = table[table["variant"] != "dense"]
    if sparse.empty:
        raise LthError(f"{summary_csv} has no sparse rows to plot")

    def position(frame: pd.DataFrame) -> pd.Series:
        return remaining_percent(frame["sparsity"]) if x == "sparsity" else frame[x]

    fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    for variant, rows in sparse.groupby("variant", sort=False):
        stats = rows.assign(x=position(rows), acc=100 * rows["test_acc"]).groupby("level").agg(
            x=("x", "mean"), mean=("acc", "mean"), std=("acc", "std"), seeds=("acc", "size"))
        (line,) = ax.plot(stats["x"], stats["mean"], marker="o", markersize=3, label=variant)
        if stats["seeds"].max() > 1:
            ax.fill_between(stats["x"], stats["mean"] - stats["std"], stats["mean"] + stats["std"],
                            color=line.get_color(), alpha=0.2, linewidth=0)
    if not dense.empty:
        accuracy = 100 * dense["test_acc"]
        ax.axhline(accuracy.mean(), color="black", linestyle="--", linewidth=1,
                   label=f"dense ({accuracy.mean():.2f}%" + (f" ± {accuracy.std():.2f})" if len(dense) > 1 else ")"))
    if x == "sparsity":
        sparsity_axis(ax, sparse["sparsity"])
    else:
        ax.set_xscale("log")
        ax.invert_xaxis()  # sparser to the right
    ax.set_xlabel(X_AXES[x])
    ax.set_ylabel("Test accuracy at best validation (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    for output in outputs:
        with atomic_open(output, "wb") as handle:
            fig.savefig(handle, format=Path(output).suffix.lstrip(".") or "png", dpi=150)
    plt.close(fig)
