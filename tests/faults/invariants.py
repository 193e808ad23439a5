"""Invariants every run must keep, checked on files: the mask holds, and a run is a function of its inputs."""

from __future__ import annotations

from pathlib import Path

import torch
from conftest import read_metrics, state_dicts_equal

from lth.checkpoints import load_checkpoint
from lth.masks import load_mask, mask_hash


def assert_pruned_weights_zero(checkpoint: Path, mask: Path) -> None:
    """Every weight the mask prunes is exactly zero in the checkpoint (and the mask fits it)."""
    state = load_checkpoint(checkpoint)["state_dict"]
    for name, keep in load_mask(mask).items():
        assert state[name].shape == keep.shape, name
        assert torch.count_nonzero(state[name][~keep]) == 0, f"{checkpoint}: pruned weights of {name} are not zero"


def mask_sha256(mask: Path) -> str:
    """The mask's content hash, read through the verified loader (sidecar checked)."""
    return mask_hash(load_mask(mask))


def assert_same_run(a: Path, b: Path) -> None:
    """Two run folders hold the same result: metrics (without timing columns) and every checkpoint."""
    assert read_metrics(a / "metrics.csv", drop_timing=True) == read_metrics(b / "metrics.csv", drop_timing=True)
    checkpoints = sorted(p.name for p in a.glob("*.pt") if p.name != "init.pt")
    assert checkpoints == sorted(p.name for p in b.glob("*.pt") if p.name != "init.pt")
    for name in checkpoints:
        assert state_dicts_equal(load_checkpoint(a / name)["state_dict"], load_checkpoint(b / name)["state_dict"]), name
