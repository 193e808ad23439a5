"""Bad input and refused actions: exit 2, one line naming the flag, key or file, before any data is loaded."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from faults.conftest import COMMON, TRAIN, World
from lth.checkpoints import build_model, load_checkpoint, save_checkpoint
from lth.errors import LthError
from lth.hparams import ModelHparams, TrainHparams
from lth.io import read_sealed_json
from lth.manifest import write_summary
from lth.masks import load_mask, mask_hash
from lth.train import DivergedError, RunOptions, train

pytestmark = pytest.mark.usefixtures("one_thread")


def config(tmp: Path, text: str) -> Path:
    (tmp / "config.yaml").write_text(text)
    return tmp / "config.yaml"


def init_args(world: World, tmp: Path, *extra) -> list:
    return ["train", "--init", world.dense / "init.pt", "--out-dir", tmp / "run", *TRAIN, *COMMON, *extra]


def regular_file(tmp: Path) -> Path:
    (tmp / "file").write_text("")
    return tmp / "file"


# (command line for world and tmp, text the one-line error must contain); all before any data load.
Case = tuple[Callable[[World, Path], list], list[str]]
BAD_INPUTS: dict[str, Case] = {
    "config: misspelt section modle": (
        lambda w, t: init_args(w, t, "--config", config(t, "modle: {width: 4}\n")),
        ["config.yaml", "'modle'", "model, data, train, prune, gradinit"],
    ),
    "config: misspelt section trian": (
        lambda w, t: init_args(w, t, "--config", config(t, "trian: {epochs: 1}\n")),
        ["config.yaml", "'trian'", "allowed sections"],
    ),
    "config: section not a mapping": (
        lambda w, t: init_args(w, t, "--config", config(t, "model: 5\n")),
        ["config.yaml", "'model'", "mapping"],
    ),
    "config: YAML syntax error": (
        lambda w, t: init_args(w, t, "--config", config(t, "model: {width: 4\n")),
        ["config.yaml", "not valid YAML", "line"],
    ),
    "config: a key given twice": (
        lambda w, t: init_args(w, t, "--config", config(t, "train: {epochs: 2, epochs: 7}")),
        ["config.yaml", "'train.epochs'", "twice", "line 1, column 9", "line 1, column 20"],
    ),
    "config: a folder": (lambda w, t: init_args(w, t, "--config", t), ["--config", "cannot be read"]),
    "config: unknown key": (
        lambda w, t: init_args(w, t, "--config", config(t, "train: {epoch: 1}\n")),
        ["train.epoch", "unknown key"],
    ),
    "config: lr .inf": (
        lambda w, t: init_args(w, t, "--config", config(t, "train: {lr: .inf}\n")),
        ["train.lr", "finite"],
    ),
    "flag: lr .inf": (lambda w, t: init_args(w, t, "--train.lr", ".inf"), ["train.lr", "inf", "finite"]),
    "flag: lr nan": (lambda w, t: init_args(w, t, "--train.lr", ".nan"), ["train.lr", "finite"]),
    "flag: lr 1e999": (lambda w, t: init_args(w, t, "--train.lr", "1e999"), ["train.lr", "1e999", "finite"]),
    "flag: a key given twice": (
        lambda w, t: init_args(w, t, "--train.lr", "{a: 1, a: 2}"),
        ["--train.lr", "'a'", "twice"],
    ),
    "flag: gradinit.eta inf": (lambda w, t: init_args(w, t, "--gradinit.eta", ".inf"), ["gradinit.eta", "finite"]),
    "--threads 0": (lambda w, t: init_args(w, t, "--threads", "0"), ["--threads", ">= 1"]),
    "--seed -1 to train": (lambda w, t: init_args(w, t, "--seed", "-1"), ["--seed", "-1", ">= 0"]),
    "--seed -1 to init": (lambda w, t: ["init", "--out", t / "i.pt", "--seed", "-1", *COMMON], ["--seed", ">= 0"]),
    "--out-dir under a file": (
        lambda w, t: ["train", "--init", w.dense / "init.pt", "--out-dir", regular_file(t) / "run", *TRAIN, *COMMON],
        ["file", "not a folder"],
    ),
    "--out-dir is a file": (
        lambda w, t: ["train", "--init", w.dense / "init.pt", "--out-dir", regular_file(t), *TRAIN, *COMMON],
        ["file", "not a folder"],
    ),
    "init --out is a folder": (lambda w, t: ["init", "--out", t, "--seed", "0", *COMMON], ["--out", "is a folder"]),
    "init --out under a file": (
        lambda w, t: ["init", "--out", regular_file(t) / "i.pt", "--seed", "0", *COMMON],
        ["--out", "not a folder"],
    ),
    "prune --out is a folder": (
        lambda w, t: ["prune", "--weights", w.dense / "final.pt", "--out", t],
        ["--out", "is a folder"],
    ),
    "prune --out ends in .json": (
        lambda w, t: ["prune", "--weights", w.dense / "final.pt", "--out", t / "m.json"],
        ["--out", ".json"],
    ),
    "aggregate --out under a file": (
        lambda w, t: ["aggregate", "--out", regular_file(t) / "s.csv", f"0:dense:0::{w.dense}"],
        ["--out", "not a folder"],
    ),
    "plot --summary missing": (
        lambda w, t: ["plot", "--summary", t / "none.csv", "--out", t / "f.png"],
        ["--summary", "none.csv"],
    ),
    "aggregate: not a run folder": (
        lambda w, t: ["aggregate", "--out", t / "s.csv", f"0:dense:0::{t}"],
        ["no finished run"],
    ),
    # An intact result is never replaced (the two examples, and every other writing command);
    # tables and figures are rebuilt with --force.
    "init over a finished run's final.pt": (
        lambda w, t: ["init", "--out", w.dense / "final.pt", "--seed", "0", "--force", *COMMON],
        ["final.pt", "other weights than theta0"],
    ),
    "prune over its own --weights": (
        lambda w, t: ["prune", "--weights", w.dense / "final.pt", "--out", w.dense / "final.pt", "--force"],
        ["final.pt", "another kind of file than an lth mask", "never replaced"],
    ),
    "prune over an existing mask": (
        lambda w, t: ["prune", "--weights", w.dense / "final.pt", "--out", w.mask],
        ["mask.pt", "already exists", "--reuse"],
    ),
    "prune over an existing mask, --force": (
        lambda w, t: ["prune", "--weights", w.dense / "final.pt", "--out", w.mask, "--force"],
        ["mask.pt", "already exists"],
    ),
    "aggregate over an existing file": (
        lambda w, t: ["aggregate", "--out", w.dense / "metrics.csv", f"0:dense:0::{w.dense}"],
        ["metrics.csv", "--force"],
    ),
    "plot over an existing file": (
        lambda w, t: ["plot", "--summary", w.dense / "metrics.csv", "--out", w.dense / "hparams.yaml"],
        ["hparams.yaml", "--force"],
    ),
    "train into a finished run": (lambda w, t: w.dense_train_args(w.dense), ["finished run", "--reuse"]),
    "train into a finished run, --force": (
        lambda w, t: w.dense_train_args(w.dense, "--force"),
        ["finished run", "--reuse"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_refused_before_work(world, tmp_path, cli, no_data_load, case):
    command, fragments = BAD_INPUTS[case]
    before = {p: p.stat().st_mtime_ns for p in world.root.rglob("*") if p.is_file()}
    code, err = cli(*command(world, tmp_path))
    assert code == 2, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in: {err}"
    assert {p: p.stat().st_mtime_ns for p in world.root.rglob("*") if p.is_file()} == before, "a file was changed"
    assert not (tmp_path / "run" / "summary.json").exists()


def test_reuse_keeps_what_is_intact_and_force_replaces_only_what_is_damaged(world, tmp_path, cli):
    """The two ways past the refusals above: --reuse succeeds without touching an intact result,
    --force rewrites a damaged one (and never an intact one); tables are rebuilt with --force."""
    dense = world.copy(world.dense, tmp_path / "dense")
    init = ["init", "--out", dense / "init.pt", "--seed", "0", *COMMON]
    written = (dense / "init.pt").stat().st_mtime_ns
    assert cli(*init)[0] == 2 and cli(*init, "--force")[0] == 2
    assert cli(*init, "--reuse")[0] == 0 and (dense / "init.pt").stat().st_mtime_ns == written
    (dense / "init.pt").write_bytes((dense / "init.pt").read_bytes()[:-100])  # cut short
    code, err = cli(*init, "--reuse")
    assert code == 2 and "exists but is damaged" in err and "pass --force to replace it" in err
    assert cli(*init, "--reuse", "--force")[0] == 0
    assert torch.equal(
        load_checkpoint(dense / "init.pt")["state_dict"]["conv1.weight"],
        load_checkpoint(world.dense / "init.pt")["state_dict"]["conv1.weight"],
    )
    mask = world.copy(world.mask, tmp_path / "imp" / "mask.pt")
    prune = ["prune", "--weights", dense / "final.pt", "--out", mask]
    assert cli(*prune, "--force")[0] == 2
    mask.with_suffix(".json").unlink()  # a mask killed before its sidecar was written
    assert cli(*prune)[0] == 2 and cli(*prune, "--force")[0] == 0
    assert mask_hash(load_mask(mask)) == mask_hash(load_mask(world.mask))
    rows = f"0:dense:0::{dense}"
    assert cli("aggregate", "--out", tmp_path / "s.csv", rows)[0] == 0
    assert cli("aggregate", "--out", tmp_path / "s.csv", rows)[0] == 2
    assert cli("aggregate", "--out", tmp_path / "s.csv", rows, "--force")[0] == 0


NPZ_LAYOUTS = {
    "no training images": {"train": 0, "test": 5, "classes": False},
    "no training images, classes listed": {"train": 0, "test": 5, "classes": True},
    "no test images, classes listed": {"train": 20, "test": 0, "classes": True},
}


@pytest.mark.parametrize("layout", list(NPZ_LAYOUTS))
def test_empty_npz_split_is_a_clear_error(tmp_path, cli, layout):
    sizes = NPZ_LAYOUTS[layout]
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        n = sizes[split]
        extra = {"classes": np.array([str(c) for c in range(10)])} if sizes["classes"] else {}
        np.savez(
            tmp_path / f"{split}.npz",
            images=rng.integers(0, 255, (n, 8, 8, 3), dtype=np.uint8),
            labels=np.arange(n) % 10,
            **extra,
        )
    npz = ["--data.name", "npz", "--data.root", str(tmp_path), "--model.width", "4"]
    assert (
        cli("init", "--out", tmp_path / "init.pt", "--seed", "0", "--model.width", "4", "--data.name", "digits")[0] == 0
    )
    code, err = cli(
        "train",
        "--init",
        tmp_path / "init.pt",
        "--out-dir",
        tmp_path / "run",
        "--seed",
        "0",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--train.epochs",
        "1",
        *npz,
    )
    assert code == 2 and "Traceback" not in err and "holds no images" in err, err
    assert ".npz" in err


def test_stale_files_of_an_earlier_run_are_refused_then_forced_away(world, tmp_path, cli):
    """The issue's case: --save-epochs 1, summary.json deleted, a new run (another seed) into the folder."""
    run = world.copy(world.dense, tmp_path / "run")
    (run / "summary.json").unlink()
    args = [
        "train",
        "--init",
        run / "init.pt",
        "--out-dir",
        run,
        "--seed",
        "1",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--train.epochs",
        "1",
        "--train.batch_size",
        "32",
        *COMMON,
    ]
    code, err = cli(*args)
    assert code == 2 and "epoch1.pt" in err and "final.pt" in err and "--force" in err, err
    assert cli(*args, "--force")[0] == 0
    assert sorted(p.name for p in run.glob("[!.]*")) == [
        "final.pt",
        "hparams.yaml",
        "init.pt",
        "metrics.csv",
        "summary.json",
        "train.log",
    ]  # the old seed's epoch1.pt is gone
    # Files the workflow keeps in a run folder are not the run's: they never block a new run.
    other = tmp_path / "other"
    other.mkdir()
    for name in ("init.pt", "train.log", "train.benchmark.tsv"):
        (other / name).write_bytes((run / "init.pt").read_bytes() if name == "init.pt" else b"")
    assert cli("train", "--init", other / "init.pt", "--out-dir", other, *args[5:])[0] == 0


def test_diverged_run_is_stopped_and_publishes_nothing(world, tmp_path, cli):
    """The issue's case: --train.lr 1e6 exits 0 today; now exit 2 naming the epoch and the cause."""
    run = tmp_path / "run"
    code, err = cli(*world.dense_train_args(run, "--train.lr", "1e6"))
    assert code == 2 and "Traceback" not in err, err
    assert "diverged in epoch 1" in err and "nan" in err and "train.lr" in err and str(run) in err
    # Its log and lock are not results: nothing else is there but the resume state.
    assert not [p for p in run.glob("*") if p.name not in (".resume", ".lock", "train.log")], "it published files"
    assert "diverged in epoch 1" in (run / "train.log").read_text()


def test_divergence_after_a_good_epoch_keeps_the_resume_state(digits_data, tmp_path):
    """A loss that turns NaN in epoch 2: the state after epoch 1 stays for inspection; nothing is published."""
    model_hp = ModelHparams(name="resnet18", width=4)
    calls = 0

    def loss_fn(outputs, labels, inputs):
        nonlocal calls
        calls += 1
        loss = torch.nn.functional.cross_entropy(outputs, labels)
        return loss * float("nan") if calls > 6 else loss  # 6 batches per epoch at batch size 32

    hparams = TrainHparams(epochs=2, batch_size=32)
    with pytest.raises(DivergedError, match=r"diverged in epoch 2 .*training loss nan.*lower train.lr.*after epoch 1"):
        train(
            build_model(model_hp, 10),
            digits_data,
            hparams,
            tmp_path,
            seed=0,
            model_hparams=model_hp,
            record={},
            loss_fn=loss_fn,
            options=RunOptions(device="cpu", threads=1),
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == [".resume"]
    assert torch.load(tmp_path / ".resume" / "state.pt", weights_only=True)["epoch"] == 1


def test_prune_refuses_non_finite_weights(world, tmp_path, cli):
    payload = load_checkpoint(world.dense / "final.pt")
    model = build_model(ModelHparams.from_dict(payload["model"]), 10)
    payload["state_dict"]["layer1.0.conv1.weight"][0, 0, 0, 0] = float("inf")
    model.load_state_dict(payload["state_dict"])
    save_checkpoint(tmp_path / "diverged.pt", model, ModelHparams.from_dict(payload["model"]), 10, epoch=2)
    code, err = cli("prune", "--weights", tmp_path / "diverged.pt", "--out", tmp_path / "mask.pt")
    assert code == 2 and "non-finite" in err and "diverged.pt" in err and "layer1.0.conv1.weight" in err, err
    assert not (tmp_path / "mask.pt").exists()


def test_aggregate_refuses_a_non_finite_summary(world, tmp_path, cli):
    """A summary.json with a NaN accuracy (as the issue's diverged runs left) is not a result."""
    run = world.copy(world.masked, tmp_path / "run")
    summary = read_sealed_json(run / "summary.json", "summary", "")
    files = list(summary.pop("files"))
    write_summary(run, {**summary, "test_acc_at_best_val": float("nan")}, files)
    code, err = cli("aggregate", "--out", tmp_path / "s.csv", f"0:lth:1:magnitude:{run}")
    assert code == 2 and "non-finite" in err and "test_acc_at_best_val" in err and str(run) in err, err


def test_resume_with_other_threads_warns_and_records_it(world, tmp_path, cli, caplog):
    run = world.copy(world.interrupted, tmp_path / "run")
    args = world.dense_train_args(run)
    args[args.index("--threads") + 1] = "2"
    with caplog.at_level(logging.WARNING, logger="lth"):
        assert cli(*args)[0] == 0
    assert any("resuming with 2 threads after 1" in record.getMessage() for record in caplog.records)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["threads"] == 2 and summary["thread_changes"] == [{"epoch": 1, "from": 1, "to": 2}]


def test_one_epoch_run_starts_at_the_full_learning_rate():
    """Milestone 0.5 of 1 epoch rounded to epoch 0 and decayed the rate before any training."""
    assert TrainHparams(epochs=1, lr=0.1, milestones=(0.5, 0.75)).lr_at(0) == 0.1
    assert TrainHparams(epochs=4, lr=1.0, milestones=(0.5, 0.75), gamma=0.5).milestone_epochs() == [2, 3]
    assert TrainHparams(epochs=5, milestones=(0.5,)).milestone_epochs() == [2]  # Python's round: 2.5 -> 2


def test_lth_error_is_the_base_of_every_refusal():
    from lth.io import IntegrityError, WriteError

    assert issubclass(IntegrityError, LthError) and issubclass(WriteError, LthError)
    assert issubclass(DivergedError, LthError)
