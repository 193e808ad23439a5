"""End to end: the Snakemake workflow caches, reuses and resumes work as documented."""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from test_report import page_tables
from test_sources import make_tiny
from workflow_helpers import REPO, SNAKEFILE, dry_run_commands, mtimes, planned_jobs, snakemake, write_config

pytestmark = pytest.mark.workflow

# What a changed table reruns (the experiment's summary.csv, tickets.csv and figure), and what a new
# experiment adds: its figure settings file.
TABLE_JOBS = {"aggregate": 1, "tickets": 1, "plot_accuracy_vs_sparsity": 1, "all": 1}
NEW_EXPERIMENT = {**TABLE_JOBS, "figure_settings": 1}


def tiny_config(npz_root: Path, **changes) -> dict:
    config = {
        "experiment": "tiny",
        "seeds": [0],
        "threads": 1,
        "device": "cpu",
        "model": {"name": "resnet18", "width": 4},
        "data": {"name": "npz", "root": str(npz_root), "subset_per_class": 12},
        "train": {"epochs": 3, "batch_size": 32},
        "prune": {"method": "imp", "levels": 2},
        "rewind_epoch": 1,
        "variants": ["lth", "rewind"],
        "resources": {"train": {"mem_mb": 1000}},
    }
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            config[section] = {**config[section], field: value}
        else:
            config[key] = value
    return config


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, npz_root):
    """The tiny experiment, run once; tests below leave it complete again."""
    workdir = tmp_path_factory.mktemp("workflow")
    config = write_config(workdir, "tiny", tiny_config(npz_root))
    snakemake(workdir, config)
    return workdir, config


def tiny_dense(workdir: Path) -> Path:
    """The tiny experiment's dense run (other tests add dense runs of their own)."""
    table = pd.read_csv(workdir / "results" / "tiny" / "summary.csv")
    return workdir / table.loc[table["variant"] == "dense", "run"].item()


def summaries(workdir: Path) -> list[Path]:
    return sorted((workdir / "results" / "runs").glob("*/summary.json"))


def test_every_rule_runs_and_the_figure_exists(tiny):
    workdir, _ = tiny
    table = pd.read_csv(workdir / "results" / "tiny" / "summary.csv")
    assert sorted(zip(table["variant"], table["level"])) == [
        ("dense", 0),
        ("lth", 1),
        ("lth", 2),
        ("rewind", 1),
        ("rewind", 2),
    ]
    sparsity = table.set_index(["variant", "level"])["sparsity_pct"]
    assert sparsity["lth", 1] == pytest.approx(20, abs=0.1)
    assert sparsity["rewind", 2] == pytest.approx(36, abs=0.1)
    assert (table.loc[table["variant"] == "rewind", "epochs_trained"] == 2).all()
    for ext in ("png", "pdf"):
        assert (workdir / "results" / "tiny" / "figures" / f"accuracy_vs_sparsity.{ext}").stat().st_size > 1000
    runs = sorted(run for run in (workdir / "results" / "runs").iterdir() if not run.name.startswith("."))
    assert [run.name.split("-")[0] for run in runs] == ["dense", "imp", "sparse", "sparse", "sparse", "sparse"]
    assert not list((workdir / "results" / "runs").glob("*/.resume"))
    for run in runs:
        if not run.name.startswith("imp"):
            assert (run / "hparams.yaml").exists()


def test_second_invocation_does_nothing(tiny):
    assert planned_jobs(*tiny) == {}


def test_published_holds_only_links_into_the_store(tiny):
    """Snakemake sees links, never store files: deleting a job's outputs (before it runs, after it
    fails, --delete-all-output) can never delete a run another experiment uses."""
    workdir, _ = tiny
    results = (workdir / "results").resolve()
    published = [path for path in (results / "published").rglob("*") if not path.is_dir() or path.is_symlink()]
    assert len(published) > 20
    assert all(path.is_symlink() and not os.path.isabs(os.readlink(path)) for path in published)
    targets = {path.resolve().relative_to(results).parts[0] for path in published}
    assert targets <= {"runs", "data"} and all(path.resolve().is_file() for path in published)


def test_deleting_one_retraining_folder_reruns_only_that_job(tiny):
    workdir, config = tiny
    table = pd.read_csv(workdir / "results" / "tiny" / "summary.csv").set_index(["variant", "level"])
    leaf = Path(workdir / table.loc[("rewind", 2), "run"])  # nothing but the summary depends on it
    shutil.rmtree(leaf)
    assert planned_jobs(workdir, config) == {"train_sparse": 1, **TABLE_JOBS}
    others = mtimes([path for path in summaries(workdir) if path.parent != leaf])
    snakemake(workdir, config)
    assert (leaf / "final.pt").exists()
    assert mtimes(list(others)) == others


def test_experiment_differing_in_variants_reuses_dense_and_imp(tiny, npz_root):
    workdir, _ = tiny
    config = write_config(
        workdir, "variants", tiny_config(npz_root, experiment="tiny-variants", variants=["rewind", "swish"])
    )
    # Only the new variant trains (one run per level); dense, masks and rewind runs are cached.
    assert planned_jobs(workdir, config) == {"train_sparse": 2, **NEW_EXPERIMENT}


def test_changing_dense_epochs_writes_new_folders_and_keeps_old(tiny, npz_root):
    workdir, _ = tiny
    before = mtimes(summaries(workdir))
    config = write_config(
        workdir,
        "epochs",
        tiny_config(npz_root, experiment="tiny-epochs", train__epochs=4, prune__levels=1, variants=["lth"]),
    )
    assert planned_jobs(workdir, config) == {
        "init": 1,
        "train_dense": 1,
        "prune": 1,
        "train_sparse": 1,
        **NEW_EXPERIMENT,
    }
    snakemake(workdir, config)
    after = mtimes(summaries(workdir))
    assert {path: after[path] for path in before} == before
    assert len(after) == len(before) + 2  # a new dense run and a new sparse run
    new_dense = [p.parent for p in after if p not in before and p.parent.name.startswith("dense")]
    assert yaml.safe_load((new_dense[0] / "hparams.yaml").read_text())["train"]["epochs"] == 4


def run_weights(workdir: Path) -> dict[str, dict]:
    """Every checkpoint's weights and every mask's tensors, by path."""
    payloads = {
        path.relative_to(workdir).as_posix(): torch.load(path, weights_only=True)
        for path in sorted((workdir / "results" / "runs").rglob("*.pt"))
    }
    return {name: payload.get("state_dict", payload.get("masks")) for name, payload in payloads.items()}


def kill_during(workdir: Path, config: Path, stage: str, graceful: bool = False) -> tuple[list[Path], dict[Path, int]]:
    """Run the workflow until a `stage` run has saved a resume state, then stop it: SIGKILL its whole
    job tree (as a node failure would) and `--unlock`, or, `graceful`, SIGTERM snakemake alone, which
    lets the running jobs finish. The runs caught mid-training, and the files finished by then."""
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(SNAKEFILE),
        "-d",
        str(workdir),
        "--configfile",
        str(config),
        "--cores",
        "2",
    ]
    output = workdir / f"snakemake-{stage.rstrip('-*')}.out"
    with output.open("w") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    runs = workdir / "results" / "runs"
    try:
        deadline = time.monotonic() + 300
        while not list(runs.glob(f"{stage}/.resume/state.pt")):
            assert process.poll() is None, f"snakemake ended before a {stage} run saved a resume state"
            assert time.monotonic() < deadline, "no resume state within 300 s"
            time.sleep(0.05)
        caught = [path.parent.parent for path in runs.glob(f"{stage}/.resume/state.pt")]
        if graceful:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=300) != 0
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:  # stopped gracefully: nothing of the group is left
            pass
        process.wait()
    if graceful:  # the caught runs finished; Snakemake's error is explained as a stop
        text = output.read_text()
        assert "lth: the workflow was stopped (SIGTERM)" in text and "Error in rule" not in text, text
        assert "At least one job did not complete successfully" in text
        assert all((run / "summary.json").exists() for run in caught)
        interrupted = []
    else:  # two jobs run at once on 2 cores, so the kill may catch both mid-training
        interrupted = [path.parent.parent for path in runs.glob(f"{stage}/.resume/state.pt")]
        assert interrupted and not any((run / "summary.json").exists() for run in interrupted)
    finished = mtimes(
        [
            path
            for path in runs.rglob("*")
            if path.is_file()
            and ".resume" not in path.parts
            and ".references" not in path.parts
            and path.suffix in (".pt", ".json", ".csv", ".yaml")
        ]
    )
    if not graceful:
        snakemake(workdir, config, "--unlock")
    return interrupted, finished


def test_killed_workflow_resumes_to_the_uninterrupted_result(tmp_path, npz_root, tiny):
    """The tiny experiment in a folder of its own, killed while the dense network trains, rerun,
    stopped by SIGTERM while a ticket trains (the running jobs finish), rerun to the end: the same
    table and weights as the tiny experiment never interrupted, and nothing that had finished is
    recomputed. (One workflow, two stops: each stop point costs no run of its own.)"""
    config = write_config(tmp_path, "tiny", tiny_config(npz_root))
    interrupted, finished = [], {}
    for stage, graceful in (("dense-*", False), ("sparse-*", True)):
        runs, files = kill_during(tmp_path, config, stage, graceful)
        interrupted += runs
        finished = {**files, **finished}  # a file's first mtime: a later recompute would change it
    snakemake(tmp_path, config)
    assert mtimes(list(finished)) == finished
    assert interrupted and all("resuming" in (run / "train.log").read_text() for run in interrupted)
    # Snakemake deleted each killed job's log before its next attempt; the attempts log beside it kept both.
    for run in interrupted:
        attempts = (tmp_path / "results" / "logs" / "runs" / run.name / "train.attempts.log").read_text()
        assert attempts.count("==== attempt started") == 2 and "resuming" in attempts.split("==== attempt")[2]
    reference, _ = tiny
    timing = ["seconds"]
    assert (
        pd.read_csv(tmp_path / "results" / "tiny" / "summary.csv")
        .drop(columns=timing)
        .equals(pd.read_csv(reference / "results" / "tiny" / "summary.csv").drop(columns=timing))
    )
    # The tiny store also holds other tests' runs, and files they added to shared runs (rewind points).
    ours, theirs = run_weights(tmp_path), run_weights(reference)
    recorded = json.loads((reference / "results" / "runs" / ".references" / "tiny.json").read_text())["runs"]
    assert {name.split("/")[2] for name in ours} == set(recorded) and set(ours) <= set(theirs)
    for name in ours:
        assert all(torch.equal(ours[name][key], theirs[name][key]) for key in ours[name]), name


def test_paper_config_builds_the_full_dag(tmp_path):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    seeds, levels, variants = len(config["seeds"]), config["prune"]["levels"], len(config["variants"])
    assert "lth" in config["variants"]  # then the chain's own runs are the lth runs: no extra jobs
    baselines = len(config["dense_variants"])
    expected = {
        "init": seeds,
        "train_dense": seeds * (1 + baselines),
        "rewind_point": seeds,
        "prune": seeds * levels,
        "train_sparse": seeds * levels * variants,
        "aggregate": 1,
        "tickets": 1,
        "figure_settings": 1,
        "plot_accuracy_vs_sparsity": 1,
        "all": 1,
    }
    expected["data"] = 1  # CIFAR-100, fetched once for every seed
    # Every accuracy figure but Figure A13 (OMP): 1a-d, 4a, 4b, 8, 9.
    expected["plot_paper_figure"] = 8
    # The paper's analyses: Hessian of every run; activations of lth and swish (and dense); the
    # perturbation of lth and at+trt at 91%, and their per-epoch Hessian, trained again with tracking;
    # landscapes of four variants at 91%, at epoch 5 (a snapshot each) and the end, in 4 parts each;
    # input landscapes of the same four at the end.
    assert config["analysis"]["landscape"] == {
        "variants": ["lth", "skip", "ls", "gradinit"],
        "levels": [0.91],
        "epochs": [5, "final"],
        "jobs": 4,
    }
    runs = seeds * (1 + levels * variants)
    expected |= {
        "analyze": runs + seeds * (1 + 2 * levels) + seeds * 2,
        "track_hessian": seeds * 2,
        "snapshot": seeds * 4,
        "analyze_grid_part": seeds * 4 * 2 * 4 + seeds * 4,
        "merge_grid": seeds * 4 * 2 + seeds * 4,
        "collect_analysis": 6,
        "plot_analysis": 6,
        "tabulate_analysis": 1,
    }
    assert planned_jobs(tmp_path, REPO / "config.yaml") == expected


@pytest.mark.parametrize(
    "change, message",
    [
        ({"model": {"name": "resnet18", "width": -1}}, "width"),
        ({"train": {"lrr": 0.1}}, "lrr"),
        ({"variants": ["swish+mish"]}, "swish"),
        ({"variants": ["rewind"], "rewind_epoch": 3}, "rewind_epoch: 3"),
        ({"gradinit": {"enabled": True}}, "gradinit.enabled"),
        ({"analysis": {"hesian": {}}}, "'hesian' is not one of ['activations', 'hessian'"),
        ({"analysis": {"landscape": {"points": 0}}}, "0 is less than the minimum of 1"),
        (
            {"analysis": {"hessian": {"levels": [0.99], "sample": 20}}},
            "hessian.levels[0]: sparsity 0.99 is not allowed",
        ),
    ],
)
def test_bad_config_stops_before_any_job(tmp_path, npz_root, change, message):
    config = write_config(tmp_path, "bad", {**tiny_config(npz_root), **change})
    result = snakemake(tmp_path, config, "-n", check=False)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_rules_call_lth_through_snakemakes_interpreter(tmp_path, npz_root):
    """A job finds lth without an activated environment: nothing of the install is on PATH here."""
    config = write_config(tmp_path, "tiny", tiny_config(npz_root))
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(SNAKEFILE),
        "-d",
        str(tmp_path),
        "--configfile",
        str(config),
        "--cores",
        "1",
        "--until",
        "init",
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, "PATH": "/usr/bin:/bin"}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list((tmp_path / "results" / "runs").glob("dense-*/init.pt"))) == 1


def test_lint_is_clean(tmp_path):
    result = snakemake(tmp_path, REPO / "configs" / "quickstart.yaml", "--lint", check=False)
    assert result.returncode == 0 and "Congratulations" in result.stdout + result.stderr, result.stdout


def test_moving_the_data_keeps_every_cached_run(tiny, npz_root, tmp_path):
    workdir, _ = tiny
    moved = tmp_path / "moved"
    shutil.copytree(npz_root, moved)
    config = write_config(workdir, "moved", tiny_config(npz_root, data__root=str(moved)))
    assert planned_jobs(workdir, config) == {}


def test_a_downloaded_dataset_is_fetched_once_before_any_training(tmp_path, npz_root):
    """Tiny-ImageNet (a dataset lth downloads), two seeds: one `data` job, which both theta0s wait
    for; the other jobs never download; a newer data record, or fetching again, retrains nothing."""
    make_tiny(tmp_path / "data" / "tiny-imagenet-200")
    config = write_config(
        tmp_path,
        "tiny-imagenet",
        tiny_config(
            npz_root, seeds=[0, 1], data={"name": "tinyimagenet", "root": str(tmp_path / "data"), "download": True}
        ),
    )
    commands, _ = dry_run_commands(tmp_path, "dense", "-s", str(SNAKEFILE), "--configfile", str(config))
    assert planned_jobs(tmp_path, config, "dense") == {
        "data": 1,
        "init": 2,
        "train_dense": 2,
        "rewind_point": 2,
        "dense": 1,
    }
    assert [c for c in commands if " lth data " in c] == [c for c in commands if "--data.download true" in c]
    assert len([c for c in commands if "--data.download false" in c]) == 6  # init, training, rewind points
    record = tmp_path / "results" / "data" / "tinyimagenet.json"
    snakemake(tmp_path, config, "results/published/data/tinyimagenet.json")
    found = json.loads(record.read_text())
    assert (found["num_classes"], found["train"], found["test"]) == (2, 4, 3)
    assert planned_jobs(tmp_path, config, "dense") == {"init": 2, "train_dense": 2, "rewind_point": 2, "dense": 1}
    record.touch()  # ancient: a newer record is no reason to draw theta0 again
    assert "data" not in planned_jobs(tmp_path, config, "dense")
    assert planned_jobs(tmp_path, config, "dense", "--forcerun", "data")["data"] == 1


def test_a_gpu_the_machine_lacks_stops_the_workflow_before_any_job(tmp_path, npz_root):
    cuda = write_config(tmp_path, "cuda", tiny_config(npz_root, device="cuda"))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no GPU, also where the test machine has one
    for config, extra, message in [
        (cuda, [], "device: 'cuda' but this machine has no NVIDIA GPU"),
        (
            write_config(tmp_path, "cpu", tiny_config(npz_root)),
            ["--resources", "gpu=1"],
            "--resources gpu=1 but this machine has 0 GPU",
        ),
    ]:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "snakemake",
                "-s",
                str(SNAKEFILE),
                "-d",
                str(tmp_path / "w"),
                "--cores",
                "1",
                *extra,
                "--configfile",
                str(config),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert result.returncode != 0 and message in result.stdout + result.stderr
        assert not (tmp_path / "w" / "results").exists()


@pytest.mark.parametrize("profile", ["workstation", "slurm"])
def test_shipped_profiles_plan_from_the_repository_root(profile):
    commands, output = dry_run_commands(
        REPO, "--workflow-profile", f"profiles/{profile}", "--configfile", "configs/quickstart.yaml"
    )
    assert commands and "gpu=0" in output  # the quickstart trains on the CPU: it asks for no GPU


def test_an_unknown_profile_key_is_an_error_naming_it(tmp_path):
    (tmp_path / "typo").mkdir()
    (tmp_path / "typo" / "config.yaml").write_text(
        (REPO / "profiles" / "workstation" / "config.yaml").read_text() + "keep-goin: true\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            "--workflow-profile",
            str(tmp_path / "typo"),
            "--configfile",
            "configs/quickstart.yaml",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "--keep-goin" in result.stderr


def test_a_new_rewind_point_trains_only_its_epochs_and_its_runs(tiny, npz_root):
    workdir, _ = tiny
    runs = workdir / "results" / "runs"
    finished = mtimes([*summaries(workdir), *runs.glob("imp-*/level*/mask.pt"), *runs.glob("dense-*/rewind/*.pt")])
    later = write_config(workdir, "rewind2", tiny_config(npz_root, experiment="tiny-rewind2", rewind_epoch=2))
    assert planned_jobs(workdir, later) == {"rewind_point": 1, "train_sparse": 2, **NEW_EXPERIMENT}
    snakemake(workdir, later)
    assert mtimes(list(finished)) == finished
    dense = tiny_dense(workdir)
    log = workdir / "results" / "logs" / "runs" / dense.name / "rewind" / "epoch2.log"
    assert "re-training" in log.read_text()  # the dense run kept only epoch 1
    table = pd.read_csv(workdir / "results" / "tiny-rewind2" / "summary.csv")
    assert (table.loc[table["variant"] == "rewind", "epochs_trained"] == 1).all()


def test_a_retrained_rewind_point_equals_the_one_the_dense_run_kept(tiny, tmp_path):
    workdir, _ = tiny
    dense = tiny_dense(workdir)
    record = yaml.safe_load((dense / "hparams.yaml").read_text())
    settings = write_config(tmp_path, "settings", {key: record[key] for key in ("model", "data", "train")})
    out = tmp_path / "epoch1.pt"
    # `python -m lth`, as the rules call it: `lth` is on PATH only where its environment is activated.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lth",
            "snapshot",
            "--epoch",
            "1",
            "--init",
            str(dense / "init.pt"),
            "--out",
            str(out),
            "--seed",
            str(record["seed"]),
            "--threads",
            "1",
            "--device",
            "cpu",
            "--config",
            str(settings),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    kept = torch.load(dense / "epoch1.pt", weights_only=True)["state_dict"]
    retrained = torch.load(out, weights_only=True)["state_dict"]
    assert kept.keys() == retrained.keys() and all(torch.equal(kept[k], retrained[k]) for k in kept)


def test_removing_a_variant_rebuilds_only_the_table(tiny, npz_root):
    workdir, config = tiny
    table = workdir / "results" / "tiny" / "summary.csv"
    fewer = write_config(workdir, "fewer", tiny_config(npz_root, variants=["lth"]))
    assert planned_jobs(workdir, fewer) == TABLE_JOBS
    snakemake(workdir, fewer)
    assert set(pd.read_csv(table)["variant"]) == {"dense", "lth"}
    assert planned_jobs(workdir, config) == TABLE_JOBS
    snakemake(workdir, config)
    assert set(pd.read_csv(table)["variant"]) == {"dense", "lth", "rewind"}


def test_deleting_an_experiments_outputs_keeps_the_shared_runs(tiny, npz_root):
    """--delete-all-output as root (nothing protects a file from root): the other experiment's runs
    stay byte for byte; the links of the shared runs go, so the tiny experiment's next job that
    needs one publishes it again and retrains nothing. The next tests need tiny complete again."""
    workdir, config = tiny
    other = write_config(workdir, "other", tiny_config(npz_root, experiment="tiny-other", variants=["rewind"]))
    assert planned_jobs(workdir, other) == NEW_EXPERIMENT
    snakemake(workdir, other)
    store = workdir / "results" / "runs"
    runs = [
        path
        for path in store.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(store).parts)
    ]

    def state() -> dict[Path, tuple[int, int, bytes]]:
        return {path: (path.stat().st_ino, path.stat().st_mtime_ns, path.read_bytes()) for path in runs}

    before = state()
    snakemake(workdir, other, "--delete-all-output")
    assert not (workdir / "results" / "tiny-other" / "summary.csv").exists()
    assert state() == before
    table = pd.read_csv(workdir / "results" / "tiny" / "summary.csv").set_index(["variant", "level"])
    shared = Path(table.loc[("rewind", 2), "run"]).name  # the two experiments' run: its link went
    link = workdir / "results" / "published" / "runs" / shared / "summary.json"
    assert not link.is_symlink()
    every_run = {"init": 1, "train_dense": 1, "rewind_point": 1, "prune": 2, "train_sparse": 4}
    assert planned_jobs(workdir, config) == {**every_run, **TABLE_JOBS}  # tiny-other shares all of them
    snakemake(workdir, config)
    assert link.resolve() == (store / shared / "summary.json").resolve() and state() == before
    assert planned_jobs(workdir, config) == {}


@pytest.mark.parametrize(
    "target, rules",
    [
        ("dense", {"init", "train_dense", "rewind_point"}),
        ("masks", {"init", "train_dense", "prune", "train_sparse"}),  # level 2 prunes the chain's level-1 run
        ("retrain", {"init", "train_dense", "rewind_point", "prune", "train_sparse"}),
        (
            "tables",
            {"init", "train_dense", "rewind_point", "prune", "train_sparse", "aggregate", "figure_settings", "tickets"},
        ),
        (
            "figures",
            {
                "init",
                "train_dense",
                "rewind_point",
                "prune",
                "train_sparse",
                "aggregate",
                "figure_settings",
                "plot_accuracy_vs_sparsity",
            },
        ),
        (
            "report",
            {
                "init",
                "train_dense",
                "rewind_point",
                "prune",
                "train_sparse",
                "aggregate",
                "figure_settings",
                "tickets",
                "plot_accuracy_vs_sparsity",
            },
        ),
    ],
)
def test_each_stage_can_be_asked_for_by_name(tmp_path, npz_root, target, rules):
    config = write_config(tmp_path, "tiny", tiny_config(npz_root))
    assert set(planned_jobs(tmp_path, config, target)) == rules | {target}


@pytest.mark.parametrize(
    "config", ["config.yaml", "configs/quickstart.yaml", "configs/cifar10-mini.yaml", "configs/any-mask.yaml"]
)
def test_shipped_configs_plan_the_same_jobs_from_any_directory(tmp_path, config):
    """The README's way (from the repository root) against the tests' way (-d) and another directory
    (there without torch)."""
    readme_way = [] if config == "config.yaml" else ["--configfile", config]
    commands, output = dry_run_commands(REPO, *readme_way)
    with_d, _ = dry_run_commands(
        REPO, "-s", str(SNAKEFILE), "-d", str(tmp_path / "work"), "--configfile", str(REPO / config)
    )
    # Every Snakemake start (and every cluster job) parses the Snakefile: planning must not import
    # torch, which here cannot be imported.
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("raise ImportError('torch imported while planning')\n")
    elsewhere, _ = dry_run_commands(
        tmp_path,
        "-s",
        str(SNAKEFILE),
        "--configfile",
        str(REPO / config),
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert commands and commands == with_d == elsewhere
    assert "is extended by additional config" not in output  # no config is merged under another
    threads = yaml.safe_load((REPO / config).read_text())["threads"]
    assert all(f"--threads {min(threads, 2)} " in command for command in commands if "lth train" in command)
    if config != "config.yaml":  # nothing of the paper's experiment leaks in
        assert not any("cifar100" in command or "kd_reduction mean" in command for command in commands)
        assert "mem_mb=16000" not in output


@pytest.mark.parametrize("config", ["configs/cifar10-mini.yaml", "configs/cifar10-mini-grid.yaml"])
def test_cifar10_mini_configs_download_or_read_the_local_copy_their_header_names(config, npz_root):
    """Shipped, they download CIFAR-10 (one `data` job) and train on 1,000 images per class; the
    override their header gives, run from the repository root, makes every job read an npz folder
    instead (here the tests' own) and download nothing."""
    header = "".join(line for line in (REPO / config).read_text().splitlines(keepends=True) if line.startswith("#"))
    documented = f'python3 -m snakemake --configfile {config} \\\n#       --config "data={{name: npz, root: '
    assert documented in header, header
    commands, _ = dry_run_commands(REPO, "--configfile", config)
    assert len([c for c in commands if " lth data " in c]) == 1
    reading = [c for c in commands if "--data.name" in c]
    assert reading and all("--data.name cifar10 " in c and "--data.subset_per_class 1000 " in c for c in reading)
    commands, _ = dry_run_commands(REPO, "--configfile", config, "--config", f"data={{name: npz, root: {npz_root}}}")
    assert not any(" lth data " in c for c in commands)
    reading = [c for c in commands if "--data.name" in c]
    assert reading and all(
        f"--data.name npz --data.root {npz_root} --data.download false --data.subset_per_class 1000 " in c
        for c in reading
    )


def test_gc_deletes_only_folders_no_config_plans(tiny, npz_root, tmp_path):
    """On a copy of the tiny experiment's cache (other tests add runs to the original): folders of
    settings since changed are listed, and deleted only with --yes; whatever the configs plan stays."""
    workdir, _ = tiny
    runs = tmp_path / "results" / "runs"
    shutil.copytree(workdir / "results" / "runs", runs)
    shutil.copytree(workdir / "results" / "published", tmp_path / "results" / "published", symlinks=True)
    config = write_config(tmp_path, "tiny", tiny_config(npz_root))
    other = write_config(tmp_path, "other", tiny_config(npz_root, experiment="other", variants=["lth"]))
    for stale in ("sparse-0123456789", "imp-0123456789"):
        (runs / stale).mkdir()
        (runs / stale / "final.pt").write_bytes(b"weights")
    lth = [sys.executable, "-m", "lth", "gc", str(config), str(other)]
    listed = subprocess.run(lth, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0 and "pass --yes" in listed.stdout, listed.stderr
    assert "kept: " in listed.stdout and "used by the configs given" in listed.stdout
    assert "sparse  0123456789" in listed.stdout and "imp     0123456789" in listed.stdout
    assert "no recorded experiment uses it, no config given plans it" in listed.stdout
    assert (runs / "sparse-0123456789").exists()
    deleted = subprocess.run([*lth, "--yes"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert deleted.returncode == 0 and "deleted" in deleted.stdout, deleted.stderr
    assert not (runs / "sparse-0123456789").exists() and not (runs / "imp-0123456789").exists()
    kept = mtimes([path for path in runs.rglob("*") if path.is_file()])
    assert planned_jobs(tmp_path, config) == {
        "aggregate": 1,
        "tickets": 1,
        "figure_settings": 1,
        "plot_accuracy_vs_sparsity": 1,
        "all": 1,
    }  # tables only: no run
    assert "train" not in " ".join(planned_jobs(tmp_path, other))
    assert mtimes(list(kept)) == kept


def test_gc_keeps_what_any_recorded_experiment_uses_until_it_is_forgotten(tiny, npz_root, tmp_path):
    """Two experiments used the store (tiny, and tiny-epochs with a dense run of its own): `lth gc`
    given only tiny's config deletes nothing tiny-epochs references; `--forget tiny-epochs --yes`
    deletes exactly the runs no one else uses. On a copy of the store (other tests read the original)."""
    workdir, _ = tiny
    snakemake(
        workdir,
        write_config(
            workdir,
            "epochs",
            tiny_config(npz_root, experiment="tiny-epochs", train__epochs=4, prune__levels=1, variants=["lth"]),
        ),
    )
    results = tmp_path / "results"
    shutil.copytree(workdir / "results" / "runs", results / "runs")
    shutil.copytree(workdir / "results" / "published", results / "published", symlinks=True)
    config = write_config(tmp_path, "tiny", tiny_config(npz_root, results=str(results)))
    records = {
        path.stem: set(json.loads(path.read_text())["runs"])
        for path in (results / "runs" / ".references").glob("*.json")
    }
    assert {"tiny", "tiny-epochs"} <= set(records)
    folders = {path.name for path in (results / "runs").glob("[!.]*")}
    lth = [sys.executable, "-m", "lth", "gc", str(config)]
    kept = subprocess.run([*lth, "--yes"], capture_output=True, text=True, timeout=300)
    assert kept.returncode == 0, kept.stderr
    unrecorded = folders - set().union(*records.values())  # runs of settings every experiment since dropped
    assert {path.name for path in (results / "runs").glob("[!.]*")} == folders - unrecorded
    assert "used by experiment tiny-epochs" in kept.stdout
    others = set().union(*(runs for name, runs in records.items() if name != "tiny-epochs"))
    only_epochs = records["tiny-epochs"] - others
    assert any(name.startswith("dense-") for name in only_epochs)  # its 4-epoch dense run
    forgotten = subprocess.run([*lth, "--forget", "tiny-epochs", "--yes"], capture_output=True, text=True, timeout=300)
    assert forgotten.returncode == 0 and "forgot tiny-epochs" in forgotten.stdout, forgotten.stderr
    assert {path.name for path in (results / "runs").glob("[!.]*")} == folders - unrecorded - only_epochs
    assert not [name for name in only_epochs if (results / "published" / "runs" / name).exists()]
    assert planned_jobs(tmp_path, config) == {
        "aggregate": 1,
        "tickets": 1,
        "figure_settings": 1,
        "plot_accuracy_vs_sparsity": 1,
        "all": 1,
    }  # tiny lost nothing


def report_data(report: Path) -> tuple[str, dict[str, dict]]:
    """What Snakemake's report.html embeds: the landing page's HTML and the items by path (each with
    its caption's HTML, mime type and content as a base64 data URI), from its `var name = JSON;` scripts."""
    text = report.read_text()
    decoder = json.JSONDecoder()

    def variable(script: str, name: str):  # the template's own <script id=...>: the libraries have `var`s too
        start = text.index(f"var {name} = ", text.index(f'<script id="{script}">')) + len(f"var {name} = ")
        return decoder.raw_decode(text, start)[0]

    return variable("workflow-desc", "workflow_desc"), variable("results", "results")


def test_report_shows_the_workflow_settings_tables_and_each_figure_once(tiny):
    """The landing page describes the stages, names the config and code and lists the resolved
    settings; summary and tickets are pages (HTML tables holding summary.csv's values); each figure
    is one PNG item whose caption gives the recipe and the PDF's path."""
    workdir, config = tiny
    snakemake(workdir, config, "--report", str(workdir / "report.html"))
    landing, items = report_data(workdir / "report.html")
    for words in ("Dense training", "Masks", "Re-training variants", "Analyses", "Tables", "Figures"):
        assert f"<em>{words}</em>" in landing, words
    assert config.name in landing and ("git commit" in landing or "not a git checkout" in landing)
    block = re.search(r"<pre[^>]*>(.*?)</pre>", landing, re.S).group(1)
    settings = yaml.safe_load(html.unescape(re.sub(r"<[^>]+>", "", block)))  # less the highlighting's spans
    assert settings["train"] == {**settings["train"], "epochs": 3, "batch_size": 32, "lr": 0.1}  # lr: the default

    experiment = "results/tiny"
    assert sorted(items) == [
        f"{experiment}/figures/accuracy_vs_sparsity.png",  # the PDF is not a second item
        f"{experiment}/summary.html",
        f"{experiment}/tickets.html",
    ]
    figure = items[f"{experiment}/figures/accuracy_vs_sparsity.png"]
    assert figure["mime_type"] == "image/png"
    for words in ("learning rate 0.1", "batch size 32", "weight decay 0.0002", "accuracy_vs_sparsity.pdf"):
        assert words in figure["caption"], words

    def page(path: str) -> list[dict]:
        assert items[path]["mime_type"] == "text/html" and f"{path[:-5]}.csv" in items[path]["caption"]
        tables, _ = page_tables(base64.b64decode(items[path]["data_uri"].split("base64,", 1)[1]).decode())
        return tables

    (shown,) = page(f"{experiment}/summary.html")
    summary = pd.read_csv(workdir / experiment / "summary.csv", dtype=str, keep_default_na=False)
    assert shown["header"] == list(summary.columns)
    exact = [[value if value is not None else text for text, value, _ in row] for row in shown["rows"]]
    assert exact == summary.values.tolist()  # every cell, numbers by their exact value
    accuracy = list(summary.columns).index("test_acc_pct")
    dense = summary.index[summary["variant"] == "dense"][0]
    assert shown["rows"][dense][accuracy][0] == f"{float(summary.at[dense, 'test_acc_pct']):.2f}".rstrip("0").rstrip(
        "."
    )
    (tickets,) = page(f"{experiment}/tickets.html")
    assert tickets["header"] == list(pd.read_csv(workdir / experiment / "tickets.csv").columns)


def test_an_edited_summary_is_refused_and_deleting_it_regenerates_it(tiny):
    """One accuracy of summary.csv changed by hand: Snakemake reruns what reads it (the table is newer),
    and each refuses it, naming it; no table or figure shows the edited value. Deleting it and
    rerunning, as the message says, regenerates the table lth wrote."""
    workdir, config = tiny
    folder = workdir / "results" / "tiny"
    table = folder / "summary.csv"
    written, tickets = table.read_bytes(), (folder / "tickets.csv").read_bytes()
    figures = mtimes(sorted((folder / "figures").glob("accuracy_vs_sparsity.*")))
    lines = written.decode().splitlines(keepends=True)
    index = lines[0].split(",").index("test_acc_pct")
    cells = lines[-1].split(",")
    cells[index] = "99.0"
    table.write_text("".join(lines[:-1]) + ",".join(cells))
    result = snakemake(workdir, config, check=False)
    assert result.returncode != 0, result.stdout + result.stderr
    logs = " ".join(
        path.read_text()
        for path in (folder / "logs").glob("*.log")
        if path.name in ("tickets.log", "plot_accuracy_vs_sparsity.log")
    )
    assert f"{table.relative_to(workdir)} does not match the sha256 in its seal summary.csv.sha256" in logs
    assert "regenerate it: delete it and rerun snakemake" in logs
    # Snakemake removes a failed job's outputs; what is left is what lth wrote from the sealed table.
    left = folder / "tickets.csv"
    assert not left.exists() or left.read_bytes() == tickets
    assert all(path.stat().st_mtime_ns == time for path, time in figures.items() if path.exists())
    table.unlink()
    snakemake(workdir, config)
    assert table.read_bytes() == written
    assert (folder / "tickets.csv").read_bytes() == tickets
    assert planned_jobs(workdir, config) == {}
