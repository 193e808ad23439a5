"""Two experiments at once on one results folder (issue #24, finding 1): two real Snakemake processes,
each in its own working directory, sharing a dense run, its IMP chain and the chain's own re-trainings.
Whenever the second starts (with the first, so that both reach the shared init and dense runs at
once; while the first trains a shared masked run), and also for the same config twice: both end
well, every shared run is trained once, no file of the store is replaced after it first appeared,
and the tables equal those of the two experiments run one after the other."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from test_workflow import tiny_config
from workflow_helpers import SNAKEFILE, write_config

pytestmark = pytest.mark.workflow

# Files of the store that change by design: each run's log of attempts, and everything under a dot
# name (locks naming their holder, resume states, a snapshot's scratch re-training, the experiments'
# records of which runs they use).
MUTABLE = ("train.log",)


def experiment(folder: Path, npz_root: Path, results: Path, name: str, variants: list[str]) -> Path:
    config = tiny_config(
        npz_root,
        experiment=name,
        variants=variants,
        results=str(results),
        train__epochs=2,
        prune__levels=1,
        rewind_epoch=1,
        data__subset_per_class=8,
    )
    folder.mkdir(parents=True, exist_ok=True)
    return write_config(folder, name, config)


def start(config: Path, results: Path) -> subprocess.Popen:
    """Snakemake in the config's folder, as a second user's shell would run it, one core each; the
    experiment's table is the target (figures add nothing to what is shared)."""
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(SNAKEFILE),
        "-d",
        str(config.parent),
        "--configfile",
        str(config),
        "--cores",
        "1",
        str(results / config.stem / "summary.csv"),
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


class StoreWatch:
    """Records each store file's (inode, size, mtime) when first seen: a file replaced or rewritten
    later shows up as a changed triple."""

    def __init__(self, runs: Path) -> None:
        self.runs, self.first, self.stop = runs, {}, threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _look(self) -> dict[Path, tuple[int, int, int]]:
        found = {}
        for path in self.runs.rglob("*"):
            relative = path.relative_to(self.runs).parts  # dot names: locks, resume states, scratch folders
            if any(part in MUTABLE or part.startswith(".") for part in relative):
                continue
            try:
                if path.is_file():
                    stat = path.stat()
                    found[path] = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
            except FileNotFoundError:
                pass  # a temp file renamed away meanwhile
        return found

    def _watch(self) -> None:
        while not self.stop.is_set():
            for path, seen in self._look().items():
                self.first.setdefault(path, seen)
            time.sleep(0.05)

    def changed(self) -> list[Path]:
        self.stop.set()
        self.thread.join()
        now = self._look()
        return sorted(path for path, seen in self.first.items() if now.get(path) != seen)


def finish(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-4000:]
    return output


def wait_for(runs: Path, pattern: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 300
    while not list(runs.glob(pattern)):
        assert process.poll() is None, f"the first workflow ended before {pattern} appeared:\n{process.stdout.read()}"
        assert time.monotonic() < deadline, f"{pattern} did not appear within 300 s"
        time.sleep(0.02)


def table(results: Path, name: str) -> pd.DataFrame:
    frame = pd.read_csv(results / name / "summary.csv").drop(columns=["seconds"], errors="ignore")
    frame["run"] = frame["run"].map(lambda path: Path(path).name)  # the results folders differ
    return frame


def attempts(runs: Path) -> dict[str, int]:
    """Training attempts per run folder, from each run's own log of attempts."""
    return {path.parent.name: path.read_text().count("=== attempt by") for path in runs.glob("*/train.log")}


@pytest.fixture(scope="module")
def sequential(tmp_path_factory, npz_root) -> tuple[Path, dict[str, int]]:
    """Experiment A, then B, one after the other: the tables both concurrent orders must reach."""
    root = tmp_path_factory.mktemp("sequential")
    results = root / "results"
    for name, variants in (("a", ["lth"]), ("b", ["lth", "rewind"])):
        finish(start(experiment(root / name, npz_root, results, name, variants), results))
    return results, attempts(results / "runs")


@pytest.mark.parametrize("second_starts", ["together", "while a shared masked run trains", "same config twice"])
def test_two_workflows_on_one_store_lose_and_repeat_nothing(tmp_path, npz_root, sequential, second_starts):
    reference, trained_once = sequential
    results = tmp_path / "shared results"
    runs = results / "runs"
    first = experiment(tmp_path / "a", npz_root, results, "a", ["lth"])
    second = (
        experiment(tmp_path / "a2", npz_root, results, "a", ["lth"])
        if second_starts == "same config twice"
        else experiment(tmp_path / "b", npz_root, results, "b", ["lth", "rewind"])
    )
    watch = StoreWatch(runs)
    a = start(first, results)
    if second_starts == "while a shared masked run trains":
        wait_for(runs, "sparse-*/.resume/state.pt", a)
    b = start(second, results)
    outputs = [finish(a), finish(b)]
    assert watch.changed() == []
    names = ["a"] if second_starts == "same config twice" else ["a", "b"]
    for name in names:
        pd.testing.assert_frame_equal(table(results, name), table(reference, name))
    expected = trained_once if len(names) == 2 else {run: 1 for run in table(results, "a")["run"]}
    assert attempts(runs) == expected and set(expected.values()) == {1}
    if second_starts == "same config twice":  # one experiment's tables have one writer at a time
        assert any("is being run by another workflow" in output for output in outputs)
