"""End to end: the `analysis` section adds cached analysis jobs to a finished experiment, never
retrains or touches its runs, and collects one CSV per analysis."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from test_workflow import tiny_config
from workflow_helpers import mtimes, planned_jobs, snakemake, write_config

pytestmark = pytest.mark.workflow

ANALYSIS = {
    "activations": {"variants": ["lth"], "levels": [0, 2]},
    "hessian": {"levels": [1], "sample": 20, "max_iter": 20},
    "hessian_per_epoch": {"variants": ["lth"], "levels": [2], "sample": 20, "max_iter": 5},
    "perturbation": {"variants": ["lth"], "levels": [2], "sample": 20, "max_iter": 10, "points": 3, "test_sample": 20},
    "landscape": {"variants": ["lth"], "levels": [0.36], "epochs": [2, "final"], "points": 3, "sample": 20},
    "input_landscape": {"variants": ["lth"], "levels": [0], "points": 3, "sample": 20},
}
TABLES = ["activation_sparsity", "hessian", "hessian_per_epoch", "perturbation", "landscape", "input_landscape"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, npz_root) -> Path:
    """The tiny experiment, trained without any analysis."""
    workdir = tmp_path_factory.mktemp("analysis")
    snakemake(workdir, write_config(workdir, "tiny", tiny_config(npz_root)))
    return workdir


def test_analyses_of_a_finished_experiment_run_alone_and_touch_no_run(finished, npz_root):
    runs = finished / "results" / "runs"
    before = mtimes([path for path in runs.rglob("*") if path.is_file()])
    config = write_config(finished, "analysed", tiny_config(npz_root, experiment="analysed", analysis=ANALYSIS))
    assert planned_jobs(finished, config) == {
        "analyze": 5,  # activations x2, hessian x2 (lth and rewind at level 1), perturbation
        "analyze_grid_part": 3,
        "merge_grid": 3,  # landscape at epochs 2 and 3, input landscape
        "snapshot": 1,  # epoch 2 of the level-2 run, which that run did not keep: re-trained
        "track_hessian": 1,
        "collect_analysis": 6,
        "plot_analysis": 6,
        "tabulate_analysis": 1,
        "aggregate": 1,
        "tickets": 1,
        "figure_settings": 1,
        "plot_accuracy_vs_sparsity": 1,
        "all": 1,
    }
    snakemake(finished, config)
    assert mtimes(list(before)) == before
    assert planned_jobs(finished, config) == {}

    tables = {name: pd.read_csv(finished / "results" / "analysed" / "analysis" / f"{name}.csv") for name in TABLES}
    for name, table in tables.items():
        assert list(table.columns[:10]) == [
            "seed",
            "variant",
            "level",
            "sparsity_pct",
            "epoch",
            "run",
            "model",
            "width",
            "dataset",
            "train_epochs",
        ], name
    activations = tables["activation_sparsity"]
    assert set(zip(activations["variant"], activations["level"])) == {("dense", 0), ("lth", 2)}
    assert sorted(set(activations["threshold"])) == [0, 0.001, 0.01]  # the default, counted in one job per run
    assert activations.loc[activations["level"] == 2, "sparsity_pct"].iloc[0] == pytest.approx(36, abs=0.1)
    hessian = tables["hessian"]
    assert sorted(hessian["variant"]) == ["lth", "rewind"] and (hessian["sample"] == 20).all()
    per_epoch = tables["hessian_per_epoch"]
    assert list(per_epoch["epoch"]) == [1, 2, 3] and all(math.isfinite(value) for value in per_epoch["eigenvalue"])
    landscape = tables["landscape"]
    assert sorted(set(landscape["epoch"])) == [2, 3] and len(landscape) == 2 * 9
    assert len(tables["input_landscape"]) == 9 and set(tables["input_landscape"]["variant"]) == {"dense"}
    assert len(tables["perturbation"]) == 3
    figures = finished / "results" / "analysed" / "figures"
    for stem in (
        "tableA1_activation_sparsity",
        "fig2_hessian",
        "figA12_hessian_per_epoch",
        "fig10_perturbation",
        "fig5_landscape_epoch2",
        "fig11_landscape_final",
        "fig11_input_landscape",
    ):
        assert (figures / f"{stem}.png").stat().st_size > 1000 and (figures / f"{stem}.pdf").is_file(), stem
    assert pd.read_csv(figures / "tableA1_activation_sparsity.csv")["threshold"].unique().tolist() == [0, 0.001, 0.01]

    def plans(name: str, thresholds: list) -> dict[str, int]:
        analysis = {**ANALYSIS, "activations": {**ANALYSIS["activations"], "thresholds": thresholds}}
        return planned_jobs(
            finished, write_config(finished, name, tiny_config(npz_root, experiment="analysed", analysis=analysis))
        )

    assert plans("reordered", [0.01, 0.0, 1e-3]) == {}  # the same thresholds: the same files, nothing to do
    assert plans("other", [0, 1e-4]) == {  # another list: a new file per run, the old ones untouched
        "analyze": 2,
        "collect_analysis": 1,
        "tabulate_analysis": 1,
        "all": 1,
    }


def test_a_grid_split_into_jobs_gives_the_numbers_of_one_job(finished, npz_root):
    def landscape(jobs: int) -> pd.DataFrame:
        analysis = {"landscape": {"variants": ["lth"], "levels": [1], "points": 3, "sample": 20, "jobs": jobs}}
        config = write_config(
            finished, f"jobs{jobs}", tiny_config(npz_root, experiment=f"jobs{jobs}", analysis=analysis)
        )
        snakemake(finished, config)
        return pd.read_csv(finished / "results" / f"jobs{jobs}" / "analysis" / "landscape.csv")

    one, split = landscape(1), landscape(4)
    assert one["run"].tolist() == split["run"].tolist()
    pd.testing.assert_frame_equal(one.drop(columns="run"), split.drop(columns="run"), check_exact=True)
