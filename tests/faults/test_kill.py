"""SIGKILL at the worst moments: a rerun of the same command ends identical to an uninterrupted run.

Kills are injected in a subprocess (tests/faults/inject.py) inside an epoch, between writing a
temp file and renaming it into place (the resume state, a saved epoch, each published file),
from outside once the resume state exists, and in `lth prune`. The reference is the world's own
uninterrupted run of the same command (same seed, one thread).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from faults.invariants import assert_same_run, mask_sha256
from lth.checkpoints import load_checkpoint
from lth.masks import read_sidecar

pytestmark = pytest.mark.usefixtures("one_thread")
INJECT = Path(__file__).with_name("inject.py")


def injected(fault: str, argv: list) -> list[str]:
    return [sys.executable, str(INJECT), fault, "--", "-q", *map(str, argv)]


TRAIN_KILLS = {
    "in epoch 1": "kill-in-epoch=1",
    "in epoch 2": "kill-in-epoch=2",
    "writing the resume state of epoch 1": "kill-before-rename=state.pt:1",
    "writing the resume state of epoch 2": "kill-before-rename=state.pt:2",
    "writing the rolling metrics of epoch 2": "kill-before-rename=metrics.csv:2",
    "saving epoch1.pt": "kill-before-rename=epoch1.pt:1",
    "publishing final.pt": "kill-before-rename=final.pt:1",
    "publishing epoch1.pt": "kill-before-rename=epoch1.pt:2",
    "publishing metrics.csv": "kill-before-rename=metrics.csv:3",
    "publishing hparams.yaml": "kill-before-rename=hparams.yaml:1",
    "publishing summary.json": "kill-before-rename=summary.json:1",
}


@pytest.mark.parametrize("moment", list(TRAIN_KILLS))
def test_training_killed_then_rerun_matches_an_uninterrupted_run(world, tmp_path, cli, moment):
    run = tmp_path / "run"
    killed = subprocess.run(
        injected(TRAIN_KILLS[moment], world.dense_train_args(run)), capture_output=True, text=True, timeout=300
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (run / "summary.json").exists(), "a killed run looks finished"
    code, err = cli(*world.dense_train_args(run))  # the same command, uninterrupted
    assert code == 0, err
    assert_same_run(run, world.dense)
    assert not (run / ".resume").exists()


def test_training_killed_from_outside_once_the_resume_state_exists(world, tmp_path, cli):
    run = tmp_path / "run"
    process = subprocess.Popen(
        injected("slow-epochs=0.5", world.dense_train_args(run)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240
    while not (run / ".resume" / "state.pt").exists():
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "no resume state appeared"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)  # epoch 2 has started; it sleeps 1 s in evaluation
    assert process.wait(timeout=60) == -signal.SIGKILL
    process.stderr.close()
    assert not (run / "summary.json").exists()
    assert cli(*world.dense_train_args(run))[0] == 0
    assert_same_run(run, world.dense)


PRUNE_KILLS = {"writing mask.pt": "kill-before-rename=mask.pt:1", "writing mask.json": "kill-before-rename=mask.json:1"}


@pytest.mark.parametrize("moment", list(PRUNE_KILLS))
def test_prune_killed_then_rerun_writes_the_same_mask(world, tmp_path, cli, moment):
    out = tmp_path / "level1" / "mask.pt"
    args = ["prune", "--weights", world.dense / "final.pt", "--out", out]
    killed = subprocess.run(injected(PRUNE_KILLS[moment], args), capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    if out.exists():  # killed between the two files: a mask without its sidecar is no mask
        code, err = cli("info", out)
        assert code == 2 and "no sidecar" in err, err
        code, err = cli(*args)  # the rerun does not silently replace a file ...
        assert code == 2 and "--force" in err, err
        args.append("--force")  # ... it is told to
    code, err = cli(*args)
    assert code == 0, err
    assert mask_sha256(out) == mask_sha256(world.mask)
    assert read_sidecar(out) == read_sidecar(world.mask)


def test_rigl_run_killed_mid_run_resumes_byte_identically(world, tmp_path, cli):
    """A RigL run killed in its second epoch, after mask updates in both, ends as an uninterrupted one:
    the weights, the mask it saves with them, the update history and the FLOPs count."""
    rigl = ["--sparse-training", "rigl", "--rigl.sparsity", "0.7", "--rigl.update_every", "1", "--rigl.end", "1.0"]
    reference, run = tmp_path / "reference", tmp_path / "run"
    code, err = cli(*world.dense_train_args(reference, *rigl))
    assert code == 0, err
    killed = subprocess.run(
        injected("kill-in-epoch=2", world.dense_train_args(run, *rigl)), capture_output=True, text=True, timeout=300
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (run / ".resume").is_dir() and not (run / "summary.json").exists()
    code, err = cli(*world.dense_train_args(run, *rigl))
    assert code == 0, err
    assert_same_run(run, reference)
    for name in ("final.pt", "epoch1.pt"):
        masks = [load_checkpoint(folder / name)["mask"] for folder in (run, reference)]
        assert masks[0].keys() == masks[1].keys() and all(masks[0][k].equal(masks[1][k]) for k in masks[0])
    summaries = [json.loads((folder / "summary.json").read_text()) for folder in (run, reference)]
    updates = summaries[1]["mask_updates"]
    assert len(updates) >= 4 and {u["step"] for u in updates} == set(range(1, len(updates) + 1))
    assert [s["mask_updates"] for s in summaries] == [updates, updates]
    assert summaries[0]["train_flops"] == summaries[1]["train_flops"] > 0
