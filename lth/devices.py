"""One GPU per concurrent job on a machine with several: each job claims a slot, and a slot is a card.

Snakemake's `--resources gpu=N` bounds how many GPU jobs run at once but does not say which card
each one gets, so without this every job would train on cuda:0. A job holds an exclusive lock
(flock) on one of `cards x jobs_per_gpu` slot files for as long as it runs; the kernel drops the
lock when the process ends, however it ends, so a killed job never keeps a slot. Slots are tried
in an order that spreads jobs over the cards first. Under SLURM a job sees only the card it was
given, so with one visible card there is nothing to choose.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import IO

from lth.errors import LthError

log = logging.getLogger(__name__)

_held: list[IO[bytes]] = []  # open slot files of this process: closing one frees its slot


def visible_gpus() -> int:
    """NVIDIA GPUs this process may use, counted without torch: CUDA_VISIBLE_DEVICES when set (up to
    its first invalid entry, as CUDA reads it), else the cards the driver lists."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        count = 0
        for entry in visible.split(","):
            entry = entry.strip()
            if not entry or entry.startswith("-"):
                break
            count += 1
        return count
    cards = Path("/proc/driver/nvidia/gpus")
    return sum(1 for _ in cards.iterdir()) if cards.is_dir() else 0


def check_local_gpus(device: str, asked: int | None, jobs_per_gpu: int, cards: int | None = None) -> None:
    """Before a local workflow starts any job: the GPUs the config and `--resources gpu=N` ask for exist."""
    cards = visible_gpus() if cards is None else cards
    if device.startswith("cuda") and cards == 0:
        raise LthError(
            f"device: {device!r} but this machine has no NVIDIA GPU (none in /proc/driver/nvidia/gpus or "
            "CUDA_VISIBLE_DEVICES); use device: cpu (or auto), or run on a GPU machine or cluster"
        )
    if asked and asked > cards * jobs_per_gpu:
        raise LthError(
            f"--resources gpu={asked} but this machine has {cards} GPU(s) x resources.jobs_per_gpu "
            f"{jobs_per_gpu} = {cards * jobs_per_gpu} job slots; ask for at most that many"
        )


def default_lock_dir() -> Path:
    """Per machine (the temporary folder, not a shared home), shared by every user's jobs."""
    return Path(tempfile.gettempdir()) / "lth-gpu-slots"


def claim_slot(
    cards: int, jobs_per_gpu: int = 1, lock_dir: Path | None = None, poll_seconds: float = 5.0
) -> tuple[int, IO[bytes]]:
    """(card, open slot file) for the first free slot, waiting while all are taken.

    Slot i runs on card i % cards. The slot is held until the returned file is closed or the
    process exits.
    """
    if cards < 1 or jobs_per_gpu < 1:
        raise LthError(f"GPU slots: {cards} cards x {jobs_per_gpu} jobs per GPU; both must be >= 1")
    folder = lock_dir or default_lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        folder.chmod(0o1777)  # other users' jobs share the cards, and so the slots
    except OSError:
        pass
    waiting = False
    while True:
        for slot in range(cards * jobs_per_gpu):
            handle = open(folder / f"slot{slot}.lock", "ab")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            return slot % cards, handle
        if not waiting:
            log.info(
                "all %d GPU slots (%d cards x %d jobs per GPU) are taken; waiting for one",
                cards * jobs_per_gpu,
                cards,
                jobs_per_gpu,
            )
            waiting = True
        time.sleep(poll_seconds)


def assign_device(device: str, jobs_per_gpu: int = 1) -> str:
    """`device` as given, except that `cuda` or `auto` with several visible cards becomes `cuda:<k>`
    for a card claimed for the rest of this process (see `claim_slot`)."""
    if device not in ("auto", "cuda"):
        return device
    import torch

    cards = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if cards <= 1:
        return device
    card, handle = claim_slot(cards, jobs_per_gpu)
    _held.append(handle)
    log.info("GPU slot claimed: cuda:%d of %d visible (%s)", card, cards, os.environ.get("CUDA_VISIBLE_DEVICES", "all"))
    return f"cuda:{card}"
