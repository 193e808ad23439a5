"""GPU slots on a workstation (lth/devices.py): every concurrent job gets a card of its own, a
finished or killed job frees its slot, and impossible GPU requests are refused before any job runs."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from lth.devices import assign_device, check_local_gpus, claim_slot, visible_gpus
from lth.errors import LthError


def test_jobs_spread_over_the_cards_then_share_them(tmp_path):
    handles = [claim_slot(2, jobs_per_gpu=2, lock_dir=tmp_path) for _ in range(4)]
    assert [card for card, _ in handles] == [0, 1, 0, 1]
    handles[1][1].close()  # a job on card 1 ends
    card, handle = claim_slot(2, jobs_per_gpu=2, lock_dir=tmp_path)
    assert card == 1
    for _, held in [*handles, (card, handle)]:
        held.close()


def test_a_job_waits_for_a_free_slot(tmp_path):
    card, first = claim_slot(1, lock_dir=tmp_path)
    claimed = []
    waiter = threading.Thread(target=lambda: claimed.append(claim_slot(1, lock_dir=tmp_path, poll_seconds=0.05)))
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive() and not claimed  # all slots taken: it waits
    first.close()
    waiter.join(5)
    assert claimed and claimed[0][0] == 0
    claimed[0][1].close()


def test_a_killed_job_frees_its_slot(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; "
            "from lth.devices import claim_slot; claim_slot(1, lock_dir=Path(sys.argv[1])); "
            "print('held', flush=True); time.sleep(60)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()
    card, handle = claim_slot(1, lock_dir=tmp_path, poll_seconds=0.05)
    assert card == 0
    handle.close()


@pytest.mark.parametrize("visible, count", [("", 0), ("0", 1), ("0,1,2", 3), ("1,-1,2", 1), ("GPU-abc,GPU-def", 2)])
def test_visible_gpus_reads_cuda_visible_devices(monkeypatch, visible, count):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert visible_gpus() == count


def test_cpu_and_explicit_devices_are_kept():
    assert assign_device("cpu") == "cpu"
    assert assign_device("cuda:1") == "cuda:1"


def test_impossible_gpu_requests_are_refused_by_name():
    with pytest.raises(LthError, match="device: 'cuda' but this machine has no NVIDIA GPU"):
        check_local_gpus("cuda", None, 1, cards=0)
    with pytest.raises(LthError, match=r"--resources gpu=3 .* 1 GPU\(s\) x resources.jobs_per_gpu 2 = 2"):
        check_local_gpus("auto", 3, 2, cards=1)
    check_local_gpus("cuda", 2, 2, cards=1)  # two jobs share the one card
    check_local_gpus("cpu", None, 1, cards=0)
    check_local_gpus("auto", None, 1, cards=0)  # auto falls back to the CPU
