"""The paper's analysis figures and tables, each drawn from one collected CSV alone (`lth figure NAME`).

Every function reads only its CSV (the long-form files `lth analyze collect` writes into
`results/<experiment>/analysis/`, whose columns lth/report/collect.py defines) and writes every
given output atomically; the format follows each path's suffix (.png, .pdf, .svg; the table also
.csv). Nothing is read from a run, so a figure can be rebuilt, restyled or re-titled anywhere.

Shared conventions
- Rows: one per (variant, level) pair, variant `dense` (level 0, sparsity 0) first, then the
  variants in the CSV's order, levels ascending; the sparsity shown is the pair's mean (it is the
  same for every seed: global magnitude pruning keeps the same count).
- Seeds: a line is the mean over seeds, with a band of +- one standard deviation (ddof 1) whenever
  more than one seed exists. Landscape panels show one grid, the first (lowest) seed's, and say so.
- Colours: a variant's colour is its colour in every figure (lth.report.style.variant_colors), in shades
  from light to full for its levels where a figure draws a line per (variant, level); dense is black.
- Titles: what the figure shows (`title`, e.g. the experiment, before it), then the model, data,
  epochs and seeds (lth.report.style.describe_runs, from the CSV's `model, width, dataset, train_epochs`)
  and the epoch of the weights shown; the figure's name is its file's.
- Epochs: the `epoch` column is the training epoch of the weights analysed. A figure other than
  figA12 (whose x axis is the epoch) shows one epoch per run: `epoch=E` keeps the rows of epoch E,
  `final` (the default) keeps each run's largest epoch in the CSV.
- Bad input (a missing column, an empty CSV, an unparsable or out-of-range value, an epoch that
  selects nothing, a duplicated or incomplete grid) is an LthError naming the file, the column or
  value and what is allowed; a figure is never drawn from nothing.

Registry: lth/report/registry.py's AnalysisFigure entries give each function its name, the columns
it reads, its CSV and its description; lth/analysis/registry.py names the files (`fig2_hessian.png`,
`fig5_landscape_epoch5.pdf`, ...).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lth.errors import LthError
from lth.io import atomic_write_text, check_sealed
from lth.report.collect import ID_COLUMNS, RUN_COLUMNS
from lth.report.html import html_page
from lth.report.style import (
    DENSE_COLOR,
    check_outputs,
    draw_band,
    figure_title,
    finish_x_axis,
    pyplot,
    remaining_percent,
    save_figure,
    variant_colors,
)

if TYPE_CHECKING:  # imported inside the functions: `lth --help` must not pay for pandas and numpy
    import numpy as np
    import pandas as pd

    from lth.report.registry import AnalysisFigure

Epoch = int | str | None  # a training epoch, "final", or None (= "final")

# How each column is parsed; anything not listed is a float (NaN where empty).
_INTEGER = {
    *("seed", "level", "epoch", "width", "train_epochs"),
    *("rank", "index", "i", "j", "iterations", "sample", "near_zero", "total"),
}
_TEXT = {"variant", "run", "stage", "model", "dataset"}
_UNIT = {"sparsity_pct": "a percentage in [0, 100)", "near_zero_pct": "a percentage in [0, 100]"}
# Never empty: they say what a row is (or where in a grid it lies, or what was trained).
_REQUIRED = {*ID_COLUMNS, *RUN_COLUMNS, "stage", "threshold", "rank", "index", "i", "j"}

# ---------------------------------------------------------------------------------------------
# Input


def _fail_value(csv: Path, column: str, frame: pd.DataFrame, bad: pd.Series, allowed: str) -> None:
    first = bad[bad].index[0]
    # pandas' index is the data row; +2 for the header line and 1-based numbering, as an editor shows it
    raise LthError(
        f"{csv}: column {column!r} holds {frame.at[first, column]!r} at line {first + 2}; it must be {allowed}"
    )


def figure(name: str) -> AnalysisFigure:
    """The registry's entry of analysis figure `name`: what it reads and writes."""
    from lth.report.registry import ANALYSIS_FIGURES  # the registry imports this module

    return ANALYSIS_FIGURES[name]


def _load(csv: Path, name: str) -> pd.DataFrame:
    """The CSV of figure `name`, with its required columns present and parsed."""
    import pandas as pd

    csv = Path(csv)
    columns = figure(name).columns
    fix = f"give the {figure(name).source} that `lth analyze collect` writes (the workflow's `analysis` target)"
    check_sealed(csv, "lth analyze collect")  # a collected CSV edited by hand is refused, not drawn
    try:
        frame = pd.read_csv(csv, dtype=str, keep_default_na=False)  # text first: values are checked below
    except pd.errors.EmptyDataError:
        raise LthError(f"{csv} is empty (not even a header line); {fix}") from None
    except (OSError, ValueError, UnicodeDecodeError) as error:  # pandas' parse errors are ValueErrors
        raise LthError(f"{csv} cannot be read as a CSV ({error}); {fix}") from None
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise LthError(f"{csv} lacks the column {missing[0]!r}; {name} needs the columns {', '.join(columns)}; {fix}")
    if frame.empty:
        raise LthError(f"{csv} has a header but no rows; {name} needs at least one; {fix}")
    frame = frame.reset_index(drop=True)
    parsed = frame.copy()
    for column in columns:
        text = frame[column].str.strip()
        if column in _REQUIRED:
            empty = text == ""
            if empty.any():
                _fail_value(csv, column, frame, empty, "set in every row")
        if column in _TEXT:
            parsed[column] = text
        elif column == "converged":
            lowered = text.str.lower()
            unset = lowered == ""
            if "eigenvalue" in frame:  # a row without a value (an epoch not tracked) needs no flag either
                unset &= frame["eigenvalue"].str.strip() == ""
            bad = ~lowered.isin(["true", "false", "1", "0"]) & ~unset
            if bad.any():
                _fail_value(csv, column, frame, bad, "True or False")
            parsed[column] = lowered.isin(["true", "1"])
        else:
            values = pd.to_numeric(text.replace("", "nan"), errors="coerce")
            bad = values.isna() & ~text.str.lower().isin(["", "nan"])
            if bad.any():
                _fail_value(csv, column, frame, bad, "a number")
            if column in _INTEGER:
                bad = values.notna() & (values != values.round())
                if bad.any():
                    _fail_value(csv, column, frame, bad, "an integer")
            if column in _UNIT:
                upper_ok = values < 100 if column == "sparsity_pct" else values <= 100
                bad = values.notna() & ~((values >= 0) & upper_ok)
                if bad.any():
                    _fail_value(csv, column, frame, bad, _UNIT[column])
            parsed[column] = values.astype(int if column in _INTEGER and values.notna().all() else float)
    return parsed


def _select_epoch(frame: pd.DataFrame, csv: Path, epoch: Epoch) -> pd.DataFrame:
    """The rows of one epoch per run: `epoch`, or each run's largest epoch for `final` / None."""
    if epoch is None or epoch == "final":
        keys = ["seed", "variant", "level", "run"]
        return frame[frame["epoch"] == frame.groupby(keys)["epoch"].transform("max")]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
        raise LthError(f"epoch filter {epoch!r} is not allowed; give a training epoch (an integer >= 1) or `final`")
    selected = frame[frame["epoch"] == epoch]
    if selected.empty:
        available = ", ".join(str(value) for value in sorted(frame["epoch"].unique()))
        raise LthError(
            f"{csv} holds no rows of epoch {epoch} (column 'epoch'); its epochs are {available}: give "
            "one of them or `final`"
        )
    return selected


def _check_unique(frame: pd.DataFrame, csv: Path, keys: Sequence[str]) -> None:
    """Two rows for one (seed, variant, level, epoch, ...) would be averaged as if they were two seeds."""
    duplicated = frame.duplicated(list(keys), keep=False)
    if duplicated.any():
        row = frame[duplicated].iloc[0]
        what = ", ".join(f"{key} {row[key]}" for key in keys)
        raise LthError(f"{csv} holds more than one row for {what}; collect each run once (`lth analyze collect`)")


def _pairs(frame: pd.DataFrame) -> list[tuple[tuple[str, int], pd.DataFrame]]:
    """(variant, level) groups in the order every figure uses: dense first, then the CSV's order."""
    variants = list(dict.fromkeys(frame["variant"]))
    variants.sort(key=lambda variant: variant != "dense")  # stable: the others keep the CSV's order
    pairs = []
    for variant in variants:
        rows = frame[frame["variant"] == variant]
        for level in sorted(rows["level"].unique()):
            pairs.append(((variant, int(level)), rows[rows["level"] == level]))
    return pairs


def _pair_label(variant: str, rows: pd.DataFrame) -> str:
    return "dense" if variant == "dense" else f"{variant}, {rows['sparsity_pct'].mean():.1f}% sparse"


def _epoch_note(frame: pd.DataFrame, epoch: Epoch) -> str:
    if isinstance(epoch, int):
        return f"weights after epoch {epoch}"
    epochs = sorted(frame["epoch"].unique())
    return (
        f"weights after the final epoch ({epochs[0]})" if len(epochs) == 1 else "weights after each run's final epoch"
    )


# ---------------------------------------------------------------------------------------------
# Drawing helpers


def _pair_colors(pairs: Sequence[tuple[str, int]]) -> dict[tuple[str, int], Any]:
    """Each variant's own colour (lth.report.style.variant_colors), mixed with white for its less sparse levels
    and full at its sparsest, black for dense: with many (variant, level) lines the variant stays
    readable from the hue and the level from the shade."""
    from matplotlib.colors import to_rgb

    variants = list(dict.fromkeys(variant for variant, _ in pairs if variant != "dense"))
    base = variant_colors(variants)
    colors: dict[tuple[str, int], Any] = {}
    for variant in variants:
        levels = sorted(level for v, level in pairs if v == variant)
        rgb = to_rgb(base[variant])
        for rank, level in enumerate(levels):
            strength = 0.35 + 0.65 * (rank + 1) / len(levels)  # the share of the colour, the rest white
            colors[(variant, level)] = tuple(1 - strength * (1 - channel) for channel in rgb)
    colors.update({pair: DENSE_COLOR for pair in pairs if pair[0] == "dense"})
    return colors


def _mean_std(rows: pd.DataFrame, key: str, value: str) -> pd.DataFrame:
    """Per `key` (level, epoch or grid index): the mean and std of `value` over seeds, the mean
    sparsity and epsilon, the number of seeds, and whether every seed's power iteration converged."""
    aggregations = {
        "mean": (value, "mean"),
        "std": (value, "std"),
        "seeds": ("seed", "nunique"),
        "sparsity_pct": ("sparsity_pct", "mean"),
    }
    for column in ("epsilon", "converged"):
        if column in rows:
            aggregations[column] = (column, "all" if column == "converged" else "mean")
    return rows.groupby(key).agg(**aggregations).reset_index()


def _eigen_series(ax: Any, x: Any, stats: pd.DataFrame, color: Any, drawn: list[float]) -> bool:
    """A line's band and a hollow marker over each point where some seed's power iteration did not
    converge; adds its y values (band included) to `drawn`. Whether any marker was drawn."""
    draw_band(ax, x, stats, color)
    drawn += list(stats["mean"])
    if stats["seeds"].max() > 1:
        drawn += list(stats["mean"] - stats["std"]) + list(stats["mean"] + stats["std"])
    off = ~stats["converged"].to_numpy(dtype=bool)
    if off.any():
        ax.plot(
            x[off],
            stats["mean"].to_numpy()[off],
            linestyle="none",
            marker="o",
            markersize=7,
            markerfacecolor="white",
            markeredgecolor=color,
            markeredgewidth=1.3,
            zorder=3,
        )
    return bool(off.any())


def _finish_eigen(ax: Any, values: Sequence[float], hollow: bool) -> None:
    """Log y axis for eigenvalues, as the paper draws them, the grid and the legend (saying what a
    hollow marker means when one is drawn). Power iteration returns the eigenvalue of largest
    magnitude, which can be negative (and a mean - std band can cross 0); a log axis would silently
    drop those, so then the axis is symmetric-log and its label says so."""
    import numpy as np
    from matplotlib.lines import Line2D

    label = "Top Hessian eigenvalue λ1"
    finite = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if finite.size and (finite > 0).all():
        ax.set_yscale("log")
        ax.set_ylabel(f"{label} (log scale)")
    else:
        nonzero = np.abs(finite[finite != 0])
        ax.set_yscale("symlog", linthresh=float(nonzero.min()) if nonzero.size else 1.0)
        ax.set_ylabel(f"{label} (symmetric log: some values are <= 0)")
    ax.grid(True, alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if hollow:
        marker = dict(linestyle="none", marker="o", markersize=7, markerfacecolor="white", markeredgecolor="gray")
        handles.append(Line2D([], [], **marker))
        labels.append("hollow: power iteration not converged\n(for at least one seed)")
    _legend(ax, handles, labels)


def _legend(ax: Any, handles: Sequence[Any] | None = None, labels: Sequence[str] | None = None) -> None:
    """Inside the axes while short; outside to the right once the lines would hide the data."""
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    if len(handles) > 8:
        ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1), ncol=1 + len(handles) // 24)
    else:
        ax.legend(handles, labels, fontsize=8)


def log_contour_levels(low: float, high: float, count: int = 15) -> np.ndarray:
    """`count` contour levels spaced evenly on a log scale from `low` to `high` (both included).

    Landscapes are drawn with log-spaced levels because loss grows by orders of magnitude away from
    the minimum: linear levels would spend every contour on the far rim and leave the basin, the
    part the paper compares, as one flat colour. A loss is positive, but can round to 0; a `low` at
    or below 0 is raised to high * 1e-6, so the levels stay finite (lower values fall below the
    first level). A flat grid (low == high) gets a +-0.1% range, so contourf still has an interval.
    """
    import numpy as np

    if not (math.isfinite(low) and math.isfinite(high)) or high <= 0 or high < low:
        raise ValueError(f"log contour levels need finite 0 < high >= low, not low={low}, high={high}")
    if count < 2:
        raise ValueError(f"log contour levels need count >= 2, not {count}")
    low = max(low, high * 1e-6)
    if low == high:
        low, high = low / 1.001, high * 1.001
    return np.geomspace(low, high, count)


# ---------------------------------------------------------------------------------------------
# The figures


def tableA1_activation_sparsity(
    csv: Path, outputs: Sequence[Path], *, epoch: Epoch = None, title: str | None = None
) -> pd.DataFrame:
    """Table A1: the % of near-zero activation outputs, for the whole network (`all`) and per stage,
    one table per threshold (the CSV's `threshold` column, ascending).

    Fractions at different thresholds are different quantities, never averaged together: the image
    draws one table per threshold, each titled with its `|a| <= t`. Rows are (variant, level)
    pairs, cells the mean over seeds of 100 * fraction, with `± std` when several seeds exist (of
    the CSV's near_zero_pct); a stage a row lacks is `–`. A .csv output gets the same pivot, one
    block of rows per threshold: columns threshold, variant, level, sparsity_pct, seeds, then per
    stage (`all` first, then the CSV's stage order) `<stage>_mean_pct` and `<stage>_std_pct`
    (empty with one seed). An .html output is a page with the image's cells as text, a table per
    threshold (what the workflow's report shows). Returns that pivot.
    """
    import pandas as pd

    name = "tableA1_activation_sparsity"
    outputs = check_outputs(name, outputs, figure(name).suffixes)
    frame = _select_epoch(_load(csv, name), Path(csv), epoch)
    _check_unique(frame, Path(csv), ["threshold", "seed", "variant", "level", "epoch", "stage"])
    thresholds = sorted(frame["threshold"].unique())
    for threshold in thresholds:
        if not (frame.loc[frame["threshold"] == threshold, "stage"] == "all").any():
            raise LthError(
                f"{csv} has no rows with stage 'all' at threshold {threshold:g} (columns 'stage', "
                "'threshold'); Table A1 needs the whole network's fraction, which `lth analyze "
                "activations` writes as stage `all` for each threshold"
            )
    stages = ["all", *dict.fromkeys(stage for stage in frame["stage"] if stage != "all")]
    records = []
    for threshold in thresholds:
        for (variant, level), rows in _pairs(frame[frame["threshold"] == threshold]):
            record: dict[str, Any] = {
                "threshold": threshold,
                "variant": variant,
                "level": level,
                "sparsity_pct": rows["sparsity_pct"].mean(),
                "seeds": rows["seed"].nunique(),
            }
            for stage in stages:
                values = rows.loc[rows["stage"] == stage, "near_zero_pct"]
                record[f"{stage}_mean_pct"] = values.mean() if len(values) else float("nan")
                record[f"{stage}_std_pct"] = values.std() if len(values) > 1 else float("nan")
            records.append(record)
    table = pd.DataFrame(records)
    listed = ", ".join(f"{threshold:g}" for threshold in thresholds)

    several = table["seeds"].max() > 1

    def shown(value: float) -> str:
        # Below 1%, two significant digits: Swish's fractions (the paper's 0.16-0.39%) would all read 0.2.
        return f"{value:.2g}" if 0 < abs(value) < 1 else f"{value:.1f}"

    def cell(mean: float, std: float) -> str:
        if not math.isfinite(mean):
            return "–"
        return f"{shown(mean)} ± {shown(std)}" if several and math.isfinite(std) else shown(mean)

    header = ["variant", "level", "sparsity (%)", *stages]
    bodies = [
        [
            [
                row["variant"],
                str(row["level"]),
                f"{row['sparsity_pct']:.1f}",
                *(cell(row[f"{stage}_mean_pct"], row[f"{stage}_std_pct"]) for stage in stages),
            ]
            for _, row in table[table["threshold"] == threshold].iterrows()
        ]
        for threshold in thresholds
    ]
    what = (
        f"% of activation outputs with |a| <= {listed}"
        if len(thresholds) == 1
        else f"% of activation outputs with |a| <= t, one table per threshold t ({listed})"
    )
    heading = figure_title(f"Table A1: {what}", frame, title, _epoch_note(frame, epoch))
    # The page (.html) holds the image's cells as text, a table per threshold.
    page = html_page(
        heading.replace("\n", ". "),
        [(f"|a| <= {threshold:g}", header, body) for threshold, body in zip(thresholds, bodies)],
        f"Cells: mean{' ± std' if several else ''} over seeds of the % of near-zero activation outputs, "
        "whole network (all) and per stage; – where a row lacks the stage.",
    )

    fig = crop = None
    if any(output.suffix.lower() not in (".csv", ".html") for output in outputs):
        plt = pyplot()
        width = 1.0 * (len(header) + 1) + (0.6 * len(stages) if several else 0)
        # Each table in its own axes, placed in inches: a cell is ~0.17 in high whatever the axes'
        # size, so the axes are as high as their table, with room above for the titles.
        heights = [0.17 * (len(body) + 1) for body in bodies]
        top, gap = 0.9, 0.4  # the heading; the next table's own title
        total = top + sum(heights) + gap * (len(bodies) - 1) + 0.1
        fig = plt.figure(figsize=(width, total))
        axes, y = [], total - top
        for height in heights:
            axes.append(fig.add_axes((0.02, (y - height) / total, 0.96, height / total)))
            y -= height + gap
        drawn, titles = [], []
        for ax, threshold, body in zip(axes, thresholds, bodies):
            ax.axis("off")
            rendered = ax.table(cellText=body, colLabels=header, loc="upper center", cellLoc="center")
            rendered.auto_set_font_size(False)
            rendered.set_fontsize(8)
            rendered.auto_set_column_width(list(range(len(header))))
            # One threshold: the heading is the table's title; several: the first table's title
            # carries it, and every table says its own threshold.
            own = f"|a| <= {threshold:g}"
            first = ax is axes[0]
            ax.set_title(heading if len(thresholds) == 1 else (f"{heading}\n\n{own}" if first else own), fontsize=9)
            drawn.append(rendered)
            titles.append(ax.title)
        # bbox_inches="tight" would keep the whole (invisible) axes: crop to the cells and the titles.
        from matplotlib.transforms import Bbox

        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        extents = [cell_.get_window_extent(renderer) for rendered in drawn for cell_ in rendered.get_celld().values()]
        crop = (
            Bbox.union([*extents, *(text.get_window_extent(renderer) for text in titles)])
            .transformed(fig.dpi_scale_trans.inverted())
            .padded(0.15)
        )
    pages = [output for output in outputs if output.suffix.lower() == ".html"]
    save_figure(fig, [output for output in outputs if output not in pages], table, crop=crop)
    for output in pages:
        atomic_write_text(output, page)
    return table


def fig2_hessian(csv: Path, outputs: Sequence[Path], *, epoch: Epoch = None, title: str | None = None) -> None:
    """Figure 2: the top Hessian eigenvalue (rank 1) against sparsity, one line per variant.

    The x axis is lth.report.style's sparsity axis (log in weights remaining, sparser to the right), the y
    axis logarithmic. The dense network is a dashed horizontal line (with its band over seeds). A
    hollow marker marks a point where the power iteration did not converge for some seed, and the
    legend says so: non-convergence is shown, never hidden.
    """
    name = "fig2_hessian"
    outputs = check_outputs(name, outputs, figure(name).suffixes)
    frame = _select_epoch(_load(csv, name), Path(csv), epoch)
    frame = frame[frame["rank"] == 1]
    if frame.empty:
        raise LthError(f"{csv} has no rows of rank 1 (column 'rank'); Figure 2 plots the top eigenvalue, rank 1")
    _check_unique(frame, Path(csv), ["seed", "variant", "level", "epoch", "rank"])
    dense, sparse = frame[frame["variant"] == "dense"], frame[frame["variant"] != "dense"]
    if sparse.empty:
        raise LthError(
            f"{csv} has only dense rows (column 'variant'); Figure 2 plots eigenvalue against sparsity, "
            "so it needs the rows of at least one pruned variant"
        )
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    drawn: list[float] = []  # every y value on the axes, to choose its scale
    hollow = False
    colors = variant_colors(sparse["variant"])
    for variant, rows in sparse.groupby("variant", sort=False):
        stats = _mean_std(rows, "level", "eigenvalue")
        x = remaining_percent(stats["sparsity_pct"]).to_numpy()
        (line,) = ax.plot(x, stats["mean"], marker="o", markersize=4, label=variant, color=colors[variant])
        hollow |= _eigen_series(ax, x, stats, line.get_color(), drawn)
    if not dense.empty:
        values = dense["eigenvalue"]
        several = dense["seed"].nunique() > 1
        mark = "" if dense["converged"].all() else ", not converged"
        # The number is the eigenvalue, and says so: beside a network's name it would read as an accuracy.
        spread = f" ± {values.std():.2g}" if several else ""
        ax.axhline(
            values.mean(),
            color=DENSE_COLOR,
            linestyle="--",
            linewidth=1,
            label=f"dense (λ1 = {values.mean():.3g}{spread}{mark})",
        )
        drawn.append(values.mean())
        if several:
            ax.axhspan(
                values.mean() - values.std(), values.mean() + values.std(), color=DENSE_COLOR, alpha=0.08, linewidth=0
            )
            drawn += [values.mean() - values.std(), values.mean() + values.std()]
    finish_x_axis(ax, "sparsity", sparse["sparsity_pct"])
    _finish_eigen(ax, drawn, hollow)
    ax.set_title(
        figure_title("Fig. 2: top Hessian eigenvalue vs sparsity", frame, title, _epoch_note(frame, epoch)), fontsize=9
    )
    save_figure(fig, outputs)


def figA12_hessian_per_epoch(
    csv: Path, outputs: Sequence[Path], *, epoch: Epoch = None, title: str | None = None
) -> None:
    """Figure A12: the top Hessian eigenvalue after every training epoch, one line per (variant,
    sparsity) pair, mean +- std over seeds; log y axis, hollow markers where a seed did not converge.
    Epochs without a value (empty `eigenvalue`) are left out of the line."""
    from matplotlib.ticker import MaxNLocator

    name = "figA12_hessian_per_epoch"
    if epoch is not None:
        figure(name).parse_epoch(str(epoch))  # raises: the epoch is this figure's x axis
    outputs = check_outputs(name, outputs, figure(name).suffixes)
    frame = _load(csv, name)
    frame = frame[frame["eigenvalue"].notna()]
    if frame.empty:
        raise LthError(f"{csv}: column 'eigenvalue' is empty in every row; train with `--track hessian`")
    _check_unique(frame, Path(csv), ["seed", "variant", "level", "epoch"])
    pairs = _pairs(frame)
    colors = _pair_colors([pair for pair, _ in pairs])
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.2, 4.4), layout="constrained")
    drawn: list[float] = []
    hollow = False
    for (variant, level), rows in pairs:
        stats = _mean_std(rows, "epoch", "eigenvalue")
        x = stats["epoch"].to_numpy()
        color = colors[(variant, level)]
        ax.plot(
            x,
            stats["mean"],
            color=color,
            marker="o",
            markersize=2.5,
            linewidth=1.2,
            linestyle="--" if variant == "dense" else "-",
            label=_pair_label(variant, rows),
        )
        hollow |= _eigen_series(ax, x, stats, color, drawn)
    ax.set_xlabel("Training epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _finish_eigen(ax, drawn, hollow)
    ax.set_title(figure_title("Fig. A12: top Hessian eigenvalue during training", frame, title), fontsize=9)
    save_figure(fig, outputs)


def fig10_perturbation(csv: Path, outputs: Sequence[Path], *, epoch: Epoch = None, title: str | None = None) -> None:
    """Figure 10: the loss on the test sample at theta + epsilon v / ||v|| (v the top Hessian
    eigenvector) against epsilon, one line per (variant, sparsity) pair, mean +- std over seeds. The
    legend gives each pair's mean eigenvalue and says when its power iteration did not converge."""
    name = "fig10_perturbation"
    outputs = check_outputs(name, outputs, figure(name).suffixes)
    frame = _select_epoch(_load(csv, name), Path(csv), epoch)
    _check_unique(frame, Path(csv), ["seed", "variant", "level", "epoch", "index"])
    pairs = _pairs(frame)
    colors = _pair_colors([pair for pair, _ in pairs])
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.2, 4.4), layout="constrained")
    for (variant, level), rows in pairs:
        # grouped by grid index, not by the float epsilon: seeds share the grid, and the index is exact
        stats = _mean_std(rows, "index", "loss").sort_values("epsilon")
        x = stats["epsilon"].to_numpy()
        color = colors[(variant, level)]
        per_seed = rows.groupby("seed").agg(eigenvalue=("eigenvalue", "first"), converged=("converged", "all"))
        note = f"λ1 = {per_seed['eigenvalue'].mean():.3g}" + ("" if per_seed["converged"].all() else ", not converged")
        ax.plot(
            x,
            stats["mean"],
            color=color,
            linewidth=1.4,
            linestyle="--" if variant == "dense" else "-",
            label=f"{_pair_label(variant, rows)} ({note})",
        )
        draw_band(ax, x, stats, color)
    ax.axvline(0, color="gray", linewidth=0.8, linestyle=":")  # the unperturbed network
    ax.set_xlabel("ε: step along the top Hessian eigenvector (θ + ε v/‖v‖)")
    ax.set_ylabel("Loss on the test sample (cross-entropy)")
    ax.grid(True, alpha=0.3)
    _legend(ax)
    ax.set_title(
        figure_title("Fig. 10: loss along the top Hessian eigenvector", frame, title, _epoch_note(frame, epoch)),
        fontsize=9,
    )
    save_figure(fig, outputs)


def _grid(rows: pd.DataFrame, csv: Path, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(alpha, beta, loss[j, i]) of one run's grid, which must be whole: a missing point would be
    drawn as a smooth contour through a hole."""
    duplicated = rows.duplicated(["i", "j"], keep=False)
    if duplicated.any():
        point = rows[duplicated].iloc[0]
        raise LthError(
            f"{csv} holds grid point (i={point['i']}, j={point['j']}) more than once for {what}; collect each run once"
        )
    ni, nj = rows["i"].nunique(), rows["j"].nunique()
    if ni < 2 or nj < 2:
        raise LthError(
            f"{csv}: the grid of {what} is {ni} x {nj} points (columns 'i', 'j'); a contour needs at least 2 x 2"
        )
    if len(rows) != ni * nj:
        raise LthError(
            f"{csv}: the grid of {what} has {len(rows)} of its {ni} x {nj} points (columns 'i', 'j'); "
            "merge every part of it (`lth analyze merge`) before collecting"
        )
    loss = rows.pivot(index="j", columns="i", values="loss").sort_index().sort_index(axis=1)
    alpha = rows.groupby("i")["alpha"].mean().sort_index().to_numpy()
    beta = rows.groupby("j")["beta"].mean().sort_index().to_numpy()
    return alpha, beta, loss.to_numpy(dtype=float)


def _landscape(
    csv: Path,
    outputs: Sequence[Path],
    name: str,
    epoch: Epoch,
    title: str | None,
    axis_labels: tuple[str, str],
    default_title: str,
) -> None:
    """Contour panels, one per (variant, level): the first seed's grid, log-spaced levels (see
    `log_contour_levels`) between the smallest and largest finite loss over all panels, so that
    one colour means one loss in every panel, and a star at the unperturbed network."""
    import numpy as np
    from matplotlib.colors import LogNorm
    from matplotlib.ticker import MaxNLocator

    outputs = check_outputs(name, outputs, figure(name).suffixes)
    frame = _select_epoch(_load(csv, name), Path(csv), epoch)
    panels = []
    for (variant, level), rows in _pairs(frame):
        seeds = sorted(rows["seed"].unique())
        first = rows[rows["seed"] == seeds[0]]
        runs = ", ".join(dict.fromkeys(first["run"]))
        epochs = ", ".join(str(value) for value in sorted(first["epoch"].unique()))
        what = f"variant {variant}, level {level}, seed {seeds[0]} (run {runs}, epoch {epochs})"
        alpha, beta, loss = _grid(first, Path(csv), what)
        label = _pair_label(variant, rows)
        if len(seeds) > 1:
            label += f"\nseed {seeds[0]} only (first of {len(seeds)} seeds)"
        panels.append((label, alpha, beta, loss))
    finite = np.concatenate([loss[np.isfinite(loss)] for *_, loss in panels])
    if finite.size == 0:
        raise LthError(f"{csv}: every selected value of column 'loss' is NaN or infinite; nothing to draw")
    if finite.max() <= 0:
        raise LthError(
            f"{csv}: column 'loss' is <= 0 everywhere selected (largest {finite.max()}); a cross-entropy "
            "is positive, so this is not a loss landscape"
        )
    levels = log_contour_levels(float(finite.min()), float(finite.max()))
    norm = LogNorm(vmin=levels[0], vmax=levels[-1])
    plt = pyplot()
    columns = min(len(panels), 4)
    rows_count = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(
        rows_count,
        columns,
        figsize=(max(2.9 * columns + 1.2, 5.2), 3.2 * rows_count + 0.7),
        squeeze=False,
        layout="constrained",
    )
    contour = None
    below = "min" if finite.min() < levels[0] else "neither"  # only a clipped low end has values under the scale
    for ax, (label, alpha, beta, loss) in zip(axes.flat, panels):
        masked = np.ma.masked_invalid(loss)  # a NaN point (a diverged evaluation) is left blank, not drawn as 0
        contour = ax.contourf(alpha, beta, masked, levels=levels, norm=norm, cmap="viridis", extend=below)
        ax.contour(alpha, beta, masked, levels=levels, colors="black", linewidths=0.3, alpha=0.5)
        ax.plot(0, 0, marker="*", markersize=10, color="white", markeredgecolor="black", markeredgewidth=0.8)
        ax.set_title(label, fontsize=8)
        ax.set_xlabel(axis_labels[0], fontsize=8)
        ax.set_ylabel(axis_labels[1], fontsize=8)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(5))  # 21 grid values would crowd the axis
        ax.yaxis.set_major_locator(MaxNLocator(5))
        ax.set_aspect("equal", adjustable="box")
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    colorbar = fig.colorbar(contour, ax=axes, label="loss (log-spaced levels, shared by all panels)", shrink=0.9)
    # A log colour bar within one decade gets no labelled ticks of its own: label every other level.
    colorbar.set_ticks(levels[::2], labels=[f"{value:.3g}" for value in levels[::2]])
    colorbar.minorticks_off()
    fig.suptitle(
        figure_title(f"{default_title} (★ = the trained network)", frame, title, _epoch_note(frame, epoch)), fontsize=10
    )
    save_figure(fig, outputs)


def fig_landscape(csv: Path, outputs: Sequence[Path], *, epoch: Epoch = None, title: str | None = None) -> None:
    """Figures 5 and 11 (weight space): the loss at theta + alpha d1 + beta d2 (filter-normalised
    directions), one contour panel per (variant, sparsity), at `epoch` (an int) or `final`."""
    _landscape(
        csv,
        outputs,
        "fig_landscape",
        epoch,
        title,
        ("α (direction 1, filter-normalised)", "β (direction 2)"),
        "Figs. 5/11: loss landscape in weight space",
    )


def fig11_input_landscape(csv: Path, outputs: Sequence[Path], *, epoch: Epoch = None, title: str | None = None) -> None:
    """Figure 11 (input space): the mean loss of model(x + alpha u + beta w), u and w scaled to each
    image's norm, one contour panel per (variant, sparsity), at `epoch` (an int) or `final`."""
    _landscape(
        csv,
        outputs,
        "fig11_input_landscape",
        epoch,
        title,
        ("α (along u, ‖u‖ = ‖x‖)", "β (along w, ‖w‖ = ‖x‖)"),
        "Fig. 11: loss landscape in input space",
    )
