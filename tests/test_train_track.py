"""`lth train --track hessian`: the top Hessian eigenvalue after every epoch, without changing the run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from conftest import TIMING_COLUMNS, read_metrics, state_dicts_equal

import lth.data
from lth.analysis.hessian import HessianTracker
from lth.checkpoints import init_model, load_checkpoint
from lth.cli import main
from lth.hparams import ModelHparams
from lth.masks import MaskEnforcer, dense_mask, prunable_names
from lth.train import METRIC_COLUMNS, EpochContext

pytestmark = pytest.mark.usefixtures("one_thread")
DATA = ["--data.name", "digits", "--data.subset_per_class", "20"]  # 180 training images
COMMON = ["--model.width", "8", *DATA]  # width 8 trains channels_last on the CPU
TRAIN = ["--seed", "0", "--threads", "1", "--device", "cpu", "--train.epochs", "2", "--train.batch_size", "32"]
SETTINGS = {"sample": "64", "sample_seed": "3", "tol": "0.001", "max_iter": "100"}
TRACK = [
    "--track",
    "hessian",
    *(f for key, value in SETTINGS.items() for f in (f"--hessian-{key.replace('_', '-')}", value)),
]
COLUMNS = ["hessian_eigenvalue", "hessian_iterations", "hessian_converged", "hessian_residual", "hessian_seconds"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """theta0, a 20% magnitude mask of it, and the same masked 2-epoch run with and without tracking."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("track")
    assert main(["-q", "init", "--out", str(root / "init.pt"), "--seed", "0", *COMMON]) == 0
    assert main(["-q", "prune", "--weights", str(root / "init.pt"), "--out", str(root / "mask.pt")]) == 0
    for name, flags in (("tracked", TRACK), ("plain", [])):
        assert (
            main(
                [
                    "-q",
                    "train",
                    "--init",
                    str(root / "init.pt"),
                    "--mask",
                    str(root / "mask.pt"),
                    "--out-dir",
                    str(root / name),
                    *TRAIN,
                    *COMMON,
                    *flags,
                ]
            )
            == 0
        )
    return root


def without(rows: list[dict[str, str]], columns: tuple[str, ...] | list[str]) -> list[dict[str, str]]:
    return [{key: value for key, value in row.items() if key not in columns} for row in rows]


def test_tracked_run_writes_the_columns_every_epoch(runs):
    with open(runs / "tracked" / "metrics.csv") as handle:
        assert handle.readline().strip().split(",") == METRIC_COLUMNS + COLUMNS
    rows = read_metrics(runs / "tracked" / "metrics.csv")
    assert [row["epoch"] for row in rows] == ["1", "2"]
    for row in rows:
        assert all(math.isfinite(float(row[column])) for column in COLUMNS)
        assert float(row["hessian_eigenvalue"]) != 0 and float(row["hessian_seconds"]) > 0
        assert 2 <= int(row["hessian_iterations"]) <= 100 and row["hessian_converged"] in ("0", "1")
    record = yaml.safe_load((runs / "tracked" / "hparams.yaml").read_text())
    assert record["track"] == {"hessian": {"sample": 64, "sample_seed": 3, "tol": 0.001, "max_iter": 100}}
    assert "track" not in yaml.safe_load((runs / "plain" / "hparams.yaml").read_text())


def test_tracking_does_not_change_the_trajectory(runs):
    tracked, plain = runs / "tracked", runs / "plain"
    assert state_dicts_equal(
        load_checkpoint(tracked / "final.pt")["state_dict"], load_checkpoint(plain / "final.pt")["state_dict"]
    )
    assert without(read_metrics(tracked / "metrics.csv"), [*TIMING_COLUMNS, *COLUMNS]) == without(
        read_metrics(plain / "metrics.csv"), TIMING_COLUMNS
    )


def test_last_epoch_equals_lth_analyze_hessian(runs):
    out = runs / "final_hessian.json"
    assert (
        main(
            [
                "-q",
                "analyze",
                "hessian",
                "--weights",
                str(runs / "tracked" / "final.pt"),
                "--mask",
                str(runs / "mask.pt"),
                "--out",
                str(out),
                "--seed",
                "0",
                "--threads",
                "1",
                "--device",
                "cpu",
                "--sample",
                SETTINGS["sample"],
                "--sample-seed",
                SETTINGS["sample_seed"],
                "--tol",
                SETTINGS["tol"],
                "--max-iter",
                SETTINGS["max_iter"],
                *DATA,
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    last = read_metrics(runs / "tracked" / "metrics.csv")[-1]
    # The same code on the same weights, sample and threads: equal to the last bit, not just close.
    assert float(last["hessian_eigenvalue"]) == result["eigenvalues"][0]
    assert int(last["hessian_iterations"]) == result["iterations"][0]
    assert float(last["hessian_residual"]) == result["residuals"][0]


def test_resume_refuses_other_tracking_and_continues_its_own(runs, monkeypatch, capsys):
    out = runs / "resumed"
    command = [
        "-q",
        "train",
        "--init",
        str(runs / "init.pt"),
        "--mask",
        str(runs / "mask.pt"),
        "--out-dir",
        str(out),
        *TRAIN,
        *COMMON,
    ]
    tracker_call = HessianTracker.__call__

    def interrupted(self, context):  # killed at the end of epoch 2, after epoch 1's state was saved
        if context.epoch == 2:
            raise KeyboardInterrupt
        return tracker_call(self, context)

    monkeypatch.setattr(HessianTracker, "__call__", interrupted)
    with pytest.raises(KeyboardInterrupt):
        main([*command, *TRACK])
    monkeypatch.setattr(HessianTracker, "__call__", tracker_call)
    capsys.readouterr()
    assert main(command) == 2  # untracked
    assert "other settings" in capsys.readouterr().err
    assert main([*command, *TRACK[:-1], "99"]) == 2  # another budget
    assert main([*command, *TRACK]) == 0
    drop = [*TIMING_COLUMNS, "hessian_seconds"]
    assert without(read_metrics(out / "metrics.csv"), drop) == without(
        read_metrics(runs / "tracked" / "metrics.csv"), drop
    )


@pytest.fixture
def no_data_load(monkeypatch):
    def refuse(*args, **kwargs):
        pytest.fail("the command loaded data before rejecting its input")

    monkeypatch.setattr(lth.data, "load", refuse)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--track", "hessian", "--hessian-sample", "0"], "--hessian-sample: 0 is not allowed; must be >= 1"),
        (
            ["--track", "hessian", "--hessian-sample-seed", "-1"],
            "--hessian-sample-seed: -1 is not allowed; must be >= 0",
        ),
        (
            ["--track", "hessian", "--hessian-tol", "0"],
            "--hessian-tol: 0.0 is not allowed; must be a finite number > 0",
        ),
        (["--track", "hessian", "--hessian-tol", "inf"], "--hessian-tol: inf is not allowed"),
        (["--track", "hessian", "--hessian-max-iter", "0"], "--hessian-max-iter: 0 is not allowed; must be >= 1"),
        (["--hessian-tol", "0.01"], "--hessian-tol: only used with --track hessian"),
    ],
)
def test_bad_tracking_settings_exit_2_before_loading_data(runs, tmp_path, capsys, no_data_load, flags, message):
    assert (
        main(["train", "--init", str(runs / "init.pt"), "--out-dir", str(tmp_path / "run"), *TRAIN, *COMMON, *flags])
        == 2
    )
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_sample_larger_than_the_training_split_exits_2_before_training(runs, tmp_path, capsys):
    assert (
        main(
            [
                "train",
                "--init",
                str(runs / "init.pt"),
                "--out-dir",
                str(tmp_path / "run"),
                *TRAIN,
                *COMMON,
                "--track",
                "hessian",
                "--hessian-sample",
                "181",
            ]
        )
        == 2
    )
    assert (
        "--hessian-sample: 181 is not allowed; the training split has only 180 images (must be in [1, 180])"
        in capsys.readouterr().err
    )
    # Checked once the data is loaded (it needs the split's size): the attempt's log says why, and no run is there.
    assert sorted(path.name for path in (tmp_path / "run").iterdir()) == [".lock", "train.log"]
    assert "--hessian-sample: 181 is not allowed" in (tmp_path / "run" / "train.log").read_text()


def test_unknown_tracker_is_a_usage_error(runs, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--init", str(runs / "init.pt"), "--out-dir", str(tmp_path), *TRAIN, "--track", "nope"])
    assert exit_info.value.code == 2 and "invalid choice: 'nope'" in capsys.readouterr().err


def test_snapshot_shares_cmd_train_and_tracks_nothing(runs, tmp_path):
    out = tmp_path / "epoch1.pt"
    assert (
        main(
            [
                "-q",
                "snapshot",
                "--epoch",
                "1",
                "--init",
                str(runs / "init.pt"),
                "--mask",
                str(runs / "mask.pt"),
                "--out",
                str(out),
                *TRAIN,
                *COMMON,
            ]
        )
        == 0
    )
    assert load_checkpoint(out)["epoch"] == 1


def test_tracker_leaves_the_model_and_the_rng_alone(digits_data):
    """On a channels_last model in train mode: weights, BatchNorm statistics, the training flag, the
    memory format and the global RNG are as they were, and the value is that of an NCHW copy."""
    model = init_model(ModelHparams(name="resnet18", width=8), 10, seed=0).to(memory_format=torch.channels_last)
    mask = dense_mask(model.state_dict(), prunable_names(model))
    mask = {
        name: torch.rand(keep.shape, generator=torch.Generator().manual_seed(1)) < 0.5 for name, keep in mask.items()
    }
    MaskEnforcer(model, mask).apply_to_weights()
    with torch.no_grad():  # BatchNorm statistics of the data, as after training
        model(torch.randn(16, 3, 32, 32).contiguous(memory_format=torch.channels_last))
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    rng = torch.get_rng_state()
    tracker = HessianTracker(digits_data, mask, sample=32, sample_seed=1, max_iter=5)  # converged or not
    context = EpochContext(1, model, digits_data, torch.device("cpu"), {"seconds": 1.0})
    columns = tracker(context)
    assert list(columns) == COLUMNS and columns["hessian_converged"] in (0, 1)
    assert model.training and torch.equal(torch.get_rng_state(), rng)
    assert state_dicts_equal(model.state_dict(), before)
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters() if p.dim() == 4)
    again = tracker(context)  # the sample's batches are kept; the same model gives the same value
    assert {**again, "hessian_seconds": 0} == {**columns, "hessian_seconds": 0}
