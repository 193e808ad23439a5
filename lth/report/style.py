"""What every figure shares, accuracy and analysis alike: a variant's colour, the title, the
sparsity axis, the output formats and the atomic save.

Conventions: accuracy and sparsity are in %, sparser is to the right, a band is +- one standard
deviation (ddof 1) drawn only when more than one seed exists. A variant has one colour in every
figure (`variant_colors`), and every title says what the figure shows, then the model, data, epochs
and seeds it shows (`figure_title`); the file's name says which figure it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lth.errors import LthError
from lth.io import atomic_open
from lth.report.summary import parts_of

if TYPE_CHECKING:
    import pandas as pd

FIGURE_SUFFIXES = (".png", ".pdf", ".svg")
TABLE_SUFFIXES = (*FIGURE_SUFFIXES, ".csv", ".html")  # a table is drawn, or written as CSV or a page
X_AXES = {
    "sparsity": "Sparsity (% of prunable weights removed; log-spaced in weights remaining)",
    "nonzero_params": "Nonzero parameters of the trained network (log scale)",
    "forward_flops_effective": "Forward FLOPs per image, pruned weights skipped (log scale)",
    "train_flops": "Training FLOPs (sparse forward and backward, RigL's dense gradients; log scale)",
}
SHORT_X_AXES = {  # for small panels (the grids), where X_AXES' labels do not fit
    "sparsity": "Sparsity (%, log-spaced)",
    "nonzero_params": "Nonzero parameters",
    "forward_flops_effective": "Effective forward FLOPs",
    "train_flops": "Training FLOPs",
}
X_COLUMNS = {"sparsity": "sparsity_pct"}  # the summary.csv column of an x axis (the others: its own name)


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
SPARE_COLORS = (  # for other variants: never one of the named
    *("#aec7e8", "#dbdb8d", "#c7c7c7", "#393b79", "#637939", "#8c6d31"),
    *("#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1"),
)
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


def figure_title(what: str, rows: pd.DataFrame, prefix: str | None = None, note: str | None = None) -> str:
    """Two lines: `<prefix>: <what>` (the figure's subject; `prefix`, e.g. the experiment, when given)
    and describe_runs(rows), then `; <note>` (which weights an analysis figure shows) when given."""
    heading = f"{prefix}: {what}" if prefix else what
    return f"{heading}\n{describe_runs(rows)}" + (f"; {note}" if note else "")


# ---------------------------------------------------------------------------------------------
# Axes and bands


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


def draw_band(ax: Any, x: Any, stats: pd.DataFrame, color: Any) -> None:
    """The +-std band around `stats`' mean (columns mean, std, seeds), only when more than one seed exists."""
    if stats["seeds"].max() > 1:
        ax.fill_between(
            x, stats["mean"] - stats["std"], stats["mean"] + stats["std"], color=color, alpha=0.2, linewidth=0
        )


# ---------------------------------------------------------------------------------------------
# Output


def check_outputs(what: str, outputs: Sequence[str | Path], suffixes: Sequence[str] = FIGURE_SUFFIXES) -> list[Path]:
    """The files to write, each with one of `suffixes` (matplotlib, or for a table CSV, picks the format)."""
    if not outputs:
        raise LthError(f"{what}: give at least one output file ({', '.join(suffixes)})")
    for output in outputs:
        if Path(output).suffix.lower() not in suffixes:
            raise LthError(
                f"{output}: the suffix {Path(output).suffix or '(none)'!r} is not allowed for {what}; "
                f"give one of {', '.join(suffixes)}"
            )
    return [Path(output) for output in outputs]


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend: files only, the same output on every machine."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, outputs: Sequence[str | Path], table: pd.DataFrame | None = None, crop: Any = None) -> None:
    """Every output in the format of its suffix (a .csv: `table`), each atomically (a killed job
    leaves no half figure); the figure is closed even when a write fails. `crop` (a Bbox in inches)
    cuts the figure to it: a table's size is known only once it is drawn."""
    plt = pyplot()
    try:
        for output in outputs:
            suffix = Path(output).suffix.lower()
            if suffix == ".csv":
                with atomic_open(output, "w") as handle:
                    table.to_csv(handle, index=False)
                continue
            with atomic_open(output, "wb") as handle:
                cropped = {"bbox_inches": crop} if crop is not None else {}
                fig.savefig(handle, format=suffix.lstrip(".") or "png", dpi=150, **cropped)
    finally:
        if fig is not None:
            plt.close(fig)
