"""The shipped SLURM profile. What it submits, from Snakemake's plan (a dry run, no cluster): job
groups and where the environment sends jobs. And against a real SLURM: a single-node cluster on
this machine (tests/slurm/localhost.sh, Debian's packages), running the tiny workflow through
snakemake-executor-plugin-slurm, which must give the same outputs and the same summary.csv as a
local run with the same seeds. That one installs SLURM and munge and starts daemons, so it runs only
when asked: `make test-slurm`, or LTH_TEST_SLURM=1 (CI sets it); otherwise it is skipped, saying so."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from conftest import SLURM_NOT_ASKED, slurm_asked
from test_workflow import tiny_config
from workflow_helpers import REPO, SNAKEFILE, snakemake, write_config

# Settings of this test cluster that a real one does not need: no accounting database (so no
# account, and squeue rather than sacct for job states), early status checks, and the logs of
# successful sbatch jobs kept, to see which jobs went to the cluster. The plugin checks at the
# initial interval, then waits 10 s longer after each check that finds nothing finished: from 5 s,
# checks fall at 5, 20 and 45 s, so a job of this tiny workflow (12-16 s here) is seen at 20 s; from
# 1 s they fall at 1, 12 and 33 s, and it waits until 33.
TEST_CLUSTER = [
    "--slurm-no-account",
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "5",
    "--slurm-keep-successful-logs",
]
TIMING = ("seconds", "images_per_s")


@pytest.fixture
def cluster(local_slurm):
    """The session's local SLURM cluster (tests/conftest.py): its clients' environment."""
    if isinstance(local_slurm, str):
        if "did not start" in local_slurm:
            pytest.fail(local_slurm, pytrace=False)
        pytest.skip(local_slurm)
    pytest.importorskip("snakemake_executor_plugin_slurm", reason='pip install -e ".[slurm]"')
    return local_slurm


def summary(workdir: Path) -> pd.DataFrame:
    table = pd.read_csv(workdir / "results" / "tiny" / "summary.csv")
    return table.drop(columns=[c for c in table.columns if c.endswith(TIMING)])


def outputs(workdir: Path) -> set[str]:
    results = workdir / "results"
    return {str(path.relative_to(results)) for path in results.rglob("*") if path.is_file()}


def planned_submissions(*args: str, env: dict[str, str] | None = None) -> tuple[list[str], dict[str, Counter], str]:
    """What `snakemake -n --workflow-profile profiles/slurm ARGS`, run from the repository root as a user
    would, plans to submit: the rules of the jobs submitted alone, and each group's jobs by rule.
    The jobs that run where Snakemake runs (`localrules`) are left out."""
    pytest.importorskip("snakemake_executor_plugin_slurm", reason='pip install -e ".[slurm]"')
    command = [sys.executable, "-m", "snakemake", "-n", "--workflow-profile", "profiles/slurm", *args]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    local = set(re.search(r"localrules:\n((?:\s+\w+,?\n)+)", SNAKEFILE.read_text()).group(1).replace(",", "").split())
    alone, groups, group = [], {}, None
    for line in result.stdout.splitlines():
        if found := re.search(r"Group job (\S+) \(", line):
            group = groups.setdefault(found.group(1), Counter())
        elif found := re.match(r"( *)rule (\w+):", line):
            if found.group(1):
                group[found.group(2)] += 1
            elif found.group(2) not in local | {"all"}:
                alone.append(found.group(2))
    return alone, groups, result.stdout


def test_an_imp_chain_is_one_cluster_job_and_small_analyses_go_together():
    """The quickstart: one dense run, 6 IMP levels (levels 1 to 5 trained to draw the next), `lth`
    and `at+trt` re-trained at each, the Hessian of every run. Without groups each training and
    analysis was a cluster job of its own (1 + 12 + 7 = 20); with them, 10."""
    alone, groups, _ = planned_submissions("--configfile", "configs/quickstart.yaml")
    chains = {name: jobs for name, jobs in groups.items() if name.startswith("chain-")}
    assert list(chains.values()) == [Counter(prune=6, train_sparse=5)]
    assert groups["analyses"] == Counter(analyze=7)
    assert sorted(alone) == ["train_dense"] + ["train_sparse"] * 7  # lth at level 6, at+trt at 1-6
    assert len(alone) + len(groups) == 10


def test_where_jobs_go_comes_from_the_environment_and_the_profile_per_rule():
    env = {
        "LTH_SLURM_ACCOUNT": "proj",
        "LTH_SLURM_PARTITION": "gpu",
        "LTH_SLURM_QOS": "high",
        "LTH_SLURM_GPU_MODEL": "a100",
    }
    args = ("--configfile", "configs/quickstart.yaml", "--set-resources", "train_dense:slurm_partition=long")
    *_, text = planned_submissions(*args, env=env)
    resources = dict(re.findall(r"^\s*rule (\w+):.*?\n\s*resources: ([^\n]*)", text, re.M | re.S))
    for rule in ("train_sparse", "prune", "analyze"):
        assert "slurm_account=proj" in resources[rule] and "qos=high" in resources[rule], (rule, resources[rule])
        assert "slurm_partition=gpu" in resources[rule], (rule, resources[rule])
    assert "slurm_partition=long" in resources["train_dense"]  # the profile's per-rule setting wins
    # The quickstart trains on the CPU (`device: cpu`): no job asks for a GPU model.
    assert not any("gpu_model" in line for line in resources.values()), resources


# A skip mark, not a skip in a fixture: it acts before any fixture (data, cluster) is set up.
@pytest.mark.slurm
@pytest.mark.workflow
@pytest.mark.skipif(not slurm_asked(), reason=SLURM_NOT_ASKED)
def test_the_slurm_profile_runs_the_workflow_as_a_local_run_does(tmp_path, npz_root, cluster):
    config = tiny_config(npz_root, variants=["lth"], prune__levels=2, train__epochs=2)
    local, on_slurm = tmp_path / "local", tmp_path / "slurm"
    snakemake(local, write_config(tmp_path, "local", {**config}))
    slurm_config = write_config(tmp_path, "slurm", {**config})
    command = [
        "timeout",
        "-s",
        "KILL",
        "600",
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(SNAKEFILE),
        "-d",
        str(on_slurm),
        "--workflow-profile",
        str(REPO / "profiles" / "slurm"),
        "--configfile",
        str(slurm_config),
        "--jobs",
        "2",
        *TEST_CLUSTER,
    ]
    # Snakemake ignores SIGTERM while jobs run: the timeout kills it, and the unlock below frees the folder.
    result = subprocess.run(command, cwd=tmp_path, env=cluster, capture_output=True, text=True)
    log = result.stdout[-6000:] + result.stderr[-6000:]
    if result.returncode != 0:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "snakemake",
                "-s",
                str(SNAKEFILE),
                "-d",
                str(on_slurm),
                "--configfile",
                str(slurm_config),
                "--unlock",
            ],
            env=cluster,
            capture_output=True,
        )
    assert result.returncode == 0, log
    # Training went to the cluster: the dense run, the IMP chain (level 1's prune and training and
    # level 2's prune) as one job, and the ticket at level 2; the light jobs ran here.
    submitted = {path.name for path in (on_slurm / ".snakemake" / "slurm_logs").iterdir()}
    chain = [name for name in submitted if name.startswith("group_chain-")]
    assert len(chain) == 1 and submitted - set(chain) == {"rule_train_dense", "rule_train_sparse"}, (submitted, log)
    # A job's attempts log names the SLURM job it ran in (none for the light jobs run here): one
    # attempt each, and both levels' prunes in one.
    slurm_jobs = {
        path.relative_to(on_slurm / "results" / "logs" / "runs"): re.findall(r"SLURM job (\d+)", path.read_text())
        for path in (on_slurm / "results" / "logs" / "runs").rglob("*.attempts.log")
    }
    prunes = {job for path, jobs in slurm_jobs.items() if path.name == "prune.attempts.log" for job in jobs}
    assert all(len(jobs) <= 1 for jobs in slurm_jobs.values()) and len(prunes) == 1, slurm_jobs
    assert outputs(on_slurm) == outputs(local)
    pd.testing.assert_frame_equal(summary(on_slurm), summary(local))
