"""The shipped SLURM profile against a real SLURM: a single-node cluster on this machine
(tests/slurm/localhost.sh, Debian's packages), running the tiny workflow through
snakemake-executor-plugin-slurm. It must give the same outputs and the same summary.csv as a local
run with the same seeds. It installs SLURM and munge and starts daemons, so it runs only when asked:
`make test-slurm`, or LTH_TEST_SLURM=1 (CI sets it); otherwise it is skipped, saying so."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import SLURM_NOT_ASKED, slurm_asked
from test_workflow import tiny_config
from workflow_helpers import REPO, SNAKEFILE, snakemake, write_config

# A skip mark, not a skip in a fixture: it acts before any fixture (data, cluster) is set up.
pytestmark = [pytest.mark.slurm, pytest.mark.workflow, pytest.mark.skipif(not slurm_asked(), reason=SLURM_NOT_ASKED)]

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


def test_the_slurm_profile_runs_the_workflow_as_a_local_run_does(tmp_path, npz_root, cluster):
    config = tiny_config(npz_root, variants=["lth"], prune__levels=1, train__epochs=2)
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
    # Training went to the cluster, one sbatch job per training; the light jobs ran here.
    submitted = {path.name for path in (on_slurm / ".snakemake" / "slurm_logs").glob("rule_*")}
    assert submitted == {"rule_train_dense", "rule_train_sparse"}, (submitted, log)
    assert outputs(on_slurm) == outputs(local)
    pd.testing.assert_frame_equal(summary(on_slurm), summary(local))
