"""Figures drawn only from summary.csv, so every figure can be rebuilt without touching a run.

Besides `lth plot`'s all-variants figure, this module holds what every accuracy figure shares
(lth/figures.py draws the paper's): reading a summary.csv, the mean and standard deviation over
seeds at each level, a curve with its band, the dense lines, the x axes and atomic saving.
Conventions: accuracy is in %, a band is +- one standard deviation (ddof 1) and is drawn only when
more than one seed exists, and sparser is to the right.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lth.errors import LthError
from lth.io import atomic_open

if TYPE_CHECKING:
    import pandas as pd

X_AXES = {
    "sparsity": "Sparsity (% of prunable weights removed; log-spaced in weights remaining)",
    "nonzero_params": "Nonzero parameters of the trained network (log scale)",
    "forward_flops_effective": "Forward FLOPs per image, pruned weights skipped (log scale)",
}
SHORT_X_AXES = {  # for small panels (the grids), where X_AXES' labels do not fit
    "sparsity": "Sparsity (%, log-spaced)",
    "nonzero_params": "Nonzero parameters",
    "forward_flops_effective": "Effective forward FLOPs",
}
FIGURE_SUFFIXES = (".png", ".pdf", ".svg")
SUMMARY_COLUMNS = ("seed", "variant", "level", "sparsity", "test_acc")  # what every accuracy figure reads
STATS_COLUMNS = ["level", "sparsity", "x", "mean", "std", "seeds"]  # what level_means returns


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


def check_x(x: str) -> None:
    """`x` is one of X_AXES, or an LthError listing them."""
    if x not in X_AXES:
        raise LthError(f"--x: {x!r} is not allowed; choose one of: {', '.join(X_AXES)}")


def check_outputs(what: str, outputs: Sequence[str | Path]) -> list[Path]:
    """The figure files to write, each with a suffix matplotlib writes (it picks the format)."""
    if not outputs:
        raise LthError(f"{what}: give at least one output file ({', '.join(FIGURE_SUFFIXES)})")
    for output in outputs:
        if Path(output).suffix.lower() not in FIGURE_SUFFIXES:
            raise LthError(f"{output}: the suffix {Path(output).suffix or '(none)'!r} is not allowed for {what}; "
                           f"give one of {', '.join(FIGURE_SUFFIXES)}")
    return [Path(output) for output in outputs]


def read_summary(csv: str | Path, columns: Sequence[str] = SUMMARY_COLUMNS) -> pd.DataFrame:
    """A summary.csv (written by `lth aggregate`) that has `columns` and rows, or an LthError naming it."""
    import pandas as pd

    try:
        table = pd.read_csv(csv)
    except (OSError, ValueError) as error:  # pandas' parse errors are ValueErrors
        raise LthError(f"{csv} cannot be read as a CSV ({error}); rerun `lth aggregate`") from None
    missing = [column for column in dict.fromkeys(columns) if column not in table]
    if missing:
        raise LthError(f"{csv} lacks the column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}; "
                       "give a summary.csv written by `lth aggregate`")
    if table.empty:
        raise LthError(f"{csv} has no rows; give a summary.csv of finished runs")
    return table


def check_one_experiment(table: pd.DataFrame, where: str) -> None:
    """An LthError when `table` (a summary) holds rows of several experiments (results/summary.csv)."""
    if "experiment" in table and table["experiment"].nunique() > 1:
        raise LthError(f"{where} holds {table['experiment'].nunique()} experiments "
                       f"({', '.join(map(str, table['experiment'].unique()))}); give one experiment's "
                       "summary.csv (results/<experiment>/summary.csv)")


def level_means(rows: pd.DataFrame, x: str = "sparsity") -> pd.DataFrame:
    """Per level of `rows` (one series), in order of level: level, sparsity (the level's mean), x (the
    mean of column `x`), mean and std (ddof 1; NaN with one seed) of 100 * test_acc, and seeds (distinct
    seeds, or rows where there is no seed column)."""
    counted = ("seed", "nunique") if "seed" in rows else ("acc", "size")
    stats = rows.assign(acc=100 * rows["test_acc"], x=rows[x]).groupby("level").agg(
        sparsity=("sparsity", "mean"), x=("x", "mean"), mean=("acc", "mean"), std=("acc", "std"), seeds=counted)
    return stats.reset_index()[STATS_COLUMNS]


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend: files only, the same output on every machine."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def position(stats: pd.DataFrame, x: str) -> Any:
    """Where level_means' rows go on the x axis: remaining % for `sparsity` (see sparsity_axis), else x."""
    return remaining_percent(stats["sparsity"]) if x == "sparsity" else stats["x"]


def draw_curve(ax: Any, stats: pd.DataFrame, x: str, label: str, color: Any = None, **style: Any) -> Any:
    """A series' mean line from level_means' frame, with a +-std band only when more than one seed
    exists; returns the line's colour (the next of the cycle when `color` is None)."""
    at = position(stats, x)
    (line,) = ax.plot(at, stats["mean"], marker="o", markersize=3, label=label, color=color, **style)
    if stats["seeds"].max() > 1:
        ax.fill_between(at, stats["mean"] - stats["std"], stats["mean"] + stats["std"], color=line.get_color(),
                        alpha=0.2, linewidth=0)
    return line.get_color()


def draw_dense(ax: Any, rows: pd.DataFrame, label: str, color: Any = "black", x: str = "sparsity",
               band: bool = True) -> pd.DataFrame:
    """A dense network's rows (one variant, level 0) as a dashed horizontal line at its mean accuracy,
    labelled with mean +- std, and (`band`) a +-std band only when more than one seed exists.
    Returns its level_means frame: one row, level 0."""
    stats = level_means(rows.assign(level=0), x)
    mean, std, seeds = stats["mean"].item(), stats["std"].item(), stats["seeds"].item()
    several = seeds > 1
    ax.axhline(mean, color=color, linestyle="--", linewidth=1,
               label=f"{label} ({mean:.2f}%" + (f" ± {std:.2f})" if several else ")"))
    if band and several:
        ax.axhspan(mean - std, mean + std, color=color, alpha=0.08, linewidth=0)
    return stats


def finish_x_axis(ax: Any, x: str, sparsities: Iterable[float], short: bool = False) -> None:
    """The x axis for `x`: the sparsity axis with a tick per level, or a log axis, sparser to the right;
    `short`: the label of SHORT_X_AXES."""
    if x == "sparsity":
        sparsity_axis(ax, sparsities)
    else:
        ax.set_xscale("log")
        ax.invert_xaxis()  # sparser to the right
    ax.set_xlabel((SHORT_X_AXES if short else X_AXES)[x])
    ax.grid(True, alpha=0.3)


def save_figure(fig: Any, outputs: Sequence[str | Path]) -> None:
    """Every output in the format of its suffix, each atomically (a killed job leaves no half
    figure); the figure is closed even when a write fails."""
    plt = pyplot()
    try:
        for output in outputs:
            with atomic_open(output, "wb") as handle:
                fig.savefig(handle, format=Path(output).suffix.lower().lstrip(".") or "png", dpi=150)
    finally:
        plt.close(fig)


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


def plot_accuracy_vs_sparsity(summary_csv: Path, outputs: Sequence[Path], x: str = "sparsity",
                              title: str | None = None) -> dict[str, pd.DataFrame]:
    """Test accuracy (at the best-validation epoch) against sparsity, one line per variant.

    The dense accuracy is a black dashed line, each dense-with-tweak baseline (`dense+<tweak>`) a
    dashed line in the colour of the variant with the same parts (if drawn); with several seeds each
    line is the mean and the band +- one standard deviation. As is usual for lottery tickets the x axis
    is logarithmic in the weights that remain, so each IMP level is one even step to the right.
    Returns the plotted data, label -> level_means frame (dense lines: one row, level 0).
    """
    check_x(x)
    table = read_summary(summary_csv, ("variant", "level", "test_acc", "sparsity", x))
    baselines = dense_baselines(table)
    dense = table[table["variant"] == "dense"]
    sparse = table[(table["variant"] != "dense") & ~table["variant"].isin(baselines)]
    if sparse.empty:
        raise LthError(f"{summary_csv} has no sparse rows to plot")

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    plotted: dict[str, pd.DataFrame] = {}
    colors: dict[frozenset[str], Any] = {}
    for variant, rows in sparse.groupby("variant", sort=False):
        plotted[variant] = level_means(rows, x)
        color = draw_curve(ax, plotted[variant], x, variant)
        if parts_of(variant) is not None:
            colors.setdefault(parts_of(variant), color)
    if not dense.empty:
        plotted["dense"] = draw_dense(ax, dense, "dense", x=x, band=False)
    for name in baselines:  # in its tweak's colour, so each tweak's dense effect reads beside its ticket
        color = colors.get(parts_of(name.removeprefix("dense+")), "gray")
        plotted[name] = draw_dense(ax, table[table["variant"] == name], name, color, x=x, band=False)
    finish_x_axis(ax, x, sparse["sparsity"])
    ax.set_ylabel("Test accuracy at best validation (%)")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    save_figure(fig, outputs)
    return plotted
