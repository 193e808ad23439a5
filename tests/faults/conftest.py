"""One small finished world (dense run, IMP mask, masked run, interrupted run) shared by the fault tests.

Every test copies what it damages into its own folder; the world itself is never changed.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import lth.data
import lth.train
from lth.cli import main
from lth.masks import dense_mask, prunable_names, save_mask
from lth.models import build

COMMON = ["--model.width", "4", "--data.name", "digits", "--data.subset_per_class", "10"]
TRAIN = ["--seed", "0", "--threads", "1", "--device", "cpu", "--train.epochs", "2", "--train.batch_size", "32"]


@dataclass(frozen=True)
class World:
    root: Path

    @property
    def dense(self) -> Path:  # init.pt, epoch1.pt, final.pt, metrics.csv, hparams.yaml, summary.json
        return self.root / "dense"

    @property
    def mask(self) -> Path:  # IMP level 1 of the dense run (mask.pt + mask.json)
        return self.root / "imp" / "level1" / "mask.pt"

    @property
    def masked(self) -> Path:  # the mask re-trained from epoch 1 of the dense run
        return self.root / "level1"

    @property
    def interrupted(self) -> Path:  # the dense recipe stopped after epoch 1: only .resume/
        return self.root / "interrupted"

    @property
    def wide_mask(self) -> Path:  # a mask of another model (width 8)
        return self.root / "wide" / "mask.pt"

    def dense_train_args(self, out_dir: Path, *extra: str) -> list[str]:
        """The dense run's own command, into `out_dir`: a rerun of it must end identical to it."""
        return [
            "train",
            "--init",
            str(self.dense / "init.pt"),
            "--out-dir",
            str(out_dir),
            "--save-epochs",
            "1",
            *TRAIN,
            *COMMON,
            *extra,
        ]

    def copy(self, source: Path, destination: Path) -> Path:
        """A private copy (a mask comes with its sidecar) that a test may damage."""
        destination.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, destination)
        else:
            shutil.copy2(source, destination)
            if source.suffix == ".pt" and source.with_suffix(".json").exists():
                shutil.copy2(source.with_suffix(".json"), destination.with_suffix(".json"))
        return destination


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> World:
    before = torch.get_num_threads()
    world = World(tmp_path_factory.mktemp("world"))
    try:
        assert main(["-q", "init", "--out", str(world.dense / "init.pt"), "--seed", "0", *COMMON]) == 0
        assert main(["-q", *world.dense_train_args(world.dense)]) == 0
        assert main(["-q", "prune", "--weights", str(world.dense / "final.pt"), "--out", str(world.mask)]) == 0
        assert (
            main(
                [
                    "-q",
                    "train",
                    "--init",
                    str(world.dense / "epoch1.pt"),
                    "--mask",
                    str(world.mask),
                    "--out-dir",
                    str(world.masked),
                    *TRAIN,
                    *COMMON,
                ]
            )
            == 0
        )
        calls = 0

        def evaluate_until_epoch_2(*args, **kwargs):  # val, test of epoch 1, then stop in epoch 2
            nonlocal calls
            calls += 1
            if calls == 3:
                raise KeyboardInterrupt
            return real_evaluate(*args, **kwargs)

        real_evaluate = lth.train.evaluate
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(lth.train, "evaluate", evaluate_until_epoch_2)
            with pytest.raises(KeyboardInterrupt):
                main(["-q", *world.dense_train_args(world.interrupted)])
        assert (world.interrupted / ".resume" / "state.pt").is_file()
        wide = build("resnet18", 10, width=8)
        save_mask(world.wide_mask, dense_mask(dict(wide.state_dict()), prunable_names(wide)))
    finally:
        torch.set_num_threads(before)
    return world


@pytest.fixture
def no_data_load(monkeypatch):
    """Fail the test if a command reaches the (slow) data load: its checks must come first."""

    def refuse(*args, **kwargs):
        pytest.fail("the command loaded data before rejecting its input")

    monkeypatch.setattr(lth.data, "load", refuse)


@pytest.fixture
def cli(capsys):
    """Run `lth` in-process: (exit code, stderr)."""

    def run(*argv: str | Path) -> tuple[int, str]:
        capsys.readouterr()
        code = main(["-q", *map(str, argv)])
        return code, capsys.readouterr().err

    return run
