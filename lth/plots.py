"""Figures drawn only from summary.csv, so every figure can be rebuilt without touching a run.

Besides `lth plot`'s all-variants figure, this module holds what every accuracy figure shares
(lth/figures.py draws the paper's): reading a summary.csv, the mean and standard deviation over
seeds at each level, a curve with its band, the dense lines, the x axes and atomic saving.
Conventions: accuracy and sparsity are in % (summary.csv's `test_acc_pct`, the test accuracy at
the epoch of best validation accuracy, and `sparsity_pct`), a band is +- one standard deviation
(ddof 1) and is drawn only when more than one seed exists, and sparser is to the right. A variant has
one colour in every figure (`variant_colors`), and every title says the model, data, epochs and
seeds it shows (`describe_runs`), the file's name saying which figure it is.

Mask sources: a summary's column `mask_source` names what made each ticket's mask (`magnitude`,
`random`, `snip`, a user's label ...; empty for the dense rows, which no mask made). Its sources
are those of the sparse rows in order of first appearance, the config's order, and the first is the
experiment's primary source (`sources_of`). A summary without the column (written before it
existed) has one source without a label (None), so every older summary.csv draws as before. Where a
figure shows several sources, a series' key is `"<variant> (<source>)"` (`series_key`); with one
source it is the variant's name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lth.aggregate import upgrade_summary
from lth.errors import LthError
from lth.io import atomic_open, check_sealed

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
X_COLUMNS = {"sparsity": "sparsity_pct"}  # the summary.csv column of an x axis (the others: its own name)
FIGURE_SUFFIXES = (".png", ".pdf", ".svg")
SUMMARY_COLUMNS = ("seed", "variant", "level", "sparsity_pct", "test_acc_pct")  # what every accuracy figure reads
# What a title says about the runs (describe_runs): summary.csv's columns.
TITLE_COLUMNS = ("model", "width", "dataset", "epochs_trained", "rewind_epoch")
STATS_COLUMNS = ["level", "sparsity_pct", "x", "mean", "std", "seeds"]  # what level_means returns
MASK_SOURCE = "mask_source"  # summary.csv's column: what made a ticket's mask (empty for dense rows)
# `lth plot` with several mask sources: a panel per source, or one axes with a curve per (variant, source).
MASK_SOURCE_LAYOUTS = ("panels", "curves")
# Line styles of the sources in one axes ("curves"); never "--", which marks the dense lines.
SOURCE_STYLES = ("-", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 4)), (0, (8, 2)))


# ---------------------------------------------------------------------------------------------
# One colour per variant, in every figure

# Keyed by what a variant resolves to (parts_of), so `at+trt` and `skip+swish+gradinit+ls` share a
# colour; the paper's variants each have their own (tab20: a tweak's rewound form is its light shade).
NAMED_COLORS = {
    "lth": "#1f77b4",
    "at": "#ff7f0e",
    "trt": "#2ca02c",
    "at+trt": "#d62728",
    "rewind": "#9467bd",
    "skip": "#8c564b",
    "swish": "#e377c2",
    "mish": "#bcbd22",
    "ls": "#17becf",
    "gradinit": "#7f7f7f",
    "at+rewind": "#ffbb78",
    "trt+rewind": "#98df8a",
    "at+trt+rewind": "#ff9896",
    "skip+swish+gradinit+kd": "#c5b0d5",
    "reinit": "#c49c94",
    "kd": "#9edae5",
    "skip_identity": "#f7b6d2",
}
SPARE_COLORS = (
    "#aec7e8",
    "#dbdb8d",
    "#c7c7c7",
    "#393b79",
    "#637939",
    "#8c6d31",
    "#843c39",
    "#7b4173",
    "#3182bd",
    "#e6550d",
    "#31a354",
    "#756bb1",
)  # for other variants: never one of the named
DENSE_COLOR = "black"


def variant_colors(names: Iterable[str]) -> dict[str, str]:
    """The colour of each variant in `names` (a summary's spelling, `dense` and `dense+<tweak>` too):
    the same in every figure, by what it resolves to. The dense network is black, a dense-with-tweak
    baseline takes its tweak's colour (it is drawn dashed). Another variant gets a spare colour
    chosen by its parts, the next free one where two would share it in one figure."""
    import hashlib

    by_parts = {parts_of(name): color for name, color in NAMED_COLORS.items()}
    colors: dict[str, str] = {}
    for name in dict.fromkeys(names):
        if name == "dense":
            colors[name] = DENSE_COLOR
            continue
        parts = parts_of(name.removeprefix("dense+")) if name.startswith("dense+") else parts_of(name)
        if parts in by_parts:
            colors[name] = by_parts[parts]
            continue
        key = "+".join(sorted(parts)) if parts is not None else name
        start = int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(SPARE_COLORS)
        taken = set(colors.values())
        free = [SPARE_COLORS[(start + k) % len(SPARE_COLORS)] for k in range(len(SPARE_COLORS))]
        colors[name] = next((color for color in free if color not in taken), free[0])
    return colors


# ---------------------------------------------------------------------------------------------
# What a figure shows: its title

MODEL_TITLES = {"resnet18": "ResNet-18", "resnet34": "ResNet-34", "vgg16": "VGG-16", "mobilenet": "MobileNet"}


def _values(column: Any) -> str:
    """A column's distinct values, in order: `10` or `10, 20`."""
    return ", ".join(str(value) for value in dict.fromkeys(column.tolist()))


def model_text(rows: pd.DataFrame) -> str:
    """`ResNet-18 (width 4)`: the model and width of `rows` (a summary's or a collected CSV's)."""
    models = ", ".join(MODEL_TITLES.get(str(name), str(name)) for name in dict.fromkeys(rows["model"]))
    return f"{models} (width {_values(rows['width'])})"


def describe_runs(rows: pd.DataFrame, model: bool = True) -> str:
    """What `rows` were trained as, for a figure's title: `ResNet-18 (width 4) on digits, 10 epochs,
    1 seed` (with `model` False from `10 epochs` on). Epochs are the training schedule's length
    (a rewound run's schedule too: `epochs_trained + rewind_epoch` of a summary, `train_epochs` of a
    collected CSV); several values are listed."""
    import pandas as pd

    epochs = rows["train_epochs"] if "train_epochs" in rows else rows["epochs_trained"] + rows["rewind_epoch"]
    values = sorted(pd.to_numeric(epochs).astype(int).unique())
    seeds = rows["seed"].nunique()
    text = (
        f"{', '.join(map(str, values))} epoch{'s' if values != [1] else ''}, "
        f"{seeds} seed{'s (mean ± std)' if seeds > 1 else ''}"
    )
    return f"{model_text(rows)} on {_values(rows['dataset'])}, {text}" if model else text


def figure_title(what: str, rows: pd.DataFrame, prefix: str | None = None) -> str:
    """Two lines: `<prefix>: <what>` (the figure's subject; `prefix`, e.g. the experiment, when given)
    and describe_runs(rows)."""
    heading = f"{prefix}: {what}" if prefix else what
    return f"{heading}\n{describe_runs(rows)}"


# ---------------------------------------------------------------------------------------------
# Axes


def remaining_percent(sparsity_pct: Any) -> Any:  # a float, a numpy array or a pandas Series alike
    """The x position of a sparsity (in %) on `sparsity_axis`: the % of weights remaining."""
    return 100 - sparsity_pct


def sparsity_axis(ax: Any, sparsities_pct: Iterable[float]) -> None:  # ax: a matplotlib Axes
    """The lottery-ticket x axis, shared by every figure against sparsity: logarithmic in the weights
    that remain (plot at `remaining_percent`), so each IMP level is one even step, inverted so
    sparser is to the right, with one tick per given sparsity (in %) labelled by that sparsity."""
    import numpy as np

    ax.set_xscale("log")
    ax.invert_xaxis()  # sparser to the right
    ticks = sorted(set(np.round(remaining_percent(np.asarray(list(sparsities_pct), dtype=float)), 6)), reverse=True)
    ax.set_xticks(ticks, [f"{100 - t:.1f}" for t in ticks], rotation=60, fontsize=7)
    ax.minorticks_off()


def check_x(x: str) -> None:
    """`x` is one of X_AXES, or an LthError listing them."""
    if x not in X_AXES:
        raise LthError(f"--x: {x!r} is not allowed; choose one of: {', '.join(X_AXES)}")


def x_column(x: str) -> str:
    """The summary.csv column that x axis `x` (X_AXES) plots."""
    return X_COLUMNS.get(x, x)


def check_outputs(what: str, outputs: Sequence[str | Path]) -> list[Path]:
    """The figure files to write, each with a suffix matplotlib writes (it picks the format)."""
    if not outputs:
        raise LthError(f"{what}: give at least one output file ({', '.join(FIGURE_SUFFIXES)})")
    for output in outputs:
        if Path(output).suffix.lower() not in FIGURE_SUFFIXES:
            raise LthError(
                f"{output}: the suffix {Path(output).suffix or '(none)'!r} is not allowed for {what}; "
                f"give one of {', '.join(FIGURE_SUFFIXES)}"
            )
    return [Path(output) for output in outputs]


def read_summary(csv: str | Path, columns: Sequence[str] = SUMMARY_COLUMNS) -> pd.DataFrame:
    """A summary.csv (written by `lth aggregate`) that has `columns` and rows, or an LthError naming it.
    It must match its seal (lth.io.check_sealed): a table edited by hand is refused, not drawn.
    One written before the columns were in % (an older lth) is read in % (lth.aggregate.upgrade_summary)."""
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


def level_means(rows: pd.DataFrame, x: str = "sparsity") -> pd.DataFrame:
    """Per level of `rows` (one series), in order of level: level, sparsity_pct (the level's mean), x
    (the mean of x axis `x`'s column), mean and std (ddof 1; NaN with one seed) of test_acc_pct, and
    seeds (distinct seeds, or rows where there is no seed column)."""
    counted = ("seed", "nunique") if "seed" in rows else ("acc", "size")
    stats = (
        rows.assign(acc=rows["test_acc_pct"], x=rows[x_column(x)])
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


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend: files only, the same output on every machine."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def position(stats: pd.DataFrame, x: str) -> Any:
    """Where level_means' rows go on the x axis: remaining % for `sparsity` (see sparsity_axis), else x."""
    return remaining_percent(stats["sparsity_pct"]) if x == "sparsity" else stats["x"]


def draw_curve(ax: Any, stats: pd.DataFrame, x: str, label: str, color: Any = None, **style: Any) -> Any:
    """A series' mean line from level_means' frame, with a +-std band only when more than one seed
    exists; returns the line's colour (the next of the cycle when `color` is None)."""
    at = position(stats, x)
    (line,) = ax.plot(at, stats["mean"], marker="o", markersize=3, label=label, color=color, **style)
    if stats["seeds"].max() > 1:
        ax.fill_between(
            at,
            stats["mean"] - stats["std"],
            stats["mean"] + stats["std"],
            color=line.get_color(),
            alpha=0.2,
            linewidth=0,
        )
    return line.get_color()


def draw_dense(
    ax: Any, rows: pd.DataFrame, label: str, color: Any = DENSE_COLOR, x: str = "sparsity", band: bool = True
) -> pd.DataFrame:
    """A dense network's rows (one variant, level 0) as a dashed horizontal line at its mean accuracy,
    labelled with its test accuracy, mean +- std in %, and (`band`) a +-std band only when more than
    one seed exists.
    Returns its level_means frame: one row, level 0."""
    stats = level_means(rows.assign(level=0), x)
    mean, std, seeds = stats["mean"].item(), stats["std"].item(), stats["seeds"].item()
    several = seeds > 1
    ax.axhline(
        mean,
        color=color,
        linestyle="--",
        linewidth=1,
        label=f"{label} ({mean:.2f}%" + (f" ± {std:.2f})" if several else ")"),
    )
    if band and several:
        ax.axhspan(mean - std, mean + std, color=color, alpha=0.08, linewidth=0)
    return stats


def finish_x_axis(ax: Any, x: str, sparsities_pct: Iterable[float], short: bool = False) -> None:
    """The x axis for `x`: the sparsity axis with a tick per level (sparsities in %), or a log axis,
    sparser to the right; `short`: the label of SHORT_X_AXES."""
    if x == "sparsity":
        sparsity_axis(ax, sparsities_pct)
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


def series_key(label: str, source: str | None) -> str:
    """A series' key (and curve label) where several mask sources are drawn: `<label> (<source>)`;
    the bare label for None (one source)."""
    return label if source is None else f"{label} ({source})"


def check_mask_source_layout(layout: str) -> None:
    """`layout` is one of MASK_SOURCE_LAYOUTS, or an LthError listing them."""
    if layout not in MASK_SOURCE_LAYOUTS:
        raise LthError(f"--mask-sources: {layout!r} is not allowed; choose one of: {', '.join(MASK_SOURCE_LAYOUTS)}")


def plot_accuracy_vs_sparsity(
    summary_csv: Path,
    outputs: Sequence[Path],
    x: str = "sparsity",
    title: str | None = None,
    mask_sources: str = "panels",
) -> dict[str, pd.DataFrame]:
    """Test accuracy (at the best-validation epoch) against sparsity, one line per variant, in the
    variant's colour (variant_colors); titled `<title>: <what>` and describe_runs' line.

    The dense accuracy is a black dashed line, each dense-with-tweak baseline (`dense+<tweak>`) a
    dashed line in its tweak's colour; with several seeds each
    line is the mean and the band +- one standard deviation. As is usual for lottery tickets the x axis
    is logarithmic in the weights that remain, so each IMP level is one even step to the right.
    With several mask sources (column `mask_source`), `mask_sources` = "panels" draws a panel per
    source side by side (sharing the y axis, each titled by its source, with every variant and the
    dense lines), "curves" one axes with a curve per (variant, source) labelled `variant (source)`:
    the colour is the variant's in either, the line style the source's. One source (or a summary
    without the column) draws one axes whatever `mask_sources` says.
    Returns the plotted data, key -> level_means frame: the key is the variant with one source,
    `"<variant> (<source>)"` (series_key) with several; dense lines `dense` and `dense+<tweak>`
    (one row, level 0; drawn in every panel, the same data).
    """
    check_x(x)
    check_mask_source_layout(mask_sources)
    table = read_summary(summary_csv, (*SUMMARY_COLUMNS, *TITLE_COLUMNS, x_column(x)))
    baselines = dense_baselines(table)
    dense = table[table["variant"] == "dense"]
    sparse = sparse_rows(table)
    if sparse.empty:
        raise LthError(f"{summary_csv} has no sparse rows to plot")
    sources = sources_of(table, str(summary_csv))
    several = len(sources) > 1
    panels = several and mask_sources == "panels"
    colors = variant_colors([*sparse["variant"], *baselines])  # the same in every panel and every figure

    plt = pyplot()
    fig, axes = plt.subplots(
        1,
        len(sources) if panels else 1,
        figsize=(4.2 * len(sources) + 1, 4.2) if panels else (6.4, 4.2),
        layout="constrained",
        sharey=True,
        squeeze=False,
    )
    axes = list(axes[0])
    plotted: dict[str, pd.DataFrame] = {}
    for index, source in enumerate(sources):
        ax = axes[index if panels else 0]
        style = {} if panels or not several else {"linestyle": SOURCE_STYLES[index % len(SOURCE_STYLES)]}
        for variant, rows in sparse_rows(with_source(table, source)).groupby("variant", sort=False):
            key = series_key(variant, source if several else None)
            plotted[key] = level_means(rows, x)
            draw_curve(ax, plotted[key], x, variant if panels else key, colors[variant], **style)
        if panels:
            ax.set_title(source, fontsize=10)
    # A dense baseline takes its tweak's colour, so each tweak's dense effect reads beside its ticket.
    for ax in axes:
        if not dense.empty:
            plotted["dense"] = draw_dense(ax, dense, "dense", x=x, band=False)
        for name in baselines:
            plotted[name] = draw_dense(ax, table[table["variant"] == name], name, colors[name], x=x, band=False)
    for ax, source in zip(axes, sources):
        drawn = sparse_rows(with_source(table, source)) if panels else sparse
        finish_x_axis(ax, x, drawn["sparsity_pct"], short=panels)  # panels are too narrow for the long label
    axes[0].set_ylabel("Test accuracy at best validation (%)")
    legend: dict[str, Any] = {}  # one legend for all panels: a variant has one colour everywhere
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    axes[0].legend(list(legend.values()), list(legend), fontsize=8)
    heading = figure_title("test accuracy vs sparsity, every variant", table, title)
    if panels:
        fig.suptitle(heading, fontsize=10)
    else:
        axes[0].set_title(heading, fontsize=10)
    save_figure(fig, outputs)
    return plotted
