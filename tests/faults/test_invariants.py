"""The invariants (tests/faults/invariants.py) on the world's files and on a second fresh pipeline."""

from __future__ import annotations

import pytest

from faults.conftest import COMMON, TRAIN
from faults.invariants import assert_pruned_weights_zero, assert_same_run, mask_sha256

pytestmark = pytest.mark.usefixtures("one_thread")


def test_masked_run_keeps_pruned_weights_exactly_zero(world):
    assert_pruned_weights_zero(world.masked / "final.pt", world.mask)


def test_same_seed_and_config_give_the_same_mask_and_metrics(world, tmp_path, cli):
    """A second fresh pipeline (init, dense training, pruning, masked training) in another folder."""
    dense, mask, masked = tmp_path / "dense", tmp_path / "imp" / "mask.pt", tmp_path / "level1"
    assert cli("init", "--out", dense / "init.pt", "--seed", "0", *COMMON)[0] == 0
    assert cli("train", "--init", dense / "init.pt", "--out-dir", dense, "--save-epochs", "1", *TRAIN, *COMMON)[0] == 0
    assert cli("prune", "--weights", dense / "final.pt", "--out", mask)[0] == 0
    assert cli("train", "--init", dense / "epoch1.pt", "--mask", mask, "--out-dir", masked, *TRAIN, *COMMON)[0] == 0
    assert mask_sha256(mask) == mask_sha256(world.mask)
    assert_same_run(dense, world.dense)
    assert_same_run(masked, world.masked)
    assert_pruned_weights_zero(masked / "final.pt", mask)
