"""Every figure and table `lth figure NAME` draws, one typed entry each in FIGURES: a new figure is its
drawing function (an analysis figure's, in lth/report/analysis.py; accuracy figures share one) plus one
entry. The workflow asks `figure_status` and `grid_status` at parse time which figures a config allows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lth.errors import LthError
from lth.report import accuracy, analysis
from lth.report.collect import ID_COLUMNS, RUN_COLUMNS
from lth.report.style import FIGURE_SUFFIXES, TABLE_SUFFIXES

PRUNE_METHODS = ("imp", "omp")
Epoch = analysis.Epoch


@dataclass(frozen=True)
class SummaryFigure:
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
    suffixes = FIGURE_SUFFIXES

    def __post_init__(self) -> None:  # a wrong entry fails at import, not in a workflow hours later
        known = set(self.series)
        if not set(self.required) <= known or not set(self.critical or ()) <= known or self.min_series > len(known):
            raise LthError(f"{self.name}: required, critical and min_series must refer to its series")
        if self.method not in (None, *PRUNE_METHODS):
            raise LthError(f"{self.name}: method {self.method!r} is not one of {', '.join(PRUNE_METHODS)}")

    def draw(self, csv: str | Path, outputs: Sequence[str | Path], **options: Any) -> dict[str, Any]:
        """What accuracy.draw_summary plotted; `options`: x, title."""
        return accuracy.draw_summary(self, csv, outputs, **options)


@dataclass(frozen=True)
class GridFigure:
    """One panel per experiment (architecture x dataset) of results/summary.csv."""

    name: str
    quantity: str  # "accuracy": both curves and the dense line; "gain": at+trt minus lth, per seed
    description: str
    heading: str  # a few words: what the figure shows (its title's first line)
    suffixes = FIGURE_SUFFIXES

    def draw(self, csv: str | Path, outputs: Sequence[str | Path], **options: Any) -> dict[Any, Any]:
        """What accuracy.draw_grid plotted; `options`: x, title."""
        return accuracy.draw_grid(self, csv, outputs, **options)


@dataclass(frozen=True)
class AnalysisFigure:
    """A figure or table of one collected analysis CSV (lth/report/collect.py writes them)."""

    name: str
    function: Callable[..., Any]  # (csv, outputs, *, epoch, title): draws every output
    source: str  # the collected CSV it is drawn from (error messages)
    reads: tuple[str, ...]  # its columns besides ID_COLUMNS and RUN_COLUMNS, each parsed and checked
    description: str
    suffixes: tuple[str, ...] = FIGURE_SUFFIXES
    epoch_axis: bool = False  # the epoch is its x axis: it takes no epoch filter

    @property
    def columns(self) -> tuple[str, ...]:
        return (*ID_COLUMNS, *RUN_COLUMNS, *self.reads)

    def parse_epoch(self, text: str | None) -> Epoch:
        """The `--epoch` value: None, "final" or a training epoch >= 1."""
        if text is None:
            return None
        if self.epoch_axis:
            raise LthError(f"{self.name} plots every training epoch on its x axis and takes no epoch filter; drop it")
        if str(text) == "final":
            return "final"
        try:
            value = int(text)
        except (TypeError, ValueError):
            value = 0
        if value < 1:
            raise LthError(f"{text!r} is not allowed; give a training epoch (an integer >= 1) or `final`")
        return value

    def draw(self, csv: str | Path, outputs: Sequence[str | Path], **options: Any) -> Any:
        """What its function returns; `options`: epoch, title."""
        return self.function(Path(csv), outputs, **options)


Figure = SummaryFigure | GridFigure | AnalysisFigure
GRID = ("index", "i", "j", "alpha", "beta", "loss")  # a landscape's columns
FIGURES: dict[str, Figure] = {
    figure.name: figure
    for figure in (
        SummaryFigure(
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
        SummaryFigure(
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
        SummaryFigure(
            "fig1c_ls",
            ("lth", "ls"),
            ("lth", "ls"),
            dense=("ls",),
            heading="Fig. 1c: label smoothing vs vanilla",
            description=(
                "Figure 1c: label smoothing against the vanilla ticket, with its effect on the dense network dashed."
            ),
        ),
        SummaryFigure(
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
        SummaryFigure(
            "fig4a_at_trt",
            ("lth", "at", "trt", "at+trt"),
            ("lth",),
            heading="Fig. 4a: architecture (AT) and training-recipe (TRT) tweaks vs vanilla",
            description=(
                "Figure 4a: the architecture tweaks (AT), the training-recipe tweaks (TRT) and both against the "
                "vanilla ticket; combined they give the paper's largest gains at high sparsity."
            ),
        ),
        SummaryFigure(
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
        SummaryFigure(
            "fig8_rewinding_combos",
            ("rewind", "at+rewind", "trt+rewind", "at+trt+rewind"),
            ("rewind",),
            heading="Fig. 8: the tweaks with weight rewinding",
            description="Figure 8: the tweaks combined with weight rewinding, against rewinding alone.",
        ),
        SummaryFigure(
            "fig9_ls_vs_kd",
            ("at+trt", "skip+swish+gradinit+kd"),
            ("at+trt", "skip+swish+gradinit+kd"),
            heading="Fig. 9: AT+TRT with label smoothing vs with distillation",
            description=(
                "Figure 9: AT+TRT with label smoothing against AT+TRT with knowledge distillation "
                "from the dense network as its soft labels."
            ),
        ),
        SummaryFigure(
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
        SummaryFigure(
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
        GridFigure(
            "fig6_grid",
            "accuracy",
            "Figure 6: vanilla (lth) against AT+TRT for each architecture and "
            "dataset, one panel per experiment, with the dense network dashed.",
            "Fig. 6: AT+TRT vs vanilla per architecture and dataset",
        ),
        GridFigure(
            "fig7_grid",
            "gain",
            "Figure 7: the gain of AT+TRT over vanilla (lth) in accuracy points at "
            "each level, one panel per architecture and dataset.",
            "Fig. 7: gain of AT+TRT over vanilla per architecture and dataset",
        ),
        AnalysisFigure(
            "tableA1_activation_sparsity",
            analysis.tableA1_activation_sparsity,
            "activation_sparsity.csv",
            ("stage", "near_zero_pct", "threshold"),
            "Table A1: % of near-zero activations, whole network and per stage, one table per threshold "
            "(activation_sparsity.csv)",
            suffixes=TABLE_SUFFIXES,
        ),
        AnalysisFigure(
            "fig2_hessian",
            analysis.fig2_hessian,
            "hessian.csv",
            ("rank", "eigenvalue", "converged"),
            "Figure 2: top Hessian eigenvalue vs sparsity, one line per variant (hessian.csv)",
        ),
        AnalysisFigure(
            "figA12_hessian_per_epoch",
            analysis.figA12_hessian_per_epoch,
            "hessian_per_epoch.csv",
            ("eigenvalue", "converged"),
            "Figure A12: top Hessian eigenvalue vs training epoch per (variant, sparsity) (hessian_per_epoch.csv)",
            epoch_axis=True,
        ),
        AnalysisFigure(
            "fig_landscape",
            analysis.fig_landscape,
            "landscape.csv",
            GRID,
            "Figures 5/11: weight-space loss contours per (variant, sparsity) at an epoch (landscape.csv)",
        ),
        AnalysisFigure(
            "fig11_input_landscape",
            analysis.fig11_input_landscape,
            "input_landscape.csv",
            GRID,
            "Figure 11: input-space loss contours per (variant, sparsity) (input_landscape.csv)",
        ),
        AnalysisFigure(
            "fig10_perturbation",
            analysis.fig10_perturbation,
            "perturbation.csv",
            ("index", "epsilon", "loss", "eigenvalue", "converged"),
            "Figure 10: test loss along the top Hessian eigenvector vs epsilon (perturbation.csv)",
        ),
    )
}
SUMMARY_FIGURES = {name: figure for name, figure in FIGURES.items() if isinstance(figure, SummaryFigure)}
GRID_FIGURES = {name: figure for name, figure in FIGURES.items() if isinstance(figure, GridFigure)}
ANALYSIS_FIGURES = {name: figure for name, figure in FIGURES.items() if isinstance(figure, AnalysisFigure)}


def _unknown(name: str, names: Sequence[str]) -> LthError:
    return LthError(f"figure {name!r} does not exist; choose one of {', '.join(names)}")


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
    reason = accuracy.too_few_sources(mask_sources, "config") if spec.per_source else None
    reason = reason or accuracy.missing_variants(spec, variants, "config")
    return f"{name}: {reason}" if reason else None


def grid_status(rows: Sequence[tuple[str, str, str, Sequence[str]]]) -> str | None:
    """None when the grids (GRID_FIGURES) can be drawn from experiments given as (experiment, model,
    dataset, variants), else why not: they need at least one experiment with both lth and at+trt."""
    if not any(accuracy.has_grid_series(variants) for _, _, _, variants in rows):
        return (
            f"needs an experiment with variants {' and '.join(accuracy.GRID_SERIES)}; none of the "
            f"{len(rows)} experiment{'s' if len(rows) != 1 else ''} ({', '.join(r[0] for r in rows)}) has both"
        )
    return None


def draw_summary_figure(
    name: str, csv: str | Path, outputs: Sequence[str | Path], *, x: str = "sparsity", title: str | None = None
) -> dict[str, Any]:
    """Figure `name` of SUMMARY_FIGURES from one experiment's summary.csv (accuracy.draw_summary)."""
    if name not in SUMMARY_FIGURES:
        raise _unknown(name, list(SUMMARY_FIGURES) + [f"(grids, draw_grid_figure: {', '.join(GRID_FIGURES)})"])
    return accuracy.draw_summary(SUMMARY_FIGURES[name], csv, outputs, x=x, title=title)


def draw_grid_figure(
    name: str, csv: str | Path, outputs: Sequence[str | Path], *, x: str = "sparsity", title: str | None = None
) -> dict[Any, Any]:
    """Grid `name` of GRID_FIGURES from results/summary.csv (accuracy.draw_grid)."""
    if name not in GRID_FIGURES:
        raise _unknown(
            name,
            list(GRID_FIGURES) + [f"(one experiment's figures, draw_summary_figure: {', '.join(SUMMARY_FIGURES)})"],
        )
    return accuracy.draw_grid(GRID_FIGURES[name], csv, outputs, x=x, title=title)
