"""End to end: the Snakemake workflow caches, reuses and resumes work as documented."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from workflow_helpers import REPO, SNAKEFILE, mtimes, planned_jobs, snakemake, write_config

pytestmark = pytest.mark.workflow


def tiny_config(shared_data: Path, **changes) -> dict:
    config = {
        "experiment": "tiny",
        "seeds": [0],
        "threads": 1,
        "device": "cpu",
        "model": {"name": "resnet18", "width": 4},
        "data": {"name": "npz", "root": str(shared_data / "cifar10-mini"), "subset_per_class": 12},
        "train": {"epochs": 2, "batch_size": 32},
        "prune": {"method": "imp", "levels": 2},
        "save_epochs": [1],
        "rewind_epoch": 1,
        "variants": ["lth", "rewind"],
        "resources": {"train": {"mem_mb": 1000, "runtime": 10, "gpu": 1}},
    }
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            config[section] = {**config[section], field: value}
        else:
            config[key] = value
    return config


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, shared_data):
    """The tiny experiment, run once; tests below leave it complete again."""
    workdir = tmp_path_factory.mktemp("workflow")
    config = write_config(workdir, "tiny", tiny_config(shared_data))
    snakemake(workdir, config)
    return workdir, config


def summaries(workdir: Path) -> list[Path]:
    return sorted((workdir / "results" / "runs").glob("*/summary.json"))


def test_every_rule_runs_and_the_figure_exists(tiny):
    workdir, _ = tiny
    table = pd.read_csv(workdir / "results" / "tiny" / "summary.csv")
    assert sorted(zip(table["variant"], table["level"])) == [
        ("dense", 0), ("lth", 1), ("lth", 2), ("rewind", 1), ("rewind", 2)]
    sparsity = table.set_index(["variant", "level"])["sparsity"]
    assert sparsity["lth", 1] == pytest.approx(0.2, abs=1e-3)
    assert sparsity["rewind", 2] == pytest.approx(0.36, abs=1e-3)
    assert (table.loc[table["variant"] == "rewind", "epochs_trained"] == 1).all()
    for ext in ("png", "pdf"):
        assert (workdir / "results" / "tiny" / "figures" / f"accuracy_vs_sparsity.{ext}").stat().st_size > 1000
    runs = sorted((workdir / "results" / "runs").iterdir())
    assert [run.name.split("-")[0] for run in runs] == ["dense", "imp", "sparse", "sparse", "sparse", "sparse"]
    assert not list((workdir / "results" / "runs").glob("*/.resume"))
    for run in runs:
        if not run.name.startswith("imp"):
            assert (run / "hparams.yaml").exists()


def test_second_invocation_does_nothing(tiny):
    assert planned_jobs(*tiny) == {}


def test_deleting_one_retraining_output_reruns_only_that_job(tiny):
    workdir, config = tiny
    table = pd.read_csv(workdir / "results" / "tiny" / "summary.csv").set_index(["variant", "level"])
    leaf = Path(workdir / table.loc[("rewind", 2), "run"])  # nothing but the summary depends on it
    (leaf / "final.pt").unlink()
    assert planned_jobs(workdir, config) == {"sparse": 1, "aggregate": 1, "plot_accuracy_vs_sparsity": 1, "all": 1}
    others = mtimes([path for path in summaries(workdir) if path.parent != leaf])
    snakemake(workdir, config)
    assert (leaf / "final.pt").exists()
    assert mtimes(list(others)) == others


def test_experiment_differing_in_variants_reuses_dense_and_imp(tiny, shared_data):
    workdir, _ = tiny
    config = write_config(workdir, "variants", tiny_config(shared_data, experiment="tiny-variants",
                                                          variants=["rewind", "swish"]))
    # Only the new variant trains (one run per level); dense, masks and rewind runs are cached.
    assert planned_jobs(workdir, config) == {"sparse": 2, "aggregate": 1, "plot_accuracy_vs_sparsity": 1, "all": 1}


def test_changing_dense_epochs_writes_new_folders_and_keeps_old(tiny, shared_data):
    workdir, _ = tiny
    before = mtimes(summaries(workdir))
    config = write_config(workdir, "epochs", tiny_config(shared_data, experiment="tiny-epochs", train__epochs=3,
                                                        prune__levels=1, variants=["lth"]))
    assert planned_jobs(workdir, config) == {"init": 1, "dense": 1, "prune": 1, "sparse": 1, "aggregate": 1,
                                             "plot_accuracy_vs_sparsity": 1, "all": 1}
    snakemake(workdir, config)
    after = mtimes(summaries(workdir))
    assert {path: after[path] for path in before} == before
    assert len(after) == len(before) + 2  # a new dense run and a new sparse run
    new_dense = [p.parent for p in after if p not in before and p.parent.name.startswith("dense")]
    assert yaml.safe_load((new_dense[0] / "hparams.yaml").read_text())["train"]["epochs"] == 3


def test_killed_workflow_resumes_without_recomputing(tmp_path, shared_data):
    config = write_config(tmp_path, "kill", tiny_config(
        shared_data, experiment="kill", model={"name": "resnet18", "width": 8}, data__subset_per_class=60,
        train__epochs=8, prune__levels=1, variants=["lth"], save_epochs=[], rewind_epoch=0))
    command = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "-d", str(tmp_path), "--configfile",
               str(config), "--cores", "2"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    runs = tmp_path / "results" / "runs"
    try:
        deadline = time.monotonic() + 300
        while not list(runs.glob("dense-*/.resume/state.pt")):
            assert process.poll() is None, "snakemake ended before the dense run saved a resume state"
            assert time.monotonic() < deadline, "no resume state within 300 s"
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the whole job tree, as a node failure would
        process.wait()
    dense = next(runs.glob("dense-*"))
    assert not (dense / "summary.json").exists()
    finished = mtimes([dense / "init.pt"])
    snakemake(tmp_path, config, "--unlock")
    snakemake(tmp_path, config)
    assert mtimes(list(finished)) == finished
    assert "resuming" in (dense / "train.log").read_text()
    assert len(pd.read_csv(dense / "metrics.csv")) == 8
    assert (tmp_path / "results" / "kill" / "summary.csv").exists()


def test_paper_config_builds_the_full_dag(tmp_path):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    seeds, levels, variants = len(config["seeds"]), config["prune"]["levels"], len(config["variants"])
    assert "lth" in config["variants"]  # then the chain's own runs are the lth runs: no extra jobs
    expected = {"init": seeds, "dense": seeds, "prune": seeds * levels, "sparse": seeds * levels * variants,
                "aggregate": 1, "plot_accuracy_vs_sparsity": 1, "all": 1}
    assert planned_jobs(tmp_path, REPO / "config.yaml") == expected


@pytest.mark.parametrize("change, message", [
    ({"model": {"name": "resnet18", "width": -1}}, "width"),
    ({"train": {"lrr": 0.1}}, "lrr"),
    ({"variants": ["swish+mish"]}, "swish"),
    ({"variants": ["rewind"], "save_epochs": []}, "save_epochs"),
])
def test_bad_config_stops_before_any_job(tmp_path, shared_data, change, message):
    config = write_config(tmp_path, "bad", {**tiny_config(shared_data), **change})
    result = snakemake(tmp_path, config, "-n", check=False)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_lint_is_clean(tmp_path):
    result = snakemake(tmp_path, REPO / "configs" / "quickstart.yaml", "--lint", check=False)
    assert result.returncode == 0 and "Congratulations" in result.stdout + result.stderr, result.stdout
