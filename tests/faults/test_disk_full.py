"""A full disk (ENOSPC) at each write: a clear error naming the file, and no file that looks complete.

Two kinds of full disk. In the first half the temp file that `lth.io.atomic_open` opens for the
target is backed by /dev/full, so every write to it fails. In the second half the disk fills up
*during* a write, as a real one does: on a small tmpfs filled up to its last page (where the test may
mount one), else on a temp file that takes that many bytes and then fails. There torch's zip
writer does not raise the OSError but `RuntimeError: [enforce fail at inline_container.cc]
unexpected pos` while unwinding it, which must become the same one-line error.
"""

from __future__ import annotations

import errno
import io
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import state_dicts_equal

import lth.train
from faults.conftest import World
from faults.invariants import assert_same_run
from lth.checkpoints import load_checkpoint

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.skipif(
        not Path("/dev/full").exists() or not Path("/proc/self/fd").is_dir(), reason="needs Linux's /dev/full and /proc"
    ),
]


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
    from lth.report.summary import aggregate

    aggregate([f"0:dense:0::{world.dense}", f"0:lth:1:magnitude:{world.masked}"], tmp / "summary.csv")
    return tmp / "summary.csv"


# name of the file the disk fills at -> (command line, the path whose write fails)
WRITES = {
    "init.pt": (
        lambda w, t: ["init", "--out", t / "init.pt", "--seed", "0", "--model.width", "4", "--data.name", "digits"],
        lambda t: t / "init.pt",
    ),
    "mask.pt": (
        lambda w, t: ["prune", "--weights", w.dense / "final.pt", "--out", t / "mask.pt"],
        lambda t: t / "mask.pt",
    ),
    "mask.json": (
        lambda w, t: ["prune", "--weights", w.dense / "final.pt", "--out", t / "mask.pt"],
        lambda t: t / "mask.json",
    ),
    "state.pt": (lambda w, t: w.dense_train_args(t / "run"), lambda t: t / "run" / ".resume" / "state.pt"),
    "epoch1.pt": (lambda w, t: w.dense_train_args(t / "run"), lambda t: t / "run" / ".resume" / "epoch1.pt"),
    "metrics.csv": (lambda w, t: w.dense_train_args(t / "run"), lambda t: t / "run" / ".resume" / "metrics.csv"),
    "final.pt": (lambda w, t: w.dense_train_args(t / "run"), lambda t: t / "run" / "final.pt"),
    "summary.json": (lambda w, t: w.dense_train_args(t / "run"), lambda t: t / "run" / "summary.json"),
    "aggregate.csv": (
        lambda w, t: ["aggregate", "--out", t / "aggregate.csv", f"0:dense:0::{w.dense}"],
        lambda t: t / "aggregate.csv",
    ),
    "figure.png": (
        lambda w, t: ["plot", "--summary", summary_csv(w, t), "--out", t / "figure.png"],
        lambda t: t / "figure.png",
    ),
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
def test_training_rerun_after_a_full_disk_matches_an_uninterrupted_run(
    world, tmp_path, cli, monkeypatch, full_disk, name
):
    run = tmp_path / "run"
    full_disk(name)
    assert cli(*world.dense_train_args(run))[0] == 2
    monkeypatch.undo()  # space again
    code, err = cli(*world.dense_train_args(run))
    assert code == 0, err
    assert_same_run(run, world.dense)


# --- A disk that fills up during a write ---------------------------------------------------------

# What the disk still takes when a checkpoint's write starts: one page. torch (2.x) then fails in its
# first flush and raises its RuntimeError (with 16 KiB left an init.pt fails with a plain OSError instead).
LEFT = 4096


class NearlyFullFile(io.FileIO):
    """The temp file on a disk with `left` bytes free: a write takes what fits, then fails with ENOSPC."""

    def __init__(self, fd: int, left: int):
        super().__init__(fd, "wb")
        self.left = left

    def write(self, data) -> int:
        if not self.left:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = super().write(memoryview(data).cast("B")[: self.left])
        self.left -= written
        return written


class FillingDisk:
    """A folder whose disk fills up when the `nth` temp file for a file called `name` opens, leaving
    `left` bytes; `free()` gives the space back. `kind` "tmpfs": a real file system of its own, filled
    by a filler file; "injected": a plain folder whose temp file is a NearlyFullFile."""

    def __init__(self, folder: Path, kind: str):
        self.folder, self.kind = folder, kind
        self.name, self.nth, self.left, self.seen = "", 0, 0, 0
        self.filler = folder / "filler"
        self.previous: bytes | None = None  # the target's bytes when the disk filled (None: no target yet)

    def fill_at(self, name: str, nth: int = 1, left: int = LEFT) -> None:
        self.name, self.nth, self.left, self.seen = name, nth, left, 0

    def free(self) -> None:
        self.name = ""
        self.filler.unlink(missing_ok=True)

    def fdopen(self, real: Callable[..., object], fd: int, mode: str = "r", *args, **kwargs):
        temp = Path(os.readlink(f"/proc/self/fd/{fd}"))
        prefix = f".{self.name}."  # mkstemp's random part has no dot: summary.csv's is not summary.csv.sha256's
        if not (
            self.name
            and temp.name.startswith(prefix)
            and temp.name.endswith(".tmp")
            and "." not in temp.name[len(prefix) : -len(".tmp")]
        ):
            return real(fd, mode, *args, **kwargs)
        self.seen += 1
        if self.seen != self.nth:
            return real(fd, mode, *args, **kwargs)
        target = temp.parent / self.name
        self.previous = target.read_bytes() if target.exists() else None
        if self.kind == "tmpfs":
            self._fill()
            return real(fd, mode, *args, **kwargs)
        raw = io.BufferedWriter(NearlyFullFile(fd, self.left))  # buffered, as os.fdopen's own file is
        return raw if "b" in mode else io.TextIOWrapper(raw, encoding="utf-8")

    def _fill(self) -> None:
        with open(self.filler, "wb", buffering=0) as handle:
            for chunk in (b"\0" * (1 << 20), b"\0" * 4096):
                try:
                    while True:
                        handle.write(chunk)
                except OSError as error:
                    if error.errno != errno.ENOSPC:
                        raise
        os.truncate(self.filler, self.filler.stat().st_size - self.left)  # tmpfs counts whole pages: LEFT is some


TMPFS_OPT_IN = "LTH_TEST_TMPFS"


@pytest.fixture(params=["tmpfs", "injected"])
def filling_disk(request, tmp_path, monkeypatch) -> Iterator[FillingDisk]:
    folder = tmp_path / "disk"
    folder.mkdir()
    if request.param == "tmpfs":
        if os.environ.get(TMPFS_OPT_IN) != "1":  # a mount changes the system: only when asked, as the SLURM test
            pytest.skip(
                f"mounting a tmpfs changes the system, so it runs only when asked: set {TMPFS_OPT_IN}=1 "
                "(CI does); the injected disk covers this case"
            )
        try:
            mounted = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder)], capture_output=True, text=True
            )
        except FileNotFoundError:
            pytest.skip("no mount command: the injected disk covers this case")
        if mounted.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}): the injected disk covers this case")
    disk = FillingDisk(folder, request.param)
    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda *args, **kwargs: disk.fdopen(real_fdopen, *args, **kwargs))
    try:
        yield disk
    finally:
        if request.param == "tmpfs":
            subprocess.run(["umount", "--lazy", str(folder)], check=True)


def init_args(w: World, disk: Path) -> list[str | Path]:
    return ["init", "--out", disk / "init.pt", "--seed", "0", "--model.width", "4", "--data.name", "digits"]


def aggregate_args(w: World, disk: Path) -> list[str | Path]:
    return ["aggregate", "--out", disk / "summary.csv", f"0:dense:0::{w.dense}"]


# case -> (command line, file the disk fills at, which time, bytes left, the path whose write fails)
FILLING = {
    "init": (init_args, "init.pt", 1, LEFT, lambda d: d / "init.pt"),
    "resume state": (
        lambda w, d: w.dense_train_args(d / "run"),
        "state.pt",
        2,
        LEFT,
        lambda d: d / "run" / ".resume" / "state.pt",
    ),  # at epoch 2: epoch 1's state is on disk
    "csv": (aggregate_args, "summary.csv", 1, 0, lambda d: d / "summary.csv"),  # smaller than a page: none left
}


@pytest.mark.parametrize("case", list(FILLING))
def test_a_disk_that_fills_during_a_write_is_one_line_naming_the_file_and_the_rerun_completes_exactly(
    world, tmp_path, cli, monkeypatch, filling_disk, case
):
    command, name, nth, left, target = FILLING[case]
    disk = filling_disk.folder
    filling_disk.fill_at(name, nth, left)
    code, err = cli(*command(world, disk))
    path = target(disk)
    assert code == 2 and err.count("\n") == 1, err  # one line, no traceback
    assert err.startswith(f"lth {command(world, disk)[0]}: error: cannot write {path}: No space left on device;"), err
    assert not list(disk.rglob(".*.tmp")), "a temp file was left behind"
    if case == "resume state":  # epoch 1's complete state is untouched
        assert filling_disk.previous is not None and path.read_bytes() == filling_disk.previous
    else:
        assert not path.exists()
    assert not (disk / "run" / "summary.json").exists()

    filling_disk.free()
    trained = []
    real_train_epoch = lth.train.train_epoch
    monkeypatch.setattr(lth.train, "train_epoch", lambda *a, **k: trained.append(1) or real_train_epoch(*a, **k))
    code, err = cli(*command(world, disk))
    assert code == 0, err
    if case == "init":
        assert state_dicts_equal(
            load_checkpoint(path)["state_dict"], load_checkpoint(world.dense / "init.pt")["state_dict"]
        )
    elif case == "resume state":
        assert len(trained) == 1, "the rerun did not resume from epoch 1's state"
        assert_same_run(disk / "run", world.dense)
    else:
        assert cli(*aggregate_args(world, tmp_path))[0] == 0
        assert path.read_bytes() == (tmp_path / "summary.csv").read_bytes()
