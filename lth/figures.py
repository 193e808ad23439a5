"""The paper's accuracy figures, each drawn from summary.csv alone (`lth figure NAME`).

An experiment's figures (SUMMARY_FIGURES) read its summary.csv; the grids across experiments
(GRID_FIGURES) read results/summary.csv. A figure's series are variant expressions matched to the
CSV's variants by what they resolve to (lth.plots.parts_of), so a config that spells `at+trt` as
`skip+swish+gradinit+ls` gets the same figure; legends use the CSV's names. Conventions, shared
with `lth plot` (lth/plots.py):
- a line is the mean test accuracy (summary.csv's `test_acc_pct`: at the epoch of best validation
  accuracy, in %) over seeds at each level, with a band of +- one standard deviation (ddof 1) only
  when more than one seed exists;
- a variant has one colour in every figure, whatever its spelling (lth.plots.variant_colors);
- the dense network is a black dashed line (with a +-std band only with several seeds); a
  dense-with-tweak baseline (`dense+<tweak>` rows, level 0) is dashed in the colour of its tweak's
  series (the paper's Figure 1);
- the title says what the figure compares (its `heading`; `title`, the workflow's experiment name,
  before it) and, on a second line, the model, data, epochs and seeds (lth.plots.describe_runs);
  the figure's name is its file's;
- x: `sparsity` (default; levels evenly spaced by log remaining weights, as the paper draws them),
  `nonzero_params` or `forward_flops_effective` of the trained network (skip branches add weights);
- a figure's critical pair (Figure 4b) is marked by a dotted vertical line where its curves cross
  for the last time (lth/tickets.py defines the critical sparsity);
- mask sources (summary.csv's column `mask_source`, lth/plots.py): every figure draws the tickets
  of the experiment's primary source only (the first source among its sparse rows, the config's
  first; a grid panel takes its own experiment's) with the dense rows, except a figure with
  `per_source` (`any_mask`), which draws a panel per source, side by side on a shared y axis, each
  with the figure's series and the dense lines, and needs at least two sources. A summary without
  the column is one source.
Every drawing function returns the data it plotted, so a figure can be checked without reading
pixels. torch-free; pandas and matplotlib load only when drawing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lth.errors import LthError
from lth.plots import (
    MASK_SOURCE,
    SUMMARY_COLUMNS,
    TITLE_COLUMNS,
    check_one_experiment,
    check_outputs,
    check_x,
    dense_baselines,
    describe_runs,
    draw_curve,
    draw_dense,
    figure_title,
    find_variant,
    finish_x_axis,
    level_means,
    model_text,
    parts_of,
    primary_rows,
    pyplot,
    read_summary,
    remaining_percent,
    save_figure,
    series_key,
    sources_of,
    sparse_rows,
    variant_colors,
    with_source,
    x_column,
)
from lth.tickets import curves_crossing

if TYPE_CHECKING:
    import pandas as pd

PRUNE_METHODS = ("imp", "omp")


@dataclass(frozen=True)
class FigureSpec:
    """An accuracy-vs-sparsity figure of one experiment's summary.csv."""

    name: str
    series: tuple[str, ...]  # variant expressions, in drawing order (and colour order)
    required: tuple[str, ...]  # expressions that must all be present
    description: str  # one sentence: what the paper's version shows (report captions)
    heading: str  # a few words: what the figure compares (its title's first line)
    min_series: int = 2  # how many of `series` must be present
    dense: tuple[str, ...] = ()  # tweaks whose `dense+<tweak>` baseline is drawn when present
    method: str | None = None  # the prune method the figure is for (None: any)
    critical: tuple[str, str] | None = None  # a pair whose crossing is marked
    per_source: bool = False  # a panel per mask source (needs two or more), not the primary source alone

    def __post_init__(self) -> None:  # a wrong entry fails at import, not in a workflow hours later
        known = set(self.series)
        if not set(self.required) <= known or not set(self.critical or ()) <= known or self.min_series > len(known):
            raise LthError(f"{self.name}: required, critical and min_series must refer to its series")
        if self.method not in (None, *PRUNE_METHODS):
            raise LthError(f"{self.name}: method {self.method!r} is not one of {', '.join(PRUNE_METHODS)}")


@dataclass(frozen=True)
class GridSpec:
    """One panel per experiment (architecture x dataset) of results/summary.csv."""

    name: str
    quantity: str  # "accuracy": both curves and the dense line; "gain": at+trt minus lth, per seed
    description: str
    heading: str  # a few words: what the figure shows (its title's first line)


SUMMARY_FIGURES: dict[str, FigureSpec] = {
    spec.name: spec
    for spec in (
        FigureSpec(
            "fig1a_skip",
            ("lth", "skip"),
            ("lth", "skip"),
            dense=("skip",),
            heading="Fig. 1a: skip connections vs vanilla",
            description=(
                "Figure 1a: extra skip connections against the vanilla ticket; the paper finds they help sparse "
                "networks most at high sparsity, while their effect on the dense network (dashed) is small."
            ),
        ),
        FigureSpec(
            "fig1b_activations",
            ("lth", "swish", "mish"),
            ("lth",),
            dense=("swish", "mish"),
            heading="Fig. 1b: Swish and Mish vs vanilla (ReLU)",
            description=(
                "Figure 1b: Swish and Mish in place of ReLU against the vanilla ticket; smooth activations help "
                "sparse re-training more than they help the dense network (dashed)."
            ),
        ),
        FigureSpec(
            "fig1c_ls",
            ("lth", "ls"),
            ("lth", "ls"),
            dense=("ls",),
            heading="Fig. 1c: label smoothing vs vanilla",
            description=(
                "Figure 1c: label smoothing against the vanilla ticket, with its effect on the dense network dashed."
            ),
        ),
        FigureSpec(
            "fig1d_gradinit",
            ("lth", "gradinit"),
            ("lth", "gradinit"),
            dense=("gradinit",),
            heading="Fig. 1d: GradInit vs vanilla",
            description=(
                "Figure 1d: GradInit's layer-wise re-scaled initialisation against the vanilla ticket, with its effect "
                "on the dense network dashed."
            ),
        ),
        FigureSpec(
            "fig4a_at_trt",
            ("lth", "at", "trt", "at+trt"),
            ("lth",),
            heading="Fig. 4a: architecture (AT) and training-recipe (TRT) tweaks vs vanilla",
            description=(
                "Figure 4a: the architecture tweaks (AT), the training-recipe tweaks (TRT) and both against the "
                "vanilla ticket; combined they give the paper's largest gains at high sparsity."
            ),
        ),
        FigureSpec(
            "fig4b_rewinding",
            ("at+trt", "rewind"),
            ("at+trt", "rewind"),
            critical=("at+trt", "rewind"),
            heading="Fig. 4b: AT+TRT vs weight rewinding",
            description=(
                "Figure 4b: AT+TRT against weight rewinding; the dotted line marks the critical "
                "sparsity where the two curves cross, beyond which AT+TRT is the better ticket."
            ),
        ),
        FigureSpec(
            "fig8_rewinding_combos",
            ("rewind", "at+rewind", "trt+rewind", "at+trt+rewind"),
            ("rewind",),
            heading="Fig. 8: the tweaks with weight rewinding",
            description="Figure 8: the tweaks combined with weight rewinding, against rewinding alone.",
        ),
        FigureSpec(
            "fig9_ls_vs_kd",
            ("at+trt", "skip+swish+gradinit+kd"),
            ("at+trt", "skip+swish+gradinit+kd"),
            heading="Fig. 9: AT+TRT with label smoothing vs with distillation",
            description=(
                "Figure 9: AT+TRT with label smoothing against AT+TRT with knowledge distillation "
                "from the dense network as its soft labels."
            ),
        ),
        FigureSpec(
            "figA13_omp",
            ("lth", "at+trt"),
            ("lth", "at+trt"),
            method="omp",
            heading="Fig. A13: AT+TRT vs vanilla on one-shot (OMP) masks",
            description=(
                "Figure A13: vanilla against AT+TRT on one-shot magnitude pruning (OMP) masks: the tweaks help "
                "tickets drawn without iterative pruning too."
            ),
        ),
        FigureSpec(
            "any_mask",
            ("lth", "at+trt"),
            ("lth", "at+trt"),
            per_source=True,
            heading="AT+TRT vs vanilla on the masks of each mask source",
            description=(
                "The tweaks on any mask (not in the paper): vanilla against AT+TRT re-trained on the masks of each "
                "mask source (magnitude pruning, random, SNIP, GraSP, SynFlow, a user's file), one panel per source, "
                "with the dense network dashed: do the tweaks help tickets whatever made their mask?"
            ),
        ),
    )
}
GRID_FIGURES: dict[str, GridSpec] = {
    spec.name: spec
    for spec in (
        GridSpec(
            "fig6_grid",
            "accuracy",
            "Figure 6: vanilla (lth) against AT+TRT for each architecture and "
            "dataset, one panel per experiment, with the dense network dashed.",
            "Fig. 6: AT+TRT vs vanilla per architecture and dataset",
        ),
        GridSpec(
            "fig7_grid",
            "gain",
            "Figure 7: the gain of AT+TRT over vanilla (lth) in accuracy points at "
            "each level, one panel per architecture and dataset.",
            "Fig. 7: gain of AT+TRT over vanilla per architecture and dataset",
        ),
    )
}
GRID_SERIES = ("lth", "at+trt")  # (vanilla, tweaked): every grid panel compares these
GRID_COLUMNS = ("experiment", "model", "dataset")  # results/summary.csv's, besides SUMMARY_COLUMNS


def _unknown(name: str, names: Sequence[str]) -> LthError:
    return LthError(f"figure {name!r} does not exist; choose one of {', '.join(names)}")


def _need(spec: FigureSpec) -> str:
    """The variants a figure needs, in words: `lth and skip`, `lth plus 1 of swish, mish`."""
    others = [expression for expression in spec.series if expression not in spec.required]
    extra = spec.min_series - len(spec.required)
    return " and ".join(spec.required) + (f" plus {extra} of {', '.join(others)}" if extra > 0 else "")


def _missing(spec: FigureSpec, names: Sequence[str], source: str) -> str | None:
    """Why `names` cannot give the figure's series (None when they can): what it needs and lacks."""
    present = [expression for expression in spec.series if find_variant(expression, names)]
    lacking = [expression for expression in spec.required if expression not in present]
    if not lacking and len(present) >= spec.min_series:
        return None
    if not lacking:  # the required ones are there, too few of the optional ones
        lacking = [" or ".join(e for e in spec.series if e not in present)]
    return f"needs variants {_need(spec)}; the {source} has {', '.join(names) or 'none'}, not {', '.join(lacking)}"


def _too_few_sources(sources: Sequence[str | None], where: str) -> str | None:
    """Why a per-source figure cannot be drawn from these mask sources (None when it can)."""
    labels = [source for source in sources if source is not None]
    if len(labels) >= 2:
        return None
    return (
        f"needs at least 2 mask sources; the {where} has "
        f"{', '.join(labels) if labels else f'one, without a label (no column {MASK_SOURCE!r})'}"
    )


def figure_status(
    name: str,
    variants: Sequence[str],
    dense_variants: Sequence[str],
    method: str,
    mask_sources: Sequence[str] = ("magnitude",),
) -> str | None:
    """None when figure `name` (SUMMARY_FIGURES) can be drawn from an experiment with these config
    variants, prune method (its primary mask source's) and mask sources (their labels, in order), else
    a one-line reason, e.g. "fig1a_skip: needs variants lth and skip; the config has lth, rewind, not
    skip". Dense baselines (`dense_variants`, tweak names) are drawn when present and never required;
    only a `per_source` figure (any_mask) asks for the mask sources. Cheap and torch-free: the
    workflow asks at parse time."""
    if name not in SUMMARY_FIGURES:
        raise _unknown(name, list(SUMMARY_FIGURES))
    spec = SUMMARY_FIGURES[name]
    if spec.method is not None and method != spec.method:
        return f"{name}: drawn for experiments with prune.method {spec.method}; this one uses {method}"
    reason = _too_few_sources(mask_sources, "config") if spec.per_source else None
    if reason:
        return f"{name}: {reason}"
    reason = _missing(spec, variants, "config")
    return f"{name}: {reason}" if reason else None


def _usable(variants: Sequence[str]) -> bool:
    return all(find_variant(expression, variants) for expression in GRID_SERIES)


def grid_status(rows: Sequence[tuple[str, str, str, Sequence[str]]]) -> str | None:
    """None when the grids (GRID_FIGURES) can be drawn from experiments given as (experiment, model,
    dataset, variants), else why not: they need at least one experiment with both lth and at+trt."""
    if not any(_usable(variants) for _, _, _, variants in rows):
        return (
            f"needs an experiment with variants {' and '.join(GRID_SERIES)}; none of the "
            f"{len(rows)} experiment{'s' if len(rows) != 1 else ''} ({', '.join(r[0] for r in rows)}) has both"
        )
    return None


# ---------------------------------------------------------------------------------------------
# Drawing


def _check_method(spec: FigureSpec, table: pd.DataFrame, csv: str | Path) -> None:
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
    ax: Any, spec: FigureSpec, rows: pd.DataFrame, source: str | None, x: str, short: bool
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
            plotted[series_key(variant, source)] = level_means(sparse[sparse["variant"] == variant], x)
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


def draw_summary_figure(
    name: str, summary_csv: str | Path, outputs: Sequence[str | Path], *, x: str = "sparsity", title: str | None = None
) -> dict[str, pd.DataFrame]:
    """Figure `name` of SUMMARY_FIGURES from one experiment's summary.csv into every output (the
    suffix picks the format: .png, .pdf, .svg).

    Returns what was drawn: each series' label (the CSV's variant name; `dense`; each drawn
    `dense+<tweak>`) -> a frame with columns level, sparsity_pct, x (mean of x axis `x`'s column),
    mean and std (ddof 1, NaN with one seed) of the test accuracy in %, and seeds; dense lines are
    one row at level 0. For a figure with a critical pair whose curves cross, also "critical" -> one
    row: variant, reference, level (NaN), sparsity_pct, x (its position in `x` units) and mean (the
    first variant's interpolated accuracy there, lth.tickets.curves_crossing).
    Titled `<title>: <heading>` over describe_runs' line (model, data, epochs, seeds).
    Only the primary mask source's tickets are drawn, except by a `per_source` figure (any_mask): a
    panel per source, and keys `"<label> (<source>)"` (lth.plots.series_key) for its series and
    critical markers; the dense lines, the same in every panel, keep their names.
    """
    if name not in SUMMARY_FIGURES:
        raise _unknown(name, list(SUMMARY_FIGURES) + [f"(grids, draw_grid_figure: {', '.join(GRID_FIGURES)})"])
    spec = SUMMARY_FIGURES[name]
    check_x(x)
    outputs = check_outputs(name, outputs)
    table = read_summary(summary_csv, (*SUMMARY_COLUMNS, *TITLE_COLUMNS, x_column(x)))
    check_one_experiment(table, str(summary_csv))
    sources = sources_of(table, str(summary_csv))
    if spec.per_source:
        reason = _too_few_sources(sources, "CSV")
        if reason:
            raise LthError(f"{summary_csv}: {name}: {reason}")
    panels = {source: with_source(table, source) for source in (sources if spec.per_source else sources[:1])}
    for source, rows in panels.items():  # every panel checked before anything is drawn
        _check_method(spec, rows, summary_csv)
        reason = _missing(
            spec,
            list(dict.fromkeys(sparse_rows(rows)["variant"])),
            f"mask source {source} of the CSV" if spec.per_source else "CSV",
        )
        if reason:
            raise LthError(f"{summary_csv}: {name}: {reason}")

    plt = pyplot()
    if spec.per_source:
        fig, axes = plt.subplots(
            1, len(panels), figsize=(4.2 * len(panels) + 1, 4.2), layout="constrained", sharey=True, squeeze=False
        )
    else:
        fig, axes = plt.subplots(figsize=(6.4, 4.2), layout="constrained", squeeze=False)
    plotted: dict[str, pd.DataFrame] = {}
    for ax, (source, rows) in zip(axes[0], panels.items()):
        short = spec.per_source  # panels are too narrow for the long x label
        plotted.update(_draw_series(ax, spec, rows, source if spec.per_source else None, x, short))
        if spec.per_source:
            ax.set_title(source, fontsize=10)
    axes[0][0].set_ylabel("Test accuracy at best validation (%)")
    heading = figure_title(spec.heading, table, title)
    if spec.per_source:
        fig.suptitle(heading, fontsize=10)
    else:
        axes[0][0].set_title(heading, fontsize=10)
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
        if _usable(names):
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
    return level_means(paired.assign(test_acc_pct=paired["test_acc_pct"] - paired["test_acc_pct_vanilla"]), x)


def draw_grid_figure(
    name: str, summary_csv: str | Path, outputs: Sequence[str | Path], *, x: str = "sparsity", title: str | None = None
) -> dict[tuple[str, str], dict[str, pd.DataFrame]]:
    """Grid `name` of GRID_FIGURES from results/summary.csv (every experiment's rows, with columns
    experiment, model and dataset): one panel per experiment that has both lth and at+trt (matched by
    parts), rows by dataset and columns by model, each titled `<model> (width W) on <dataset>`; the
    figure by its heading and the seeds and epochs.

    fig6_grid draws both variants' accuracy and the dense line; fig7_grid the gain of at+trt over lth
    in accuracy points: at each level the mean over seeds of the per-seed differences, its band (with
    more than one seed) their standard deviation, and a zero line.
    Returns (model, dataset) -> that panel's data as draw_summary_figure's: fig6_grid the two variants
    (by the CSV's names) and `dense`, fig7_grid one series "gain". Experiments sharing a model and
    dataset get the key and title (model, "dataset (experiment)") and a row each.
    """
    import pandas as pd

    if name not in GRID_FIGURES:
        raise _unknown(
            name,
            list(GRID_FIGURES) + [f"(one experiment's figures, draw_summary_figure: {', '.join(SUMMARY_FIGURES)})"],
        )
    spec = GRID_FIGURES[name]
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
                data[variant] = level_means(sparse[sparse["variant"] == variant], x)
                draw_curve(ax, data[variant], x, variant, colors[variant])
            dense = rows[rows["variant"] == "dense"]
            if not dense.empty:
                data["dense"] = draw_dense(ax, dense, "dense", colors["dense"], x=x)
            ax.set_ylabel("Test accuracy at best validation (%)", fontsize=8)
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


def draw(
    name: str, csv: str | Path, outputs: Sequence[str | Path], *, x: str = "sparsity", title: str | None = None
) -> Any:
    """An experiment's figure (SUMMARY_FIGURES) or a grid (GRID_FIGURES) by name; what it plotted."""
    if name in GRID_FIGURES:
        return draw_grid_figure(name, csv, outputs, x=x, title=title)
    if name in SUMMARY_FIGURES:
        return draw_summary_figure(name, csv, outputs, x=x, title=title)
    raise _unknown(name, [*SUMMARY_FIGURES, *GRID_FIGURES])
