"""Shared fixtures and small helpers for the core-library tests (tiny data, one thread)."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
# Columns that measure time, so they differ between otherwise identical runs.
TIMING_COLUMNS = ("seconds", "images_per_s")


def find_shared_data() -> Path:
    """`$LTH_SHARED_DATA`, else `<repo>/../shared/data`; a missing folder fails (never skips)."""
    path = Path(os.environ.get("LTH_SHARED_DATA") or REPO.parent / "shared" / "data")
    if not path.is_dir():
        pytest.fail(f"shared data folder {path} is missing: set LTH_SHARED_DATA to the folder holding "
                    "cifar10-mini/{train,test}.npz", pytrace=False)
    return path


def read_metrics(path: Path, drop_timing: bool = False) -> list[dict[str, str]]:
    """metrics.csv rows as dicts of strings (exact text, so comparisons are bit-for-bit)."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if drop_timing:
        rows = [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in rows]
    return rows


def state_dicts_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder (see `find_shared_data`)."""
    return find_shared_data()


@pytest.fixture(scope="session")
def cifar10_mini(shared_data: Path) -> Path:
    root = shared_data / "cifar10-mini"
    missing = [name for name in ("train.npz", "test.npz") if not (root / name).is_file()]
    if missing:
        pytest.fail(f"{root} lacks {', '.join(missing)}: set LTH_SHARED_DATA to the folder holding "
                    "cifar10-mini/", pytrace=False)
    return root


@pytest.fixture(scope="session")
def npz_data(cifar10_mini: Path):
    """Real CIFAR-10 images: 20 per class, so 180 train / 20 val; the full 2000-image test split."""
    from lth import data
    from lth.hparams import DataHparams

    return data.load(DataHparams(name="npz", root=str(cifar10_mini), subset_per_class=20), seed=0)


@pytest.fixture(scope="session")
def digits_data():
    """Offline digits: 20 per class (180 train / 20 val), 364 test images; the fastest real data."""
    from lth import data
    from lth.hparams import DataHparams

    return data.load(DataHparams(name="digits", subset_per_class=20), seed=0)


@pytest.fixture
def one_thread():
    """Run a test on one torch thread (deterministic, kind to a shared machine); restore afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SLURM_SETUP = REPO / "tests" / "slurm" / "localhost.sh"


@pytest.fixture(scope="session", autouse=True)
def local_slurm(request, tmp_path_factory):
    """A single-node SLURM on this machine for the whole session (tests/slurm/localhost.sh), when the
    session runs the SLURM test or SLURM is installed here. Whole-session because SLURM's executor
    plugin runs `scontrol show config` whenever Snakemake starts, which waits about 9 s where SLURM
    is installed but no controller answers: every workflow test would pay that. Yields the
    environment of the cluster's clients, or the reason there is no cluster (a str)."""
    tools = ("slurmctld", "slurmd", "sbatch", "munged")
    installed = all(shutil.which(tool) for tool in tools)
    if not installed and not any(item.get_closest_marker("slurm") for item in request.session.items):
        yield "no SLURM test in this session"
        return
    if os.geteuid() != 0:
        yield "a local SLURM cluster needs root (it installs packages and starts daemons)"
        return
    if not installed and not shutil.which("apt-get"):
        yield "SLURM is not installed and apt-get is not available to install it"
        return
    before = os.environ.get("SLURM_CONF")
    shared = Path("/run/slurm/conf/slurm.conf")  # the copy a running slurmd keeps (localhost.sh: configless)
    if subprocess.run(["pgrep", "-x", "slurmctld"], capture_output=True).returncode == 0 and shared.is_file():
        # Another session's cluster (a second pytest beside a running one): use it, and leave it running.
        os.environ["SLURM_CONF"] = str(shared)
        yield {**os.environ}
    else:
        yield from _start_local_slurm(tmp_path_factory)
    if before is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = before


def _start_local_slurm(tmp_path_factory):
    folder = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "LTH_SLURM_DIR": str(folder)}
    started = subprocess.run(["bash", str(SLURM_SETUP), "start"], env=env, capture_output=True, text=True,
                             timeout=900)
    if started.returncode != 0:
        subprocess.run(["bash", str(SLURM_SETUP), "stop"], env=env, timeout=60)
        yield f"the local SLURM cluster did not start:\n{started.stdout[-2000:]}\n{started.stderr[-2000:]}"
        return
    os.environ["SLURM_CONF"] = str(folder / "slurm.conf")  # what every Snakemake the tests start asks
    yield {**env, "SLURM_CONF": os.environ["SLURM_CONF"]}
    subprocess.run(["bash", str(SLURM_SETUP), "stop"], env=env, timeout=60)
