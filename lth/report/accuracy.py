"""Accuracy figures, each drawn from a summary.csv alone: `lth plot`'s every-variant figure, the
paper's figures of one experiment (registry SummaryFigure entries) and the grids across experiments
(GridFigure entries, from results/summary.csv). Conventions besides lth/report/style.py's:
- a series is a variant expression matched to the CSV's variants by parts (lth.report.summary.parts_of),
  so `skip+swish+gradinit+ls` draws as `at+trt`; legends use the CSV's names;
- a line is the mean test accuracy (`test_acc_pct`, at the epoch of best validation) over seeds per
  level; the dense network is a black dashed line, a `dense+<tweak>` baseline dashed in its tweak's colour;
- x: `sparsity` (levels evenly spaced by log remaining weights), `nonzero_params` or
  `forward_flops_effective` of the trained network (skip branches add weights);
- a critical pair (Figure 4b) is marked by a dotted line where its curves cross for the last time
  (lth/report/tickets.py);
- mask sources: a paper figure draws the primary source's tickets with the dense rows (a grid panel its
  own experiment's), a `per_source` figure (any_mask) a panel per source (two or more); with several
  sources a series' key is `"<variant> (<source>)"` (`series_key`).
Every drawing function returns the data it plotted, so a figure can be checked without reading pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lth.errors import LthError
from lth.report.style import (
    DENSE_COLOR,
    check_outputs,
    check_x,
    describe_runs,
    draw_band,
    figure_title,
    finish_x_axis,
    model_text,
    pyplot,
    remaining_percent,
    save_figure,
    variant_colors,
    x_column,
)
from lth.report.summary import (
    MASK_SOURCE,
    SUMMARY_COLUMNS,
    TITLE_COLUMNS,
    check_one_experiment,
    dense_baselines,
    find_variant,
    level_means,
    parts_of,
    primary_rows,
    read_summary,
    sources_of,
    sparse_rows,
    with_source,
)
from lth.report.tickets import curves_crossing

if TYPE_CHECKING:
    import pandas as pd

    from lth.report.registry import GridFigure, SummaryFigure

# `lth plot` with several mask sources: a panel per source, or one axes with a curve per (variant, source).
MASK_SOURCE_LAYOUTS = ("panels", "curves")
# Line styles of the sources in one axes ("curves"); never "--", which marks the dense lines.
SOURCE_STYLES = ("-", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 4)), (0, (8, 2)))
GRID_SERIES = ("lth", "at+trt")  # (vanilla, tweaked): every grid panel compares these
GRID_COLUMNS = ("experiment", "model", "dataset")  # results/summary.csv's, besides SUMMARY_COLUMNS
ACCURACY_LABEL = "Test accuracy at best validation (%)"


def series_key(label: str, source: str | None) -> str:
    """A series' key (and curve label) where several mask sources are drawn: `<label> (<source>)`;
    the bare label for None (one source)."""
    return label if source is None else f"{label} ({source})"


def check_mask_source_layout(layout: str) -> None:
    """`layout` is one of MASK_SOURCE_LAYOUTS, or an LthError listing them."""
    if layout not in MASK_SOURCE_LAYOUTS:
        raise LthError(f"--mask-sources: {layout!r} is not allowed; choose one of: {', '.join(MASK_SOURCE_LAYOUTS)}")


def position(stats: pd.DataFrame, x: str) -> Any:
    """Where level_means' rows go on the x axis: remaining % for `sparsity` (see sparsity_axis), else x."""
    return remaining_percent(stats["sparsity_pct"]) if x == "sparsity" else stats["x"]


def draw_curve(ax: Any, stats: pd.DataFrame, x: str, label: str, color: Any = None, **style: Any) -> Any:
    """A series' mean line from level_means' frame, with a +-std band only when more than one seed
    exists; returns the line's colour (the next of the cycle when `color` is None)."""
    at = position(stats, x)
    (line,) = ax.plot(at, stats["mean"], marker="o", markersize=3, label=label, color=color, **style)
    draw_band(ax, at, stats, line.get_color())
    return line.get_color()


def draw_dense(
    ax: Any, rows: pd.DataFrame, label: str, color: Any = DENSE_COLOR, x: str = "sparsity", band: bool = True
) -> pd.DataFrame:
    """A dense network's rows (one variant, level 0) as a dashed horizontal line at its mean accuracy,
    labelled with its test accuracy, mean +- std in %, and (`band`) a +-std band only when more than
    one seed exists.
    Returns its level_means frame: one row, level 0."""
    stats = level_means(rows.assign(level=0), x_column(x))
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


PANELS_PER_ROW = 4


def _source_axes(count: int) -> tuple[Any, list[Any]]:
    """A figure of `count` panels (one per mask source), PANELS_PER_ROW to a row on a shared y axis; one
    is the usual size. The grid's unused cells are removed."""
    if count == 1:
        fig, axes = pyplot().subplots(1, 1, figsize=(6.4, 4.2), layout="constrained", squeeze=False)
        return fig, [axes[0][0]]
    columns = min(count, PANELS_PER_ROW)
    rows = -(-count // columns)
    fig, axes = pyplot().subplots(
        rows, columns, figsize=(4.2 * columns + 1, 4.2 * rows), layout="constrained", sharey=True, squeeze=False
    )
    cells = [ax for row in axes for ax in row]
    for ax in cells[count:]:
        ax.remove()
    return fig, cells[:count]


def _title(fig: Any, axes: Sequence[Any], heading: str) -> None:
    """The title above every panel, or the one axes' title."""
    (fig.suptitle if len(axes) > 1 else axes[0].set_title)(heading, fontsize=10)


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

    fig, axes = _source_axes(len(sources) if panels else 1)
    plotted: dict[str, pd.DataFrame] = {}
    for index, source in enumerate(sources):
        ax = axes[index if panels else 0]
        style = {} if panels or not several else {"linestyle": SOURCE_STYLES[index % len(SOURCE_STYLES)]}
        for variant, rows in sparse_rows(with_source(table, source)).groupby("variant", sort=False):
            key = series_key(variant, source if several else None)
            plotted[key] = level_means(rows, x_column(x))
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
    for ax in axes[::PANELS_PER_ROW]:  # the first panel of each row
        ax.set_ylabel(ACCURACY_LABEL)
    legend: dict[str, Any] = {}  # one legend for all panels: a variant has one colour everywhere
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    axes[0].legend(list(legend.values()), list(legend), fontsize=8)
    _title(fig, axes, figure_title("test accuracy vs sparsity, every variant", table, title))
    save_figure(fig, outputs)
    return plotted


# ---------------------------------------------------------------------------------------------
# The paper's figures


def _need(spec: SummaryFigure) -> str:
    """The variants a figure needs, in words: `lth and skip`, `lth plus 1 of swish, mish`."""
    others = [expression for expression in spec.series if expression not in spec.required]
    extra = spec.min_series - len(spec.required)
    return " and ".join(spec.required) + (f" plus {extra} of {', '.join(others)}" if extra > 0 else "")


def missing_variants(spec: SummaryFigure, names: Sequence[str], source: str) -> str | None:
    """Why `names` cannot give the figure's series (None when they can): what it needs and lacks."""
    present = [expression for expression in spec.series if find_variant(expression, names)]
    lacking = [expression for expression in spec.required if expression not in present]
    if not lacking and len(present) >= spec.min_series:
        return None
    if not lacking:  # the required ones are there, too few of the optional ones
        lacking = [" or ".join(e for e in spec.series if e not in present)]
    return f"needs variants {_need(spec)}; the {source} has {', '.join(names) or 'none'}, not {', '.join(lacking)}"


def too_few_sources(sources: Sequence[str | None], where: str) -> str | None:
    """Why a per-source figure cannot be drawn from these mask sources (None when it can)."""
    labels = [source for source in sources if source is not None]
    if len(labels) >= 2:
        return None
    return (
        f"needs at least 2 mask sources; the {where} has "
        f"{', '.join(labels) if labels else f'one, without a label (no column {MASK_SOURCE!r})'}"
    )


def has_grid_series(variants: Sequence[str]) -> bool:
    """Whether `variants` hold both grid series (GRID_SERIES), matched by parts."""
    return all(find_variant(expression, variants) for expression in GRID_SERIES)


def _check_method(spec: SummaryFigure, table: pd.DataFrame, csv: str | Path) -> None:
    """A figure for one prune method refuses tickets of another, where the CSV says (`prune_method`;
    dense rows, which no mask made, are not asked)."""
    if spec.method is None or "prune_method" not in table:
        return
    methods = sorted(set(sparse_rows(table)["prune_method"].dropna().astype(str)))
    if methods and methods != [spec.method]:
        raise LthError(
            f"{csv}: {spec.name} is drawn for prune method {spec.method}; the CSV's rows are "
            f"{', '.join(methods)} (column 'prune_method')"
        )


def _at_sparsity(curve: pd.DataFrame, sparsity_pct: float) -> float:
    """Where `sparsity_pct` (between two levels of `curve`) goes on the curve's x, interpolating log x on
    log remaining weights as the critical sparsity itself is interpolated."""
    import numpy as np

    ordered = curve.sort_values("sparsity_pct")
    return float(
        np.exp(
            np.interp(
                np.log1p(-sparsity_pct / 100),
                np.log1p(-ordered["sparsity_pct"].to_numpy() / 100)[::-1],
                np.log(ordered["x"].to_numpy(dtype=float))[::-1],
            )
        )
    )


def _critical(ax: Any, a: pd.DataFrame, b: pd.DataFrame, names: tuple[str, str], x: str) -> pd.DataFrame | None:
    """Mark where curves a and b cross for the last time; its one-row frame, None when they never cross."""
    import pandas as pd

    point = curves_crossing(a, b)
    if point is None:
        return None
    sparsity, accuracy = point
    at = sparsity if x == "sparsity" else _at_sparsity(a, sparsity)
    ax.axvline(
        remaining_percent(sparsity) if x == "sparsity" else at,
        color="gray",
        linestyle=":",
        linewidth=1.2,
        label=f"critical sparsity {sparsity:.1f}%",
    )
    return pd.DataFrame(
        {
            "variant": [names[0]],
            "reference": [names[1]],
            "level": [float("nan")],
            "sparsity_pct": [sparsity],
            "x": [at],
            "mean": [accuracy],
        }
    )


def _draw_series(
    ax: Any, spec: SummaryFigure, rows: pd.DataFrame, source: str | None, x: str, short: bool
) -> dict[str, pd.DataFrame]:
    """Figure `spec`'s series, dense lines and critical marker on `ax` from `rows` (the dense rows and one
    mask source's tickets); what it drew, by series_key(label, source) (dense lines by their names)."""
    sparse = sparse_rows(rows)
    names = list(dict.fromkeys(sparse["variant"]))
    found = {expression: find_variant(expression, names) for expression in spec.series}
    baselines = [
        next((b for b in dense_baselines(rows) if parts_of(b.removeprefix("dense+")) == parts_of(tweak)), None)
        for tweak in spec.dense
    ]
    colors = variant_colors([*names, "dense", *filter(None, baselines)])  # one colour per variant, every figure
    plotted: dict[str, pd.DataFrame] = {}
    for expression, variant in found.items():
        if variant is not None:
            plotted[series_key(variant, source)] = level_means(sparse[sparse["variant"] == variant], x_column(x))
            draw_curve(ax, plotted[series_key(variant, source)], x, variant, colors[variant])
    dense = rows[rows["variant"] == "dense"]
    if not dense.empty:
        plotted["dense"] = draw_dense(ax, dense, "dense", colors["dense"], x=x)
    for baseline in filter(None, baselines):
        plotted[baseline] = draw_dense(ax, rows[rows["variant"] == baseline], baseline, colors[baseline], x=x)
    if spec.critical:
        a, b = (found[expression] for expression in spec.critical)
        if a is not None and b is not None:
            critical = _critical(ax, plotted[series_key(a, source)], plotted[series_key(b, source)], (a, b), x)
            if critical is not None:
                plotted[series_key("critical", source)] = critical
    finish_x_axis(ax, x, sparse["sparsity_pct"], short=short)
    ax.legend(fontsize=8)
    return plotted


def draw_summary(
    spec: SummaryFigure,
    summary_csv: str | Path,
    outputs: Sequence[str | Path],
    *,
    x: str = "sparsity",
    title: str | None = None,
) -> dict[str, pd.DataFrame]:
    """Figure `spec` from one experiment's summary.csv into every output (the
    suffix picks the format: .png, .pdf, .svg).

    Returns what was drawn: each series' label (the CSV's variant name; `dense`; each drawn
    `dense+<tweak>`) -> a frame with columns level, sparsity_pct, x (mean of x axis `x`'s column),
    mean and std (ddof 1, NaN with one seed) of the test accuracy in %, and seeds; dense lines are
    one row at level 0. For a figure with a critical pair whose curves cross, also "critical" -> one
    row: variant, reference, level (NaN), sparsity_pct, x (its position in `x` units) and mean (the
    first variant's interpolated accuracy there, lth.report.tickets.curves_crossing).
    Titled `<title>: <heading>` over describe_runs' line (model, data, epochs, seeds).
    Only the primary mask source's tickets are drawn, except by a `per_source` figure (any_mask): a
    panel per source, and keys `"<label> (<source>)"` (series_key) for its series and
    critical markers; the dense lines, the same in every panel, keep their names.
    """
    name = spec.name
    check_x(x)
    outputs = check_outputs(name, outputs)
    table = read_summary(summary_csv, (*SUMMARY_COLUMNS, *TITLE_COLUMNS, x_column(x)))
    check_one_experiment(table, str(summary_csv))
    sources = sources_of(table, str(summary_csv))
    if spec.per_source:
        reason = too_few_sources(sources, "CSV")
        if reason:
            raise LthError(f"{summary_csv}: {name}: {reason}")
    panels = {source: with_source(table, source) for source in (sources if spec.per_source else sources[:1])}
    for source, rows in panels.items():  # every panel checked before anything is drawn
        _check_method(spec, rows, summary_csv)
        reason = missing_variants(
            spec,
            list(dict.fromkeys(sparse_rows(rows)["variant"])),
            f"mask source {source} of the CSV" if spec.per_source else "CSV",
        )
        if reason:
            raise LthError(f"{summary_csv}: {name}: {reason}")

    fig, axes = _source_axes(len(panels))
    plotted: dict[str, pd.DataFrame] = {}
    for ax, (source, rows) in zip(axes, panels.items()):
        short = spec.per_source  # panels are too narrow for the long x label
        plotted.update(_draw_series(ax, spec, rows, source if spec.per_source else None, x, short))
        if spec.per_source:
            ax.set_title(source, fontsize=10)
    for ax in axes[::PANELS_PER_ROW]:  # the first panel of each row
        ax.set_ylabel(ACCURACY_LABEL)
    _title(fig, axes, figure_title(spec.heading, table, title))
    save_figure(fig, outputs)
    return plotted


def _panels(table: pd.DataFrame) -> list[tuple[str, tuple[str, str], pd.DataFrame, tuple[str, str]]]:
    """(experiment, panel key, its rows, (vanilla, tweaked) names) of every experiment with both grid
    series, in order of appearance. The key is (model, dataset); where experiments share a model and
    dataset (an IMP and an OMP experiment, say) each gets `dataset (experiment)` instead, a row of its own."""
    panels = []
    for experiment, rows in table.groupby("experiment", sort=False):
        rows = primary_rows(rows, f"experiment {experiment}")  # a grid compares tickets of one mask source
        names = list(dict.fromkeys(sparse_rows(rows)["variant"]))
        if has_grid_series(names):
            vanilla, tweaked = (find_variant(expression, names) for expression in GRID_SERIES)
            key = (str(rows["model"].iloc[0]), str(rows["dataset"].iloc[0]))
            panels.append((str(experiment), key, rows, (vanilla, tweaked)))
    keys = [key for _, key, _, _ in panels]
    return [
        (experiment, (key[0], f"{key[1]} ({experiment})") if keys.count(key) > 1 else key, rows, found)
        for experiment, key, rows, found in panels
    ]


def _gain(sparse: pd.DataFrame, vanilla: str, tweaked: str, x: str) -> pd.DataFrame:
    """level_means of the per-seed gain tweaked - vanilla (seeds and levels both have), in percentage
    points; sparsity and x are the tweaked variant's (its skip branches add weights)."""
    a, b = sparse[sparse["variant"] == tweaked], sparse[sparse["variant"] == vanilla]
    paired = a.merge(b[["seed", "level", "test_acc_pct"]], on=["seed", "level"], suffixes=("", "_vanilla"))
    return level_means(paired.assign(test_acc_pct=paired["test_acc_pct"] - paired["test_acc_pct_vanilla"]), x_column(x))


def draw_grid(
    spec: GridFigure,
    summary_csv: str | Path,
    outputs: Sequence[str | Path],
    *,
    x: str = "sparsity",
    title: str | None = None,
) -> dict[tuple[str, str], dict[str, pd.DataFrame]]:
    """Grid `spec` from results/summary.csv (every experiment's rows, with columns
    experiment, model and dataset): one panel per experiment that has both lth and at+trt (matched by
    parts), rows by dataset and columns by model, each titled `<model> (width W) on <dataset>`; the
    figure by its heading and the seeds and epochs.

    fig6_grid draws both variants' accuracy and the dense line; fig7_grid the gain of at+trt over lth
    in accuracy points: at each level the mean over seeds of the per-seed differences, its band (with
    more than one seed) their standard deviation, and a zero line.
    Returns (model, dataset) -> that panel's data as draw_summary's: fig6_grid the two variants
    (by the CSV's names) and `dense`, fig7_grid one series "gain". Experiments sharing a model and
    dataset get the key and title (model, "dataset (experiment)") and a row each.
    """
    import pandas as pd

    name = spec.name
    check_x(x)
    outputs = check_outputs(name, outputs)
    table = read_summary(summary_csv, (*GRID_COLUMNS, *SUMMARY_COLUMNS, *TITLE_COLUMNS, x_column(x)))
    panels = _panels(table)
    if not panels:
        raise LthError(
            f"{summary_csv}: {name} needs an experiment with variants {' and '.join(GRID_SERIES)}; "
            f"none of {', '.join(map(str, table['experiment'].unique()))} has both"
        )
    datasets = list(dict.fromkeys(key[1] for _, key, _, _ in panels))
    models = list(dict.fromkeys(key[0] for _, key, _, _ in panels))

    plt = pyplot()
    fig, axes = plt.subplots(
        len(datasets),
        len(models),
        figsize=(3.6 * len(models), 3.0 * len(datasets)),
        layout="constrained",
        squeeze=False,
    )
    plotted: dict[tuple[str, str], dict[str, pd.DataFrame]] = {}
    for _, key, rows, (vanilla, tweaked) in panels:
        ax = axes[datasets.index(key[1])][models.index(key[0])]
        sparse = sparse_rows(rows)
        data: dict[str, pd.DataFrame] = {}
        colors = variant_colors([vanilla, tweaked, "dense"])
        if spec.quantity == "accuracy":
            for variant in (vanilla, tweaked):
                data[variant] = level_means(sparse[sparse["variant"] == variant], x_column(x))
                draw_curve(ax, data[variant], x, variant, colors[variant])
            dense = rows[rows["variant"] == "dense"]
            if not dense.empty:
                data["dense"] = draw_dense(ax, dense, "dense", colors["dense"], x=x)
            ax.set_ylabel(ACCURACY_LABEL, fontsize=8)
        else:
            data["gain"] = _gain(sparse, vanilla, tweaked, x)
            draw_curve(ax, data["gain"], x, f"{tweaked} − {vanilla}", colors[tweaked])
            ax.axhline(0, color="black", linewidth=0.8)
            ax.set_ylabel("Gain over lth (percentage points)", fontsize=8)
        finish_x_axis(ax, x, sparse["sparsity_pct"], short=True)
        ax.set_title(f"{model_text(rows)} on {key[1]}", fontsize=9)
        ax.legend(fontsize=6)
        plotted[key] = data
    used = {(datasets.index(key[1]), models.index(key[0])) for _, key, _, _ in panels}
    for r, row in enumerate(axes):
        for c, ax in enumerate(row):
            if (r, c) not in used:
                ax.set_visible(False)  # this model was not run on this dataset
    heading = f"{title}: {spec.heading}" if title else spec.heading
    fig.suptitle(f"{heading}\n{describe_runs(pd.concat([rows for _, _, rows, _ in panels]), model=False)}", fontsize=10)
    save_figure(fig, outputs)
    return plotted
