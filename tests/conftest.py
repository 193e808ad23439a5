"""Shared fixtures and small helpers for the core-library tests (tiny data, one thread)."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
# Columns that measure time, so they differ between otherwise identical runs.
TIMING_COLUMNS = ("seconds", "images_per_s")


def read_metrics(path: Path, drop_timing: bool = False) -> list[dict[str, str]]:
    """metrics.csv rows as dicts of strings (exact text, so comparisons are bit-for-bit)."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if drop_timing:
        rows = [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in rows]
    return rows


def state_dicts_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# The tests' CIFAR-shaped data set: scikit-learn's bundled digits as 32x32 RGB, in the npz source's
# layout (see `write_digits_npz`). Per class, out of the rarest class's 174 digits:
TRAIN_PER_CLASS, TEST_PER_CLASS = 150, 24


def write_digits_npz(root: Path, seed: int = 0) -> Path:
    """`root/train.npz` and `root/test.npz` as the npz source reads them (images uint8 (N, 32, 32, 3),
    labels int64 (N,), classes): every digit upscaled bilinearly from 8x8, its stroke and background
    in colours drawn per image (so channels differ, yet colour says nothing about the label), classes
    balanced, rows shuffled (so a prefix holds every class). Deterministic for a seed; learnable."""
    from lth.data.sources import _digits_file  # scikit-learn's digits.csv.gz, without importing scikit-learn

    table = np.loadtxt(_digits_file(), delimiter=",")
    target = table[:, 64].astype(np.int64)
    rng = np.random.default_rng(seed)
    strokes = torch.nn.functional.interpolate(
        torch.from_numpy(table[:, :64] / 16).float().view(-1, 1, 8, 8),
        size=(32, 32),
        mode="bilinear",
        align_corners=False,
    )
    strokes = strokes[:, 0].clamp(0, 1).numpy()
    root.mkdir(parents=True, exist_ok=True)
    picks = [np.flatnonzero(target == c) for c in range(10)]
    for split, chosen in (
        ("train", [p[:TRAIN_PER_CLASS] for p in picks]),
        ("test", [p[TRAIN_PER_CLASS : TRAIN_PER_CLASS + TEST_PER_CLASS] for p in picks]),
    ):
        index = rng.permutation(np.concatenate(chosen))
        # Channel ranges differ, so every channel has its own mean and std (about 0.32, 0.37, 0.43).
        stroke = rng.uniform((180, 100, 20), (255, 200, 100), (len(index), 1, 1, 3))
        background = rng.uniform((0, 40, 100), (40, 100, 160), (len(index), 1, 1, 3))
        weight = strokes[index][..., None]
        images = np.rint(background + weight * (stroke - background)).astype(np.uint8)
        np.savez(
            root / f"{split}.npz", images=images, labels=target[index], classes=np.array([str(c) for c in range(10)])
        )
    return root


@pytest.fixture(scope="session")
def npz_root(tmp_path_factory) -> Path:
    """A folder with the digits as CIFAR-shaped npz files (`write_digits_npz`): 1,500 training and
    240 test images, 150 and 24 per class."""
    return write_digits_npz(tmp_path_factory.mktemp("digits-npz"))


@pytest.fixture(scope="session")
def npz_data(npz_root: Path):
    """`npz_root` through the npz source: 20 per class, so 180 train / 20 val; the whole 240-image
    test split."""
    from lth import data
    from lth.hparams import DataHparams

    return data.load(DataHparams(name="npz", root=str(npz_root), subset_per_class=20), seed=0)


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
# The SLURM test changes the system (apt-get installs SLURM and munge, daemons start), so it runs only
# when asked: `make test-slurm`, or this variable set to 1 (.ci/run sets it).
SLURM_OPT_IN = "LTH_TEST_SLURM"
SLURM_NOT_ASKED = (
    f"the SLURM test installs SLURM and munge with apt-get and starts a local cluster as root, "
    f"so it runs only when asked: set {SLURM_OPT_IN}=1 or run `make test-slurm`"
)


def slurm_asked() -> bool:
    """Whether this run asked for the real-SLURM test (`SLURM_OPT_IN` is 1)."""
    return os.environ.get(SLURM_OPT_IN) == "1"


@pytest.fixture(scope="session", autouse=True)
def local_slurm(request, tmp_path_factory):
    """A single-node SLURM on this machine for the whole session (tests/slurm/localhost.sh), when the
    run asked for it (`slurm_asked`) and the session runs the SLURM test or SLURM is installed here.
    Whole-session because SLURM's executor plugin runs `scontrol show config` whenever Snakemake
    starts, which waits about 9 s where SLURM is installed but no controller answers: every workflow
    test would pay that. Yields the environment of the cluster's clients, or the reason there is no
    cluster (a str). Unasked, it installs and starts nothing."""
    if not slurm_asked():
        yield SLURM_NOT_ASKED
        return
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
    started = subprocess.run(["bash", str(SLURM_SETUP), "start"], env=env, capture_output=True, text=True, timeout=900)
    if started.returncode != 0:
        subprocess.run(["bash", str(SLURM_SETUP), "stop"], env=env, timeout=60)
        yield f"the local SLURM cluster did not start:\n{started.stdout[-2000:]}\n{started.stderr[-2000:]}"
        return
    os.environ["SLURM_CONF"] = str(folder / "slurm.conf")  # what every Snakemake the tests start asks
    yield {**env, "SLURM_CONF": os.environ["SLURM_CONF"]}
    subprocess.run(["bash", str(SLURM_SETUP), "stop"], env=env, timeout=60)
