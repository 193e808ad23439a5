"""The run store's guarantees, one at a time and deterministically (issue #24; the races themselves,
with real Snakemake processes, are in test_concurrency.py): one producer per artifact, waiting named;
a producer killed mid-way leaves no lock and loses nothing; links are the only thing Snakemake can
delete; `lth gc` keeps what a recorded experiment uses and never deletes under a running workflow."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from faults.conftest import World
from lth import store

pytestmark = pytest.mark.usefixtures("one_thread")

HOLD = """
import shutil, sys
from lth import store
with store.claim(sys.argv[1], folder=True):
    print("held", flush=True)
    sys.stdin.readline()
    shutil.copytree(sys.argv[2], sys.argv[1], dirs_exist_ok=True)
    print("copied", flush=True)
    sys.stdin.readline()
"""


class Holder:
    """Another process producing `out_dir` (as another experiment's job would): it holds the claim,
    copies `source` in when told, and ends (or is killed) when told."""

    def __init__(self, out_dir: Path, source: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(out_dir), str(source)],
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.process.stdout.readline() == "held\n"

    def step(self, expected: str | None = None) -> None:
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        if expected is not None:
            assert self.process.stdout.readline() == expected

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=60)


class Waiter:
    """`python -m lth ...` as a workflow job runs it, its log read as it comes."""

    def __init__(self, argv: list[str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lth", *argv], text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self.lines: list[str] = []
        self.thread = threading.Thread(target=lambda: self.lines.extend(self.process.stdout), daemon=True)
        self.thread.start()

    def wait_for(self, text: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in list(self.lines) if text in line]
            if found:
                return found[0]
            assert self.process.poll() is None, "".join(self.lines)
            time.sleep(0.05)
        raise AssertionError(f"no {text!r} in {''.join(self.lines)}")

    def finish(self) -> str:
        assert self.process.wait(timeout=300) == 0, "".join(self.lines)
        self.thread.join()
        return "".join(self.lines)


def state(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    return {
        str(path.relative_to(folder)): (path.stat().st_ino, path.stat().st_mtime_ns, path.read_bytes())
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.name.endswith(".lock")
    }


def test_a_job_waits_for_the_process_producing_its_run_and_keeps_what_it_made(world: World, tmp_path):
    out_dir = tmp_path / "runs" / "dense-1"
    holder = Holder(out_dir, world.dense)
    waiter = Waiter([*world.dense_train_args(out_dir), "--reuse", "--force"])
    line = waiter.wait_for("waiting for")
    assert f"waiting for {out_dir}: it is being produced by pid {holder.process.pid} " in line
    holder.step("copied\n")
    made = state(out_dir)
    assert waiter.process.poll() is None  # still waiting: the holder has not finished
    holder.step()
    assert holder.process.wait(timeout=60) == 0
    output = waiter.finish()
    assert "already holds this finished run (verified): kept as it is" in output
    assert state(out_dir) == made  # not a byte, not an inode, no line in train.log: the run is the holder's


def test_a_producer_killed_mid_run_leaves_no_lock_and_the_waiting_job_resumes_its_work(world: World, tmp_path):
    """SIGKILLed (a node failure) after it saved a resume state: the OS drops its lock, and the job
    waiting for the run resumes from that state and ends with the uninterrupted run's weights."""
    out_dir = tmp_path / "runs" / "dense-1"
    holder = Holder(out_dir, world.interrupted)
    waiter = Waiter([*world.dense_train_args(out_dir), "--reuse", "--force"])
    waiter.wait_for("waiting for")
    holder.step("copied\n")
    holder.kill()
    output = waiter.finish()
    assert "resum" in output.lower()
    final = torch.load(out_dir / "final.pt", weights_only=True)["state_dict"]
    expected = torch.load(world.dense / "final.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(final[key], expected[key]) for key in expected)
    log = (out_dir / "train.log").read_text()
    assert log.count("=== attempt by") == 1  # the waiting job's (the world trained with -q, logging no info)
    with open(out_dir / ".lock") as handle:  # nobody holds it now
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_a_second_producer_of_a_file_waits_then_finds_it_intact(world: World, tmp_path):
    """`lth prune --reuse --force` for a mask another process is writing: it waits, then keeps that
    mask (no rewrite); without --reuse an intact mask is refused, and never replaced even with --force."""
    out = tmp_path / "runs" / "imp-1" / "level1" / "mask.pt"
    argv = ["prune", "--weights", str(world.dense / "final.pt"), "--out", str(out), "--reuse", "--force"]
    with store.claim(out):
        waiter = Waiter(argv)
        waiter.wait_for("waiting for")
        world.copy(world.mask, out)
        made = state(out.parent)
    assert "already there and intact: kept as it is" in waiter.finish()
    assert state(out.parent) == made
    refused = subprocess.run([sys.executable, "-m", "lth", *argv[:-2], "--force"], capture_output=True, text=True)
    assert refused.returncode == 2 and "already exists; pass --reuse to keep it" in refused.stderr
    assert state(out.parent) == made


def test_link_publishes_finished_files_only_and_atomically(cli, tmp_path):
    results = tmp_path / "my results"
    run = results / "runs" / "dense-1"
    run.mkdir(parents=True)
    (run / "final.pt").write_bytes(b"weights")
    assert cli("link", "--results", results, run / "final.pt") == (0, "")
    link = results / "published" / "runs" / "dense-1" / "final.pt"
    assert os.readlink(link) == "../../../runs/dense-1/final.pt" and link.read_bytes() == b"weights"
    first = link.lstat()
    assert cli("link", "--results", results, run / "final.pt")[0] == 0
    assert link.lstat().st_ino == first.st_ino  # the same link: kept, not remade
    link.unlink()
    link.symlink_to(tmp_path)  # a stale link to elsewhere is replaced
    assert cli("link", "--results", results, run / "final.pt")[0] == 0
    assert os.readlink(link) == "../../../runs/dense-1/final.pt"
    code, error = cli("link", "--results", results, run / "summary.json")
    assert code == 2 and f"{run / 'summary.json'} does not exist: only a finished artifact is published" in error
    (tmp_path / "elsewhere.pt").write_bytes(b"x")
    code, error = cli("link", "--results", results, tmp_path / "elsewhere.pt")
    assert code == 2 and f"is not under the results folder {results}" in error
    assert not list((results / "published").rglob(".*"))  # no temporary link left


def fake_run(results: Path, name: str) -> Path:
    folder = results / "runs" / name
    (folder).mkdir(parents=True)
    (folder / "final.pt").write_bytes(b"weights")
    published = results / "published" / "runs" / name
    published.mkdir(parents=True)
    (published / "final.pt").symlink_to(f"../../../runs/{name}/final.pt")
    return folder


def gc(results: Path, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lth", "gc", "--results", str(results), *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_gc_keeps_what_recorded_experiments_use_and_forgets_only_when_told(tmp_path):
    results = tmp_path / "results"
    for name in ("dense-a", "dense-ab", "sparse-b", "sparse-none"):
        fake_run(results, name)
    store.record_references(results, "A", ["dense-a", "dense-ab"], [])
    store.record_references(results, "B", ["dense-ab", "sparse-b"], [])
    listed = gc(results)
    assert listed.returncode == 0, listed.stderr
    assert "kept: 2 run folders used by experiment A" in listed.stdout
    assert "kept: 2 run folders used by experiment B" in listed.stdout
    assert "unused: 1 run folders" in listed.stdout and "none" in listed.stdout and "pass --yes" in listed.stdout
    forgetting = gc(results, "--forget", "B")
    assert "used only by B (forgotten)" in forgetting.stdout and "unused: 2 run folders" in forgetting.stdout
    assert sorted(path.name for path in (results / "runs").glob("[!.]*")) == [
        "dense-a",
        "dense-ab",
        "sparse-b",
        "sparse-none",
    ]  # nothing deleted without --yes
    unknown = gc(results, "--forget", "C", "--yes")
    assert unknown.returncode == 2 and "--forget: C is not a recorded experiment" in unknown.stderr
    deleted = gc(results, "--forget", "B", "--yes")
    assert deleted.returncode == 0 and "deleted 2 run folders" in deleted.stdout and "forgot B" in deleted.stdout
    assert sorted(path.name for path in (results / "runs").glob("[!.]*")) == ["dense-a", "dense-ab"]
    assert sorted(path.name for path in (results / "published" / "runs").iterdir()) == ["dense-a", "dense-ab"]
    assert json.loads(store.references_file(results, "A").read_text())["runs"] == ["dense-a", "dense-ab"]
    assert not store.references_file(results, "B").exists()


def test_gc_deletes_nothing_while_a_workflow_uses_the_store(tmp_path):
    results = tmp_path / "results"
    fake_run(results, "sparse-none")
    handle = store.use(results)  # what a running workflow holds
    try:
        refused = gc(results, "--yes")
        assert refused.returncode == 2 and "is in use by a running workflow" in refused.stderr
        assert (results / "runs" / "sparse-none" / "final.pt").exists()
    finally:
        handle.close()
    assert gc(results, "--yes").returncode == 0
    assert not (results / "runs" / "sparse-none").exists()


def test_a_damaged_reference_record_is_named_not_ignored(tmp_path):
    results = tmp_path / "results"
    fake_run(results, "dense-a")
    record = store.references_file(results, "A")
    record.parent.mkdir(parents=True)
    record.write_text('{"runs": ["dense-a"')  # cut short
    listed = gc(results, "--yes")
    assert listed.returncode != 0 and f"{record} cannot be read" in listed.stderr
    assert (results / "runs" / "dense-a").exists()
    shutil.rmtree(results / "runs" / ".references")
