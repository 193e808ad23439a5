"""A full disk (ENOSPC) at each write: a clear error naming the file, and no file that looks complete.

The fault is injected at the write helper: the temp file that `lth.io.atomic_open` opens for the
target is backed by /dev/full, so the write itself fails as it would on a full disk.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from faults.conftest import World
from faults.invariants import assert_same_run

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.skipif(not Path("/dev/full").exists() or not Path("/proc/self/fd").is_dir(),
                                 reason="needs Linux's /dev/full and /proc")]


@pytest.fixture
def full_disk(monkeypatch):
    """`full_disk(name)`: from now on, writing a file called `name` fails with ENOSPC."""
    names: set[str] = set()
    real_fdopen = os.fdopen

    def fdopen(fd, mode="r", *args, **kwargs):
        temp = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        if any(temp.startswith(f".{name}.") and temp.endswith(".tmp") for name in names):
            os.close(fd)  # the temp file stays on disk, empty: the helper must remove it
            return open("/dev/full", mode)
        return real_fdopen(fd, mode, *args, **kwargs)

    monkeypatch.setattr(os, "fdopen", fdopen)
    return names.add


def summary_csv(world: World, tmp: Path) -> Path:
    from lth.aggregate import aggregate

    aggregate([f"0:dense:0::{world.dense}", f"0:lth:1:magnitude:{world.masked}"], tmp / "summary.csv")
    return tmp / "summary.csv"


# name of the file the disk fills at -> (command line, the path whose write fails)
WRITES = {
    "init.pt": (lambda w, t: ["init", "--out", t / "init.pt", "--seed", "0", "--model.width", "4",
                              "--data.name", "digits"], lambda t: t / "init.pt"),
    "mask.pt": (lambda w, t: ["prune", "--weights", w.dense / "final.pt", "--out", t / "mask.pt"],
                lambda t: t / "mask.pt"),
    "mask.json": (lambda w, t: ["prune", "--weights", w.dense / "final.pt", "--out", t / "mask.pt"],
                  lambda t: t / "mask.json"),
    "state.pt": (lambda w, t: w.dense_train_args(t / "run"), lambda t: t / "run" / ".resume" / "state.pt"),
    "epoch1.pt": (lambda w, t: w.dense_train_args(t / "run"), lambda t: t / "run" / ".resume" / "epoch1.pt"),
    "metrics.csv": (lambda w, t: w.dense_train_args(t / "run"), lambda t: t / "run" / ".resume" / "metrics.csv"),
    "final.pt": (lambda w, t: w.dense_train_args(t / "run"), lambda t: t / "run" / "final.pt"),
    "summary.json": (lambda w, t: w.dense_train_args(t / "run"), lambda t: t / "run" / "summary.json"),
    "aggregate.csv": (lambda w, t: ["aggregate", "--out", t / "aggregate.csv", f"0:dense:0::{w.dense}"],
                      lambda t: t / "aggregate.csv"),
    "figure.png": (lambda w, t: ["plot", "--summary", summary_csv(w, t), "--out", t / "figure.png"],
                   lambda t: t / "figure.png"),
}


@pytest.mark.parametrize("name", list(WRITES))
def test_disk_full_is_a_clear_error_and_leaves_nothing_that_looks_complete(world, tmp_path, cli, full_disk, name):
    command, target = WRITES[name]
    argv = command(world, tmp_path)
    full_disk(name)
    code, err = cli(*argv)
    assert code == 2 and "Traceback" not in err, err
    assert "No space left on device" in err and str(target(tmp_path)) in err, err
    assert not target(tmp_path).exists()
    assert not list(tmp_path.rglob(".*.tmp")), "a temp file was left behind"
    assert not (tmp_path / "run" / "summary.json").exists()
    if name == "mask.json":  # the mask was written, its sidecar not: no reader takes it for a mask
        code, err = cli("info", tmp_path / "mask.pt")
        assert code == 2 and "no sidecar" in err, err


@pytest.mark.parametrize("name", ["state.pt", "final.pt", "summary.json"])
def test_training_rerun_after_a_full_disk_matches_an_uninterrupted_run(world, tmp_path, cli, monkeypatch, full_disk,
                                                                      name):
    run = tmp_path / "run"
    full_disk(name)
    assert cli(*world.dense_train_args(run))[0] == 2
    monkeypatch.undo()  # space again
    code, err = cli(*world.dense_train_args(run))
    assert code == 0, err
    assert_same_run(run, world.dense)
