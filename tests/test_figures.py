"""The paper's accuracy figures from synthetic summary CSVs: which figures a config allows, and the
plotted data each drawing function returns (checked against the CSV's numbers, not read from pixels).

Seeds are built around a nominal accuracy: with 3 seeds at offsets -1, 0, +1 points the mean is the
nominal value and the standard deviation (ddof 1) exactly 1; with 1 seed there is no std and no band.
"""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest

import lth.report.accuracy as figures
import lth.report.style as style
from lth.cli import main
from lth.errors import LthError
from lth.io import seal_file
from lth.report.accuracy import plot_accuracy_vs_sparsity
from lth.report.registry import (
    GRID_FIGURES,
    SUMMARY_FIGURES,
    draw_grid_figure,
    draw_summary_figure,
    figure_status,
    grid_status,
)
from lth.report.summary import sources_of

SPARSITY = {1: 20.0, 2: 36.0, 3: 48.8}  # IMP at 20% per level, in %
TOTAL = 1000  # parameters of the dense network


def summary(
    curves: dict[str, list[float]],
    seeds: int,
    dense: float = 90.0,
    baselines: dict[str, float] | None = None,
    method: str = "imp",
    experiment: str | None = None,
    model: str = "resnet18",
    dataset: str = "cifar10",
    epochs: int = 30,
) -> pd.DataFrame:
    """summary.csv rows: each variant's nominal accuracy (%) per level, seed k at nominal + k - (seeds-1)/2;
    `dense` at level 0 and `dense+<tweak>` baselines; a skip variant has 10 more nonzero parameters;
    `rewind` variants trained from epoch 3 of `epochs`, the others from 0."""
    rows = []
    for seed in range(seeds):
        offset = seed - (seeds - 1) / 2
        level0 = {"dense": dense, **{f"dense+{tweak}": acc for tweak, acc in (baselines or {}).items()}}
        for variant, acc in level0.items():
            rows.append(
                {
                    "seed": seed,
                    "variant": variant,
                    "level": 0,
                    "sparsity_pct": 0.0,
                    "nonzero_params": TOTAL,
                    "test_acc_pct": acc + offset,
                    "rewind_epoch": 0,
                }
            )
        for variant, accuracy in curves.items():
            extra = 10 if "skip" in variant or "at" in variant.split("+") else 0
            rewind = 3 if "rewind" in variant.split("+") else 0
            for (level, sparsity), acc in zip(SPARSITY.items(), accuracy):
                rows.append(
                    {
                        "seed": seed,
                        "variant": variant,
                        "level": level,
                        "sparsity_pct": sparsity,
                        "nonzero_params": round(TOTAL * (1 - sparsity / 100)) + extra,
                        "test_acc_pct": acc + offset,
                        "rewind_epoch": rewind,
                    }
                )
    frame = pd.DataFrame(rows).assign(
        forward_flops_effective=lambda f: 5 * f["nonzero_params"],
        model=model,
        width=4,
        dataset=dataset,
        prune_method=method,
        epochs_trained=lambda f: epochs - f["rewind_epoch"],
    )
    return frame if experiment is None else frame.assign(experiment=experiment)[["experiment", *frame.columns]]


def sourced(curves: dict[str, dict[str, list[float]]], seeds: int, **options) -> pd.DataFrame:
    """One experiment's summary with several mask sources: summary()'s rows of each source's curves
    (source -> variant -> nominal accuracies), a column mask_source after level (empty for the dense
    rows, which appear once), sources in the given order."""
    frames = []
    for index, (source, variants) in enumerate(curves.items()):
        frame = summary(variants, seeds, **options)
        frame = frame.assign(mask_source=frame["level"].gt(0).map({True: source, False: None}))
        frames.append(frame if index == 0 else frame[frame["level"] > 0])  # the dense rows once
    table = pd.concat(frames, ignore_index=True)
    columns = [column for column in table if column != "mask_source"]
    return table[[*columns[: columns.index("level") + 1], "mask_source", *columns[columns.index("level") + 1 :]]]


def write(frame: pd.DataFrame, path):
    """`frame` as a summary.csv that readers accept: sealed, as `lth aggregate` writes it."""
    frame.to_csv(path, index=False)
    seal_file(path)
    return path


@pytest.fixture
def saved(monkeypatch):
    """The matplotlib figures the drawing functions save, to inspect their artists."""
    figs = []
    original = figures.save_figure
    # lth figure's and lth plot's
    monkeypatch.setattr(figures, "save_figure", lambda fig, outputs: (figs.append(fig), original(fig, outputs)))
    return figs


def bands(ax) -> int:
    """Filled areas on one axes: fill_between's PolyCollections and axhspan's rectangles."""
    from matplotlib.collections import PolyCollection

    return sum(isinstance(child, PolyCollection) for child in ax.collections) + len(ax.patches)


# ---------------------------------------------------------------------------------------------
# Which figures a config allows


@pytest.mark.parametrize(
    ("name", "variants", "method", "reason"),
    [
        ("fig1a_skip", ["lth", "skip"], "imp", None),
        (
            "fig1a_skip",
            ["lth", "rewind"],
            "imp",
            "fig1a_skip: needs variants lth and skip; the config has lth, rewind, not skip",
        ),
        ("fig1b_activations", ["lth", "mish"], "imp", None),  # lth plus either activation
        (
            "fig1b_activations",
            ["lth"],
            "imp",
            "fig1b_activations: needs variants lth plus 1 of swish, mish; the config has lth, not swish or mish",
        ),
        ("fig4a_at_trt", ["at", "trt"], "imp", "not lth"),
        ("fig4b_rewinding", ["rewind+at+trt"], "imp", "not at+trt, rewind"),  # at+trt+rewind is neither
        ("fig9_ls_vs_kd", ["at+trt", "swish+skip+kd+gradinit"], "imp", None),  # by parts, in any order
        ("figA13_omp", ["lth", "skip+swish+gradinit+ls"], "omp", None),  # at+trt spelt out
        (
            "figA13_omp",
            ["lth", "at+trt"],
            "imp",
            "figA13_omp: drawn for experiments with prune.method omp; this one uses imp",
        ),
    ],
)
def test_a_figure_is_planned_only_when_its_series_exist(name, variants, method, reason):
    status = figure_status(name, variants, [], method)
    assert status is None if reason is None else reason in status


def test_figure_status_of_every_figure_and_unknown_names():
    everything = [
        "lth",
        "skip",
        "swish",
        "mish",
        "ls",
        "gradinit",
        "at",
        "trt",
        "at+trt",
        "rewind",
        "at+rewind",
        "trt+rewind",
        "at+trt+rewind",
        "skip+swish+gradinit+kd",
    ]
    assert [
        figure_status(name, everything, ["skip"], "imp", mask_sources=["magnitude", "random"])
        for name in SUMMARY_FIGURES
        if name != "figA13_omp"
    ] == [None] * (len(SUMMARY_FIGURES) - 1)
    with pytest.raises(LthError, match="figure 'fig3' does not exist; choose one of fig1a_skip, .*figA13_omp"):
        figure_status("fig3", everything, [], "imp")


@pytest.mark.parametrize(
    ("variants", "sources", "reason"),
    [
        (["lth", "at+trt", "rewind"], ["magnitude", "random"], None),
        (["lth", "skip+swish+gradinit+ls"], ["magnitude", "snip", "my_masks"], None),  # at+trt by its parts
        (["lth", "at+trt"], ["magnitude"], "any_mask: needs at least 2 mask sources; the config has magnitude"),
        (["lth", "at+trt"], [], "needs at least 2 mask sources; the config has one, without a label"),
        (
            ["lth", "rewind"],
            ["magnitude", "random"],
            "any_mask: needs variants lth and at+trt; the config has lth, rewind, not at+trt",
        ),
    ],
)
def test_any_mask_is_planned_with_two_mask_sources_and_both_variants(variants, sources, reason):
    status = figure_status("any_mask", variants, [], "imp", mask_sources=sources)
    assert status is None if reason is None else reason in status
    assert figure_status("any_mask", ["lth", "at+trt"], [], "imp") is not None  # the default: magnitude only
    # The other figures do not ask for mask sources.
    assert figure_status("fig4a_at_trt", ["lth", "at+trt"], [], "imp", mask_sources=sources) is None


def test_grids_need_one_experiment_with_both_series():
    assert (
        grid_status(
            [("a", "resnet18", "cifar10", ["lth", "skip+swish+gradinit+ls"]), ("b", "vgg16", "cifar10", ["lth"])]
        )
        is None
    )
    reason = grid_status([("a", "m", "d", ["lth", "at"]), ("b", "m", "d", ["at+trt"])])
    assert reason == "needs an experiment with variants lth and at+trt; none of the 2 experiments (a, b) has both"


# ---------------------------------------------------------------------------------------------
# An experiment's figures


@pytest.mark.parametrize("seeds", [1, 3])
def test_series_dense_lines_and_bands_follow_the_seeds(tmp_path, saved, seeds):
    csv = write(
        summary(
            {"lth": [91, 88, 80], "skip": [90, 89, 85], "rewind": [1, 1, 1]}, seeds, baselines={"skip": 89, "ls": 70}
        ),
        tmp_path / "summary.csv",
    )
    outputs = [tmp_path / "fig1a.png", tmp_path / "fig1a.pdf"]
    plotted = draw_summary_figure("fig1a_skip", csv, outputs)
    assert all(path.stat().st_size > 0 for path in outputs)
    assert list(plotted) == ["lth", "skip", "dense", "dense+skip"]  # not rewind, not dense+ls
    for label, nominal in (("lth", [91, 88, 80]), ("skip", [90, 89, 85])):
        frame = plotted[label]
        assert list(frame.columns) == ["level", "sparsity_pct", "x", "mean", "std", "seeds"]
        assert frame["level"].tolist() == [1, 2, 3]
        assert frame["sparsity_pct"].tolist() == pytest.approx([20, 36, 48.8])
        assert frame["x"].tolist() == pytest.approx([20, 36, 48.8])  # x = sparsity, in %
        assert frame["mean"].tolist() == pytest.approx(nominal)
        assert frame["seeds"].tolist() == [seeds] * 3
    assert plotted["dense"][["level", "mean", "seeds"]].values[0].tolist() == pytest.approx([0, 90, seeds])
    assert plotted["dense+skip"]["mean"].item() == pytest.approx(89)
    ax = saved[0].axes[0]
    skip_color = next(line.get_color() for line in ax.get_lines() if line.get_label() == "skip")
    baseline = next(line for line in ax.get_lines() if line.get_label().startswith("dense+skip"))
    assert baseline.get_color() == skip_color and baseline.get_linestyle() == "--"
    if seeds == 1:
        assert all(plotted[label]["std"].isna().all() for label in plotted)
        assert bands(ax) == 0
    else:
        assert all(plotted[label]["std"].tolist() == pytest.approx([1.0] * len(plotted[label])) for label in plotted)
        assert bands(ax) == 2 + 2  # a band per curve and per dense line


def test_critical_sparsity_is_marked_where_the_curves_cross_last(tmp_path, saved):
    csv = write(summary({"at+trt": [89, 90, 88], "rewind": [91, 89, 80]}, 1), tmp_path / "summary.csv")
    plotted = draw_summary_figure("fig4b_rewinding", csv, [tmp_path / "f.png"])
    # d = at+trt - rewind = -2, +1, +8: the sign changes between levels 1 and 2 only, at t = 2 / (2 + 1)
    # of the way on log(remaining): log(0.8) -> log(0.64).
    t = 2 / 3
    sparsity = 100 * (1 - math.exp(math.log(0.8) + t * (math.log(0.64) - math.log(0.8))))  # in %
    critical = plotted["critical"].iloc[0]
    assert (critical["variant"], critical["reference"]) == ("at+trt", "rewind")
    assert critical["sparsity_pct"] == pytest.approx(sparsity) and critical["x"] == pytest.approx(sparsity)
    assert critical["mean"] == pytest.approx(89 + t * (90 - 89))
    marker = [line for line in saved[0].axes[0].get_lines() if line.get_label().startswith("critical sparsity")]
    assert len(marker) == 1 and marker[0].get_xdata()[0] == pytest.approx(100 - sparsity)
    assert marker[0].get_label() == f"critical sparsity {sparsity:.1f}%"
    # On parameters, the marker sits at the same place: log x interpolated with the same t.
    plotted = draw_summary_figure("fig4b_rewinding", csv, [tmp_path / "g.png"], x="nonzero_params")
    assert plotted["critical"]["x"].item() == pytest.approx(
        math.exp(math.log(810) + t * (math.log(650) - math.log(810)))
    )
    # Curves that never cross: no marker.
    write(summary({"at+trt": [92, 90, 88], "rewind": [91, 89, 80]}, 1), csv)
    assert "critical" not in draw_summary_figure("fig4b_rewinding", csv, [tmp_path / "h.png"])


def test_rewinding_combinations_with_three_seeds_and_other_x_axes(tmp_path):
    csv = write(
        summary({"rewind": [91, 88, 80], "rewind+trt+at": [92, 90, 86], "lth": [1, 1, 1]}, 3), tmp_path / "summary.csv"
    )
    plotted = draw_summary_figure("fig8_rewinding_combos", csv, [tmp_path / "f.svg"], x="nonzero_params")
    assert list(plotted) == ["rewind", "rewind+trt+at", "dense"]  # the CSV's spelling, the figure's order
    assert plotted["rewind+trt+at"]["x"].tolist() == [810, 650, 522]  # 800, 640, 512 + the skip branches' 10
    assert plotted["rewind"]["std"].tolist() == pytest.approx([1, 1, 1])
    plotted = draw_summary_figure("fig8_rewinding_combos", csv, [tmp_path / "g.png"], x="forward_flops_effective")
    assert plotted["rewind"]["x"].tolist() == [4000, 3200, 2560]


def test_at_trt_is_found_by_its_parts_in_an_omp_experiment(tmp_path):
    csv = write(
        summary({"lth": [90, 85, 70], "skip+swish+gradinit+ls": [91, 88, 80]}, 1, method="omp"),
        tmp_path / "summary.csv",
    )
    plotted = draw_summary_figure("figA13_omp", csv, [tmp_path / "f.png"], title="omp")
    assert list(plotted) == ["lth", "skip+swish+gradinit+ls", "dense"]
    assert plotted["skip+swish+gradinit+ls"]["mean"].tolist() == pytest.approx([91, 88, 80])
    imp = write(summary({"lth": [90, 85, 70], "at+trt": [91, 88, 80]}, 1, method="imp"), tmp_path / "imp.csv")
    with pytest.raises(LthError, match="figA13_omp is drawn for prune method omp; the CSV's rows are imp"):
        draw_summary_figure("figA13_omp", imp, [tmp_path / "g.png"])


def test_a_figure_names_what_is_wrong(tmp_path):
    csv = write(summary({"lth": [91, 88, 80], "rewind": [90, 89, 85]}, 1), tmp_path / "summary.csv")
    out = [tmp_path / "f.png"]
    with pytest.raises(LthError, match=r"fig1a_skip: needs variants lth and skip; the CSV has lth, rewind, not skip"):
        draw_summary_figure("fig1a_skip", csv, out)
    with pytest.raises(LthError, match="figure 'fig6' does not exist; choose one of fig1a_skip"):
        draw_summary_figure("fig6", csv, out)
    with pytest.raises(LthError, match="--x: 'flops' is not allowed; choose one of: sparsity, nonzero_params"):
        draw_summary_figure("fig4a_at_trt", csv, out, x="flops")
    with pytest.raises(LthError, match=r"the suffix '\.jpg' is not allowed"):
        draw_summary_figure("fig4a_at_trt", csv, [tmp_path / "f.jpg"])
    write(summary({"lth": [91, 88, 80], "rewind": [90, 89, 85]}, 1).drop(columns="test_acc_pct"), tmp_path / "bad.csv")
    with pytest.raises(LthError, match="lacks the column 'test_acc_pct'"):
        draw_summary_figure("fig4a_at_trt", tmp_path / "bad.csv", out)
    both = pd.concat([summary({"lth": [1, 1, 1]}, 1, experiment=name) for name in ("a", "b")])
    with pytest.raises(LthError, match="holds 2 experiments"):
        draw_summary_figure("fig4a_at_trt", write(both, tmp_path / "all.csv"), out)
    assert not (tmp_path / "f.png").exists()


def test_lth_plot_keeps_every_variant_and_draws_dense_baselines(tmp_path):
    csv = write(
        summary({"lth": [91, 88, 80], "skip": [90, 89, 85]}, 3, baselines={"skip": 89}), tmp_path / "summary.csv"
    )
    plotted = plot_accuracy_vs_sparsity(csv, [tmp_path / "all.png"])
    assert list(plotted) == ["lth", "skip", "dense", "dense+skip"]
    assert plotted["skip"]["mean"].tolist() == pytest.approx([90, 89, 85])
    assert plotted["lth"]["std"].tolist() == pytest.approx([1, 1, 1])
    assert (tmp_path / "all.png").stat().st_size > 0


# ---------------------------------------------------------------------------------------------
# Mask sources: lth plot per source, any_mask, and the other figures on the primary source only

MAGNITUDE = {"lth": [91, 88, 80], "skip": [90, 89, 85], "at+trt": [92, 90, 86]}
RANDOM = {"lth": [60, 50, 40], "skip": [65, 55, 45], "at+trt": [70, 62, 58]}  # far below magnitude's


def test_lth_plot_draws_a_panel_per_mask_source(tmp_path, saved):
    csv = write(sourced({"magnitude": MAGNITUDE, "random": RANDOM}, 3, baselines={"skip": 89}), tmp_path / "s.csv")
    assert sources_of(pd.read_csv(csv)) == ["magnitude", "random"]
    plotted = plot_accuracy_vs_sparsity(csv, [tmp_path / "all.png"], title="exp")
    assert list(plotted) == [
        "lth (magnitude)",
        "skip (magnitude)",
        "at+trt (magnitude)",
        "lth (random)",
        "skip (random)",
        "at+trt (random)",
        "dense",
        "dense+skip",
    ]
    for source, curves in (("magnitude", MAGNITUDE), ("random", RANDOM)):
        for variant, nominal in curves.items():
            frame = plotted[f"{variant} ({source})"]
            assert frame["level"].tolist() == [1, 2, 3] and frame["mean"].tolist() == pytest.approx(nominal)
            assert frame["std"].tolist() == pytest.approx([1, 1, 1]) and frame["seeds"].tolist() == [3, 3, 3]
    assert plotted["dense"]["mean"].item() == pytest.approx(90)
    fig = saved[0]
    assert [ax.get_title() for ax in fig.axes] == ["magnitude", "random"]
    assert fig.get_suptitle() == (
        "exp: test accuracy vs sparsity, every variant\nResNet-18 (width 4) on cifar10, 30 epochs, 3 seeds (mean ± std)"
    )
    assert fig.axes[0].get_shared_y_axes().joined(fig.axes[0], fig.axes[1])
    colors = [{line.get_label(): line.get_color() for line in ax.get_lines()} for ax in fig.axes]
    assert colors[0]["lth"] == colors[1]["lth"] != colors[0]["skip"] == colors[1]["skip"]  # a colour per variant
    for ax, colour in zip(fig.axes, colors):  # every panel: every variant and both dense lines
        assert {"lth", "skip", "at+trt"} <= set(colour)
        assert sum(label.startswith(("dense (", "dense+skip (")) for label in colour) == 2
        assert colour[next(label for label in colour if label.startswith("dense+skip"))] == colour["skip"]


def test_lth_plot_draws_a_curve_per_variant_and_mask_source(tmp_path, saved):
    csv = write(sourced({"magnitude": MAGNITUDE, "random": RANDOM}, 1), tmp_path / "s.csv")
    plotted = plot_accuracy_vs_sparsity(csv, [tmp_path / "all.png"], mask_sources="curves")
    assert plotted["at+trt (random)"]["mean"].tolist() == pytest.approx(RANDOM["at+trt"])
    assert plotted["lth (magnitude)"]["mean"].tolist() == pytest.approx(MAGNITUDE["lth"])
    (ax,) = saved[0].axes
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert {f"{variant} ({source})" for variant in MAGNITUDE for source in ("magnitude", "random")} <= set(lines)
    assert lines["lth (magnitude)"].get_color() == lines["lth (random)"].get_color()  # colour by variant
    assert lines["lth (magnitude)"].get_color() != lines["skip (magnitude)"].get_color()
    assert lines["lth (magnitude)"].get_linestyle() != lines["lth (random)"].get_linestyle()  # style by source
    assert lines["lth (random)"].get_linestyle() == lines["skip (random)"].get_linestyle()
    assert all(
        lines[f"{variant} ({source})"].get_linestyle() != "--"  # dashed: the dense lines only
        for variant in MAGNITUDE
        for source in ("magnitude", "random")
    )
    with pytest.raises(LthError, match="--mask-sources: 'grid' is not allowed; choose one of: panels, curves"):
        plot_accuracy_vs_sparsity(csv, [tmp_path / "x.png"], mask_sources="grid")


@pytest.mark.parametrize("column", [True, False])
def test_lth_plot_of_one_mask_source_is_unchanged(tmp_path, saved, column):
    table = sourced({"magnitude": MAGNITUDE}, 1, baselines={"skip": 89})
    csv = write(table if column else table.drop(columns="mask_source"), tmp_path / "s.csv")
    for layout in ("panels", "curves"):
        plotted = plot_accuracy_vs_sparsity(csv, [tmp_path / f"{layout}.png"], title="t", mask_sources=layout)
        assert list(plotted) == ["lth", "skip", "at+trt", "dense", "dense+skip"]
        assert plotted["skip"]["mean"].tolist() == pytest.approx(MAGNITUDE["skip"])
    assert [len(fig.axes) for fig in saved] == [1, 1]
    assert (
        saved[0].axes[0].get_title() == "t: test accuracy vs sparsity, every variant\nResNet-18 (width 4) on "
        "cifar10, 30 epochs, 1 seed"
    )


def test_lth_plot_mask_sources_on_the_command_line(tmp_path, capsys):
    csv = write(sourced({"magnitude": MAGNITUDE, "random": RANDOM}, 1), tmp_path / "s.csv")
    out = tmp_path / "all.png"
    assert main(["plot", "--summary", str(csv), "--out", str(out), "--mask-sources", "curves"]) == 0
    assert out.stat().st_size > 0
    with pytest.raises(SystemExit):
        main(["plot", "--summary", str(csv), "--out", str(tmp_path / "b.png"), "--mask-sources", "grid"])
    assert "invalid choice: 'grid'" in capsys.readouterr().err


def test_any_mask_draws_vanilla_and_at_trt_per_mask_source(tmp_path, saved):
    snip = {"lth": [80, 75, 70], "skip+swish+gradinit+ls": [85, 84, 83]}  # at+trt spelt out
    csv = write(sourced({"magnitude": MAGNITUDE, "random": RANDOM, "snip": snip}, 3), tmp_path / "s.csv")
    plotted = draw_summary_figure("any_mask", csv, [tmp_path / "any.png", tmp_path / "any.pdf"], title="exp")
    assert list(plotted) == [
        "lth (magnitude)",
        "at+trt (magnitude)",
        "dense",
        "lth (random)",
        "at+trt (random)",
        "lth (snip)",
        "skip+swish+gradinit+ls (snip)",
    ]  # not skip
    for source, curves in (("magnitude", MAGNITUDE), ("random", RANDOM), ("snip", snip)):
        for variant in ("lth", "skip+swish+gradinit+ls" if source == "snip" else "at+trt"):
            assert plotted[f"{variant} ({source})"]["mean"].tolist() == pytest.approx(curves[variant])
    assert plotted["dense"]["mean"].item() == pytest.approx(90)
    fig = saved[0]
    assert [ax.get_title() for ax in fig.axes] == ["magnitude", "random", "snip"]
    assert fig.get_suptitle() == (
        "exp: AT+TRT vs vanilla on the masks of each mask source\n"
        "ResNet-18 (width 4) on cifar10, 30 epochs, 3 seeds (mean ± std)"
    )
    for ax in fig.axes:  # two curves and the dense line in each panel, the same colours
        labels = [line.get_label() for line in ax.get_lines()]
        assert len(labels) == 3 and labels[2].startswith("dense (90.00% ± 1.00)")
    assert len({ax.get_lines()[0].get_color() for ax in fig.axes}) == 1
    assert main(["figure", "any_mask", "--csv", str(csv), "--out", str(tmp_path / "cli.png")]) == 0


def test_any_mask_names_what_is_missing(tmp_path):
    out = [tmp_path / "f.png"]
    one = sourced({"magnitude": MAGNITUDE}, 1)
    with pytest.raises(LthError, match="any_mask: needs at least 2 mask sources; the CSV has magnitude$"):
        draw_summary_figure("any_mask", write(one, tmp_path / "one.csv"), out)
    with pytest.raises(
        LthError,
        match=re.escape("needs at least 2 mask sources; the CSV has one, without a label (no column 'mask_source')"),
    ):
        draw_summary_figure("any_mask", write(one.drop(columns="mask_source"), tmp_path / "old.csv"), out)
    lacking = sourced({"magnitude": MAGNITUDE, "random": {"lth": RANDOM["lth"], "skip": RANDOM["skip"]}}, 1)
    with pytest.raises(
        LthError,
        match=re.escape(
            "any_mask: needs variants lth and at+trt; the mask source random of the CSV has lth, skip, not at+trt"
        ),
    ):
        draw_summary_figure("any_mask", write(lacking, tmp_path / "lacking.csv"), out)
    mixed = sourced({"magnitude": MAGNITUDE, "random": RANDOM}, 1)
    mixed.loc[mixed["variant"].eq("skip") & mixed["mask_source"].eq("random"), "mask_source"] = None
    with pytest.raises(LthError, match=r"3 sparse rows \(variants skip\) have no mask_source while others have one"):
        draw_summary_figure("any_mask", write(mixed, tmp_path / "mixed.csv"), out)
    assert not (tmp_path / "f.png").exists()


def test_paper_figures_and_grids_draw_the_primary_mask_source_only(tmp_path):
    primary = write(summary(MAGNITUDE, 3, baselines={"skip": 89}), tmp_path / "primary.csv")
    both = write(sourced({"magnitude": MAGNITUDE, "random": RANDOM}, 3, baselines={"skip": 89}), tmp_path / "s.csv")
    for name in ("fig4a_at_trt", "fig1a_skip"):
        alone = draw_summary_figure(name, primary, [tmp_path / "a.png"])
        drawn = draw_summary_figure(name, both, [tmp_path / "b.png"])
        assert list(drawn) == list(alone)
        for label in alone:
            pd.testing.assert_frame_equal(drawn[label], alone[label])
    # The primary source is the first among the sparse rows, whatever its name.
    first_random = write(sourced({"random": RANDOM, "magnitude": MAGNITUDE}, 1), tmp_path / "r.csv")
    assert draw_summary_figure("fig4a_at_trt", first_random, [tmp_path / "c.png"])["lth"][
        "mean"
    ].tolist() == pytest.approx(RANDOM["lth"])
    grid = pd.concat(
        [
            sourced({"magnitude": MAGNITUDE, "random": RANDOM}, 1, experiment="a"),
            sourced({"snip": RANDOM, "magnitude": MAGNITUDE}, 1, experiment="b", model="vgg16"),
        ]
    )
    plotted = draw_grid_figure("fig6_grid", write(grid, tmp_path / "all.csv"), [tmp_path / "g.png"])
    assert plotted["resnet18", "cifar10"]["at+trt"]["mean"].tolist() == pytest.approx(MAGNITUDE["at+trt"])
    assert plotted["vgg16", "cifar10"]["at+trt"]["mean"].tolist() == pytest.approx(RANDOM["at+trt"])  # b's primary


# ---------------------------------------------------------------------------------------------
# Grids across experiments


def grid_table() -> pd.DataFrame:
    """Two experiments with both series (3 seeds and 1 seed), one without at+trt."""
    a = summary({"lth": [91, 88, 80], "at+trt": [92, 90, 86]}, 3, experiment="r18-c10")
    # Seed-dependent gains in a: at+trt's seed k gets k more points, so the gains are 1+k, 2+k, 6+k.
    a.loc[a["variant"] == "at+trt", "test_acc_pct"] += a.loc[a["variant"] == "at+trt", "seed"]
    b = summary(
        {"lth": [71, 68, 60], "skip+swish+gradinit+ls": [70, 69, 65]},
        1,
        dense=75,
        experiment="vgg-c100",
        model="vgg16",
        dataset="cifar100",
    )
    c = summary({"lth": [1, 1, 1]}, 1, experiment="lth-only", model="mobilenet")
    return pd.concat([a, b, c])


def test_grid_panels_per_experiment(tmp_path, saved):
    csv = write(grid_table(), tmp_path / "summary.csv")
    plotted = draw_grid_figure("fig6_grid", csv, [tmp_path / "fig6.png", tmp_path / "fig6.pdf"])
    assert (tmp_path / "fig6.png").stat().st_size > 0 and (tmp_path / "fig6.pdf").stat().st_size > 0
    assert list(plotted) == [("resnet18", "cifar10"), ("vgg16", "cifar100")]
    assert list(plotted["resnet18", "cifar10"]) == ["lth", "at+trt", "dense"]
    assert list(plotted["vgg16", "cifar100"]) == ["lth", "skip+swish+gradinit+ls", "dense"]
    assert plotted["resnet18", "cifar10"]["at+trt"]["mean"].tolist() == pytest.approx([93, 91, 87])  # + mean seed 1
    assert plotted["resnet18", "cifar10"]["lth"]["std"].tolist() == pytest.approx([1, 1, 1])
    assert plotted["vgg16", "cifar100"]["dense"]["mean"].item() == pytest.approx(75)
    axes = saved[0].axes  # rows cifar10, cifar100; columns resnet18, vgg16: two panels, two hidden
    visible = [ax for ax in axes if ax.get_visible()]
    assert len(axes) == 4 and [ax.get_title() for ax in visible] == [
        "ResNet-18 (width 4) on cifar10",
        "VGG-16 (width 4) on cifar100",
    ]
    assert saved[0].get_suptitle() == (
        "Fig. 6: AT+TRT vs vanilla per architecture and dataset\n30 epochs, 3 seeds (mean ± std)"
    )
    assert [bands(ax) for ax in visible] == [2 + 1, 0]  # bands only in the 3-seed experiment


def test_the_gain_grid_averages_per_seed_differences(tmp_path):
    csv = write(grid_table(), tmp_path / "summary.csv")
    plotted = draw_grid_figure("fig7_grid", csv, [tmp_path / "fig7.png"], x="nonzero_params")
    gain = plotted["resnet18", "cifar10"]["gain"]
    # Per-seed gains at level 1: 1, 2, 3 -> mean 2, std 1; likewise 3 and 7 at levels 2 and 3.
    assert gain["mean"].tolist() == pytest.approx([2, 3, 7]) and gain["std"].tolist() == pytest.approx([1, 1, 1])
    assert gain["x"].tolist() == [810, 650, 522]  # at+trt's parameters
    one_seed = plotted["vgg16", "cifar100"]["gain"]
    assert one_seed["mean"].tolist() == pytest.approx([-1, 1, 5]) and one_seed["std"].isna().all()


def test_grid_experiments_sharing_a_model_and_dataset_get_a_row_each(tmp_path):
    table = pd.concat(
        [
            summary({"lth": [91, 88, 80], "at+trt": [92, 90, 86]}, 1, experiment=name, method=name)
            for name in ("imp", "omp")
        ]
    )
    plotted = draw_grid_figure("fig6_grid", write(table, tmp_path / "summary.csv"), [tmp_path / "g.png"])
    assert list(plotted) == [("resnet18", "cifar10 (imp)"), ("resnet18", "cifar10 (omp)")]
    with pytest.raises(
        LthError, match=re.escape("needs an experiment with variants lth and at+trt; none of a has both")
    ):
        draw_grid_figure(
            "fig7_grid", write(summary({"lth": [1, 1, 1]}, 1, experiment="a"), tmp_path / "x.csv"), [tmp_path / "h.png"]
        )
    with pytest.raises(LthError, match="lacks the column 'experiment'"):
        draw_grid_figure("fig7_grid", write(summary({"lth": [1, 1, 1]}, 1), tmp_path / "y.csv"), [tmp_path / "h.png"])


# ---------------------------------------------------------------------------------------------
# lth figure


def test_lth_figure_draws_accuracy_figures_and_grids(tmp_path):
    csv = write(summary({"lth": [91, 88, 80], "at+trt": [92, 90, 86]}, 1), tmp_path / "summary.csv")
    outputs = [str(tmp_path / "fig4a.png"), str(tmp_path / "fig4a.pdf")]
    assert main(["figure", "fig4a_at_trt", "--csv", str(csv), "--out", *outputs, "--x", "nonzero_params"]) == 0
    assert all((tmp_path / name).stat().st_size > 0 for name in ("fig4a.png", "fig4a.pdf"))
    grid = write(grid_table(), tmp_path / "all.csv")
    assert main(["figure", "fig7_grid", "--csv", str(grid), "--out", str(tmp_path / "fig7.pdf")]) == 0
    assert (tmp_path / "fig7.pdf").stat().st_size > 0
    assert main(["figure", "fig7_grid", "--csv", str(grid), "--out", str(tmp_path / "fig7.pdf")]) == 2  # no --force


def test_lth_figure_rejects_options_and_names_that_do_not_fit(tmp_path, capsys):
    csv = write(summary({"lth": [91, 88, 80], "at+trt": [92, 90, 86]}, 1), tmp_path / "summary.csv")
    out = str(tmp_path / "f.png")
    assert main(["figure", "fig4a_at_trt", "--csv", str(csv), "--out", out, "--epoch", "3"]) == 2
    assert "--epoch: fig4a_at_trt draws accuracy from a summary.csv" in capsys.readouterr().err
    assert main(["figure", "fig2_hessian", "--csv", str(csv), "--out", out, "--x", "nonzero_params"]) == 2
    assert "--x: fig2_hessian is an analysis figure and takes no --x" in capsys.readouterr().err
    assert main(["figure", "fig1a_skip", "--csv", str(csv), "--out", out]) == 2
    assert "fig1a_skip: needs variants lth and skip; the CSV has lth, at+trt, not skip" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["figure", "fig4a_at_trt", "--csv", str(csv), "--out", out, "--x", "flops"])
    assert "invalid choice: 'flops'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["figure", "fig99", "--csv", str(csv), "--out", out])
    err = capsys.readouterr().err
    assert all(name in err for name in [*SUMMARY_FIGURES, *GRID_FIGURES, "fig2_hessian", "tableA1_activation_sparsity"])
    assert not (tmp_path / "f.png").exists()


# ---------------------------------------------------------------------------------------------
# One vocabulary: one colour per variant, titles that say what was trained, the units of the CSV


def line_colors(fig) -> dict[str, str]:
    """Each labelled line's colour (as hex) in every axes of `fig`, by label."""
    from matplotlib.colors import to_hex

    return {
        line.get_label(): to_hex(line.get_color())
        for ax in fig.axes
        for line in ax.get_lines()
        if not line.get_label().startswith("_")
    }


def test_a_variant_has_one_colour_in_every_figure(tmp_path, saved):
    from matplotlib.colors import to_hex

    curves = {"lth": [91, 88, 80], "skip+swish+gradinit+ls": [92, 90, 86], "rewind": [90, 89, 85]}
    csv = write(summary(curves, 1), tmp_path / "summary.csv")
    plot_accuracy_vs_sparsity(csv, [tmp_path / "all.png"])
    draw_summary_figure("fig4a_at_trt", csv, [tmp_path / "fig4a.png"])
    draw_summary_figure("fig4b_rewinding", csv, [tmp_path / "fig4b.png"])
    grid = summary({"lth": [91, 88, 80], "at+trt": [92, 90, 86]}, 1, experiment="a")
    draw_grid_figure("fig6_grid", write(grid, tmp_path / "grid.csv"), [tmp_path / "grid.png"])
    every, fig4a, fig4b, fig6 = (line_colors(fig) for fig in saved)
    red = to_hex(style.NAMED_COLORS["at+trt"])
    # at+trt is red whatever its spelling and whichever figure, not the next colour of a cycle
    assert (
        every["skip+swish+gradinit+ls"]
        == fig4a["skip+swish+gradinit+ls"]
        == fig4b["skip+swish+gradinit+ls"]
        == fig6["at+trt"]
        == red
    )
    assert every["lth"] == fig4a["lth"] == fig6["lth"] == to_hex(style.NAMED_COLORS["lth"])
    assert every["rewind"] == fig4b["rewind"] != red
    assert len(set(every.values())) == len(every)  # three variants and dense: four colours


def test_variant_colors_are_keyed_by_what_a_variant_resolves_to():
    colors = style.variant_colors(["dense", "dense+skip", "skip", "at+trt", "trt+at", "swish+mish+ls", "reinit+ls"])
    assert colors["dense"] == "black" and colors["dense+skip"] == colors["skip"] == style.NAMED_COLORS["skip"]
    assert colors["at+trt"] == colors["trt+at"] == style.NAMED_COLORS["at+trt"]
    # Variants without a colour of their own get a spare one, never a named variant's, never shared in a figure.
    spares = [colors["swish+mish+ls"], colors["reinit+ls"]]
    assert len(set(spares)) == 2 and not set(spares) & set(style.NAMED_COLORS.values())
    assert style.variant_colors(["reinit+ls"])["reinit+ls"] == colors["reinit+ls"]  # the same in another figure


def test_titles_say_model_data_epochs_and_seeds_not_the_file_name(tmp_path, saved):
    csv = write(
        summary(
            {"lth": [91, 88, 80], "at+trt": [92, 90, 86], "rewind": [90, 89, 85]},
            3,
            model="vgg16",
            dataset="cifar100",
            epochs=12,
        ),
        tmp_path / "summary.csv",
    )
    draw_summary_figure("fig4a_at_trt", csv, [tmp_path / "a.png"], title="exp")
    draw_summary_figure("fig4b_rewinding", csv, [tmp_path / "b.png"])
    (a,), (b,) = (fig.axes for fig in saved)
    # Rewound rows trained 9 of the 12 epochs, from epoch 3: the schedule is 12 epochs for every row.
    assert a.get_title() == (
        "exp: Fig. 4a: architecture (AT) and training-recipe (TRT) tweaks vs vanilla\n"
        "VGG-16 (width 4) on cifar100, 12 epochs, 3 seeds (mean ± std)"
    )
    assert b.get_title().startswith("Fig. 4b: AT+TRT vs weight rewinding\nVGG-16 (width 4) on cifar100")
    assert "fig4a_at_trt" not in a.get_title() and all(spec.heading for spec in SUMMARY_FIGURES.values())


def test_a_summary_in_fractions_from_an_older_lth_draws_the_same_figure(tmp_path):
    table = summary({"lth": [91, 88, 80], "at+trt": [92, 90, 86]}, 3)
    old = table.assign(sparsity=table["sparsity_pct"] / 100, test_acc=table["test_acc_pct"] / 100)
    old = old.drop(columns=["sparsity_pct", "test_acc_pct"])
    new = draw_summary_figure("fig4a_at_trt", write(table, tmp_path / "new.csv"), [tmp_path / "new.png"])
    legacy = draw_summary_figure("fig4a_at_trt", write(old, tmp_path / "old.csv"), [tmp_path / "old.png"])
    assert list(legacy) == list(new)
    for label in new:
        pd.testing.assert_frame_equal(legacy[label], new[label])
