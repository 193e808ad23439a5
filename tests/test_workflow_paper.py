"""End to end: a tiny two-experiment, two-seed config spends tickets with the paper's tweaks
(GradInit, label smoothing, distillation, skip branches, Swish, rewinding) and draws every paper
figure, both tables and the HTML report from the CSVs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from workflow_helpers import planned_jobs, snakemake, write_config

from lth.report.registry import draw_summary_figure

pytestmark = pytest.mark.workflow

KD = "skip+swish+gradinit+kd"  # AT+TRT with distillation in place of label smoothing (Figure 9)
VARIANTS = ["lth", "rewind", "skip", "swish", "ls", "gradinit", "at+trt", "at+trt+rewind", KD]
IMP_FIGURES = [
    "accuracy_vs_sparsity",
    "fig1a_skip",
    "fig1b_activations",
    "fig1c_ls",
    "fig1d_gradinit",
    "fig4a_at_trt",
    "fig4b_rewinding",
    "fig8_rewinding_combos",
    "fig9_ls_vs_kd",
    "fig2_hessian",
]
OMP_FIGURES = ["accuracy_vs_sparsity", "fig4a_at_trt", "figA13_omp"]
CONFIG = {
    "seeds": [0, 1],
    "threads": 1,
    "device": "cpu",
    "model": {"name": "resnet18", "width": 4},
    "data": {"name": "digits", "subset_per_class": 20},
    "train": {"epochs": 2, "batch_size": 32},
    "gradinit": {"iterations": 3, "batch_size": 32},
    "prune": {"method": "imp", "levels": [2]},  # the chain trains level 1; rows and figures show level 2
    "rewind_epoch": 1,
    "variants": VARIANTS,
    "dense_variants": ["skip"],
    "resources": {"train": {"mem_mb": 1000}},
    "experiments": {
        "imp": {"analysis": {"hessian": {"variants": ["lth"], "sample": 20}}},
        "omp": {"prune": {"method": "omp", "levels": [2]}, "variants": ["lth", "at+trt"], "dense_variants": []},
    },
}


@pytest.fixture(scope="module")
def paper(tmp_path_factory) -> tuple[Path, Path]:
    workdir = tmp_path_factory.mktemp("workflow-paper")
    config = write_config(workdir, "paper", CONFIG)
    snakemake(workdir, config)
    return workdir, config


def table(workdir: Path, experiment: str) -> pd.DataFrame:
    return pd.read_csv(workdir / "results" / experiment / "summary.csv")


def runs(workdir: Path, seed: int = 0) -> dict[str, Path]:
    rows = table(workdir, "imp").query(f"seed == {seed}")
    return {row.variant: workdir / row.run for row in rows.itertuples()}  # run paths are relative to workdir


def test_every_figure_and_table_of_both_experiments_is_drawn(paper):
    workdir, _ = paper
    results = workdir / "results"
    for experiment, figures in (("imp", IMP_FIGURES), ("omp", OMP_FIGURES)):
        drawn = sorted(path.name for path in (results / experiment / "figures").iterdir())
        assert drawn == sorted(f"{figure}.{ext}" for figure in figures for ext in ("png", "pdf")), experiment
        assert (results / experiment / "tickets.csv").stat().st_size > 0
    assert sorted(path.name for path in (results / "figures").iterdir()) == [
        "fig6_grid.pdf",
        "fig6_grid.png",
        "fig7_grid.pdf",
        "fig7_grid.png",
    ]
    both = pd.read_csv(results / "summary.csv")
    assert both.groupby("experiment").size().to_dict() == {
        "imp": len(table(workdir, "imp")),
        "omp": len(table(workdir, "omp")),
    }


def test_the_plan_says_why_a_figure_is_not_drawn(paper):
    workdir, config = paper
    output = snakemake(workdir, config, "-n").stderr
    assert "imp/figA13_omp" in output and "omp/fig1a_skip" in output


def test_summary_rows_say_what_was_trained(paper):
    workdir, _ = paper
    rows = table(workdir, "imp")
    assert len(rows) == 2 * (1 + 1 + len(VARIANTS))  # per seed: dense, its baseline, the variants at level 2
    assert rows.query("level > 0")["sparsity_pct"].tolist() == pytest.approx([36] * 2 * len(VARIANTS), abs=0.1)
    by_variant = rows.query("seed == 0").set_index(["variant", "level"])
    assert by_variant.loc[("at+trt+rewind", 2), "epochs_trained"] == 1
    assert by_variant.loc[("at+trt+rewind", 2), "rewind_epoch"] == 1
    assert tuple(by_variant.loc[("dense+skip", 0), ["skip", "activation", "gradinit"]]) == ("conv1x1", "relu", False)
    assert tuple(by_variant.loc[("at+trt", 2), ["skip", "activation", "gradinit", "label_smoothing"]]) == (
        "conv1x1",
        "swish",
        True,
        0.1,
    )
    assert by_variant.loc[(KD, 2), "kd_alpha"] == 0.9 and by_variant.loc[(KD, 2), "kd_reduction"] == "batchmean"
    assert set(rows["model"]) == {"resnet18"} and set(rows["dataset"]) == {"digits"}


def test_dense_baselines_start_from_the_tickets_theta0(paper):
    workdir, _ = paper
    folders = runs(workdir)
    for baseline in ("dense+skip",):
        record = yaml.safe_load((folders[baseline] / "hparams.yaml").read_text())
        assert workdir / record["init"]["path"] == folders["dense"] / "init.pt" and record["mask"] is None
    assert not (folders["dense+skip"] / "init.pt").exists()


def test_trt_runs_gradinit_and_label_smoothing_and_keep_the_mask(paper):
    workdir, _ = paper
    folders = runs(workdir)
    for variant in ("at+trt", "at+trt+rewind"):
        record = yaml.safe_load((folders[variant] / "hparams.yaml").read_text())
        mask = torch.load(workdir / record["mask"]["path"], weights_only=True)["masks"]
        summary = json.loads((folders[variant] / "summary.json").read_text())
        assert summary["gradinit"] is True
        assert (summary["label_smoothing"], summary["label_smoothing_form"]) == (0.1, "official")
        saved = json.loads((folders[variant] / "gradinit.json").read_text())
        assert len(saved["history"]) == 3 and saved["alphas"]
        weights = torch.load(folders[variant] / "final.pt", weights_only=True)["state_dict"]
        assert all(torch.all(weights[name][~keep] == 0) for name, keep in mask.items())
    assert not (folders["ls"] / "gradinit.json").exists()


def test_kd_distils_from_the_dense_run_of_the_same_seed(paper):
    workdir, _ = paper
    for seed in (0, 1):
        folders = runs(workdir, seed)
        record = yaml.safe_load((folders[KD] / "hparams.yaml").read_text())
        assert workdir / record["teacher"]["path"] == folders["dense"] / "final.pt"


def test_figures_plot_the_experiments_rows(paper, tmp_path):
    workdir, _ = paper
    plotted = draw_summary_figure("fig1a_skip", workdir / "results" / "imp" / "summary.csv", [tmp_path / "f.png"])
    rows = table(workdir, "imp")
    assert {"lth", "skip", "dense", "dense+skip"} <= set(plotted)
    for variant in ("lth", "skip"):
        expected = rows[rows["variant"] == variant].groupby("level")["test_acc_pct"]
        assert plotted[variant]["mean"].tolist() == pytest.approx(expected.mean().tolist())
        assert plotted[variant]["std"].tolist() == pytest.approx(expected.std().tolist())
        assert plotted[variant]["seeds"].tolist() == [2]


def test_skip_branches_add_weights_and_flops_that_the_figures_can_plot(paper, tmp_path):
    workdir, _ = paper
    rows = table(workdir, "imp").query("seed == 0").set_index("variant")
    assert rows.loc["skip", "total_params"] > rows.loc["lth", "total_params"]
    assert rows.loc["skip", "forward_flops"] == rows.loc["at+trt", "forward_flops"] > rows.loc["lth", "forward_flops"]
    assert (rows["forward_flops_effective"] <= rows["forward_flops"]).all()
    plotted = draw_summary_figure(
        "fig1a_skip", workdir / "results" / "imp" / "summary.csv", [tmp_path / "f.png"], x="forward_flops_effective"
    )
    flops = table(workdir, "imp").query("variant == 'skip'")["forward_flops_effective"].mean()
    assert plotted["skip"]["x"].tolist() == pytest.approx([flops])


def test_the_report_builds(paper):
    workdir, config = paper
    snakemake(workdir, config, "--report", "report.html")
    html = (workdir / "report.html").read_text(errors="replace")
    assert "fig4b_rewinding" in html and "tickets.csv" in html and "fig6_grid" in html


def test_a_figure_setting_redraws_only_figures_and_tickets(paper):
    workdir, _ = paper
    changed = json.loads(json.dumps(CONFIG))
    changed["figures"] = {"x": "nonzero_params"}
    jobs = planned_jobs(workdir, write_config(workdir, "changed", changed))
    assert set(jobs) == {
        "figure_settings",
        "plot_accuracy_vs_sparsity",
        "plot_paper_figure",
        "plot_grid",
        "tickets",
        "all",
    }, jobs
