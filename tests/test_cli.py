"""The `lth` command line, in-process: one IMP round by hand, `info`, and bad input (exit 2)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import read_metrics

import lth.data
from lth.cli import main
from lth.masks import dense_mask, prunable_names, remaining_after, save_mask
from lth.models import build

pytestmark = pytest.mark.usefixtures("one_thread")
COMMON = ["--model.width", "4", "--data.name", "digits", "--data.subset_per_class", "10"]
TRAIN = ["--seed", "0", "--threads", "1", "--device", "cpu", "--train.epochs", "2", "--train.batch_size", "32"]


@pytest.fixture(scope="module")
def imp_round(tmp_path_factory) -> Path:
    """init -> dense train (2 epochs, keep epoch1.pt) -> prune -> masked train rewound to epoch 1."""
    root = tmp_path_factory.mktemp("cli")
    assert main(["init", "--out", str(root / "dense" / "init.pt"), "--seed", "0", *COMMON]) == 0
    assert (
        main(
            [
                "train",
                "--init",
                str(root / "dense" / "init.pt"),
                "--out-dir",
                str(root / "dense"),
                "--save-epochs",
                "1",
                *TRAIN,
                *COMMON,
            ]
        )
        == 0
    )
    assert (
        main(
            ["prune", "--weights", str(root / "dense" / "final.pt"), "--out", str(root / "imp" / "level1" / "mask.pt")]
        )
        == 0
    )
    mask = root / "imp" / "level1" / "mask.pt"
    assert (
        main(
            [
                "train",
                "--init",
                str(root / "dense" / "epoch1.pt"),
                "--mask",
                str(mask),
                "--out-dir",
                str(root / "level1"),
                *TRAIN,
                *COMMON,
            ]
        )
        == 0
    )
    return root


def info(capsys, path: Path, *flags: str) -> dict:
    capsys.readouterr()
    assert main(["info", str(path), *flags]) == 0
    out = capsys.readouterr().out
    return json.loads(out) if "--json" in flags else yaml.safe_load(out)


@pytest.fixture
def no_data_load(monkeypatch):
    """Fail the test if a command reaches the (slow) data load."""

    def refuse(*args, **kwargs):
        pytest.fail("the command loaded data before rejecting its input")

    monkeypatch.setattr(lth.data, "load", refuse)


def test_imp_round_files(imp_round):
    dense, level1 = imp_round / "dense", imp_round / "level1"
    assert {"init.pt", "epoch1.pt", "final.pt", "metrics.csv", "summary.json", "hparams.yaml"} <= {
        p.name for p in dense.iterdir()
    }
    assert [row["epoch"] for row in read_metrics(dense / "metrics.csv")] == ["1", "2"]
    assert [row["epoch"] for row in read_metrics(level1 / "metrics.csv")] == ["2"]  # rewound: start epoch 1
    hparams = yaml.safe_load((level1 / "hparams.yaml").read_text())
    assert hparams["start_epoch"] == 1 and hparams["model"]["width"] == 4 and hparams["train"]["epochs"] == 2
    sidecar = json.loads((imp_round / "imp" / "level1" / "mask.json").read_text())
    assert hparams["mask"]["sha256"] == sidecar["sha256"]


def test_info_on_mask(imp_round, capsys):
    mask_info = info(capsys, imp_round / "imp" / "level1" / "mask.pt")
    assert mask_info["kind"] == "mask" and mask_info["collapsed_layers"] == []
    assert mask_info["sparsity"] == pytest.approx(0.2, abs=1e-3)
    assert mask_info["kept"] == remaining_after(mask_info["total"], 0.2, 1)
    assert info(capsys, imp_round / "imp" / "level1" / "mask.pt", "--json") == mask_info


def test_info_on_checkpoint(imp_round, capsys):
    ckpt = info(capsys, imp_round / "level1" / "final.pt")
    assert ckpt["kind"] == "checkpoint" and ckpt["epoch"] == 2 and ckpt["num_classes"] == 10
    assert ckpt["model"]["width"] == 4 and ckpt["model"]["name"] == "resnet18"
    assert ckpt["conv_sparsity"] == pytest.approx(0.2, abs=1e-3)
    dense = info(capsys, imp_round / "dense" / "epoch1.pt")
    assert dense["epoch"] == 1 and dense["conv_sparsity"] == 0.0


def test_info_on_run_folder(imp_round, capsys):
    folder = info(capsys, imp_round / "level1")
    assert folder["kind"] == "run folder" and folder["status"] == "finished"
    assert folder["summary"]["start_epoch"] == 1 and folder["summary"]["epochs"] == 2
    assert folder["summary"]["sparsity"] == pytest.approx(0.2, abs=1e-3)
    assert folder["hparams"]["lth"] == "train"
    assert {"final.pt", "metrics.csv", "summary.json", "hparams.yaml"} <= set(folder["files"])


def test_console_script_info(imp_round):
    bindir = str(Path(sys.executable).parent)
    exe = shutil.which("lth", path=bindir + os.pathsep + os.environ.get("PATH", ""))
    assert exe, "the `lth` console script is not installed: pip install -e ."
    result = subprocess.run(
        [exe, "info", str(imp_round / "imp" / "level1" / "mask.pt")], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["kind"] == "mask"


def test_bad_value_exits_2_before_loading_data(imp_round, tmp_path, capsys, no_data_load):
    code = main(
        [
            "train",
            "--init",
            str(imp_round / "dense" / "init.pt"),
            "--out-dir",
            str(tmp_path / "run"),
            "--train.lr",
            "-1",
            *TRAIN,
            *COMMON,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "train.lr" in err and "-1" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_missing_init_exits_2_naming_the_path(tmp_path, capsys, no_data_load):
    missing = tmp_path / "nope" / "init.pt"
    assert main(["train", "--init", str(missing), "--out-dir", str(tmp_path / "run"), *TRAIN, *COMMON]) == 2
    err = capsys.readouterr().err
    assert "--init" in err and str(missing) in err


def test_mask_of_another_width_exits_2(imp_round, tmp_path, capsys, no_data_load):
    wide = build("resnet18", 10, width=8)
    save_mask(tmp_path / "mask8.pt", dense_mask(dict(wide.state_dict()), prunable_names(wide)))
    code = main(
        [
            "train",
            "--init",
            str(imp_round / "dense" / "init.pt"),
            "--mask",
            str(tmp_path / "mask8.pt"),
            "--out-dir",
            str(tmp_path / "run"),
            *TRAIN,
            *COMMON,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "shape" in err and "Traceback" not in err


def test_model_flags_that_do_not_fit_init_exit_2(imp_round, tmp_path, capsys, no_data_load):
    code = main(
        [
            "train",
            "--init",
            str(imp_round / "dense" / "init.pt"),
            "--out-dir",
            str(tmp_path / "run"),
            *TRAIN,
            *COMMON,
            "--model.width",
            "8",
        ]
    )
    assert code == 2 and "--init" in capsys.readouterr().err


def test_other_bad_input_exits_2(imp_round, tmp_path, capsys):
    assert (
        main(
            [
                "prune",
                "--weights",
                str(imp_round / "dense" / "final.pt"),
                "--out",
                str(tmp_path / "m.pt"),
                "--rounds",
                "0",
            ]
        )
        == 2
    )
    assert "--rounds" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "missing.pt")]) == 2
    assert str(tmp_path / "missing.pt") in capsys.readouterr().err
    finished = imp_round / "dense"
    before = {path: path.stat().st_mtime_ns for path in finished.rglob("*")}
    for flags in ([], ["--force"]):  # a finished run is never trained over, not even with --force
        assert (
            main(["train", "--init", str(finished / "init.pt"), "--out-dir", str(finished), *TRAIN, *COMMON, *flags])
            == 2
        )
        assert "already holds this finished run; pass --reuse to keep it" in capsys.readouterr().err
    assert {path: path.stat().st_mtime_ns for path in finished.rglob("*")} == before


def test_ls_says_what_each_run_folder_is_and_how_far_it_got(tmp_path, capsys):
    from lth.cli import main

    runs = tmp_path / "results" / "runs"
    for name in ("dense-aaaaaaaaaa", "sparse-bbbbbbbbbb", "sparse-cccccccccc", "imp-dddddddddd", "sparse-eeeeeeeeee"):
        (runs / name).mkdir(parents=True)
    # The accuracy summary.csv calls test_acc_pct (at the best-validation epoch), not the final one.
    (runs / "dense-aaaaaaaaaa" / "summary.json").write_text(
        json.dumps({"test_acc_at_best_val": 0.5, "final_test_acc": 0.25})
    )
    (runs / "dense-aaaaaaaaaa" / "hparams.yaml").write_text(
        yaml.safe_dump({"model": {"name": "vgg16", "width": 8}, "data": {"name": "npz"}, "train": {"epochs": 3}})
    )
    (runs / "sparse-bbbbbbbbbb" / ".resume").mkdir()
    (runs / "sparse-bbbbbbbbbb" / ".resume" / "state.pt").write_bytes(b"x" * 2048)
    for level in (1, 2):
        (runs / "imp-dddddddddd" / f"level{level}").mkdir()
        (runs / "imp-dddddddddd" / f"level{level}" / "mask.json").write_text("{}")
    # An at+trt ticket rewound to epoch 2, at level 2 of the chain: the variant column says so.
    (runs / "sparse-eeeeeeeeee" / "summary.json").write_text(
        json.dumps({"test_acc_at_best_val": 0.9, "final_test_acc": 0.875})
    )
    (runs / "sparse-eeeeeeeeee" / "hparams.yaml").write_text(
        yaml.safe_dump(
            {
                "model": {"name": "resnet18", "width": 4, "activation": "swish", "skip": "conv1x1"},
                "data": {"name": "digits"},
                "train": {"epochs": 10, "label_smoothing": 0.1},
                "gradinit": {"enabled": True},
                "start_epoch": 2,
                "mask": {"path": "results/runs/imp-dddddddddd/level2/mask.pt"},
                "init": {"path": "dense/rewind/epoch2.pt"},
            }
        )
    )
    assert main(["ls", str(tmp_path / "results")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["kind", "hash", "status", "variant", "settings", "test_acc_pct", "age", "size"]
    assert lines[1].split()[:9] == ["dense", "aaaaaaaaaa", "finished", "dense", "vgg16", "w8", "npz", "3", "ep"]
    assert lines[1].split()[9] == "50.00"
    assert lines[2].split()[:2] == ["imp", "dddddddddd"] and "2 levels" in lines[2] and "levels 1-2" in lines[2]
    assert lines[3].split()[2] == "resumable" and "2.0 kB" in lines[3]
    assert lines[4].split()[2] == "empty"
    assert lines[5].split()[2:4] == ["finished", "at+trt+rewind"]
    assert "resnet18 w4 digits 10 ep from 2, level 2  90.00" in lines[5]
    assert main(["ls", str(tmp_path / "results"), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [
        (run["kind"], run["status"], run["variant"], run["test_acc_pct"], run["final_test_acc_pct"]) for run in listed
    ] == [
        ("dense", "finished", "dense", 50.0, 25.0),
        ("imp", "2 levels", "", None, None),
        ("sparse", "resumable", "", None, None),
        ("sparse", "empty", "", None, None),
        ("sparse", "finished", "at+trt+rewind", 90.0, 87.5),
    ]
    assert main(["ls", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("record", "variant"),
    [
        ({}, "dense"),
        ({"model": {"skip": "conv1x1", "activation": "swish"}}, "dense+at"),  # a dense baseline
        ({"mask": {"path": "m.pt"}}, "lth"),
        (
            {
                "mask": {"path": "m.pt"},
                "model": {"skip": "conv1x1", "activation": "swish"},
                "gradinit": {"enabled": True},
                "train": {"label_smoothing": 0.1},
            },
            "at+trt",
        ),
        (
            {
                "mask": {"path": "m.pt"},
                "model": {"skip": "conv1x1", "activation": "swish"},
                "gradinit": {"enabled": True},
                "train": {"kd_alpha": 0.9},
            },
            "at+gradinit+kd",
        ),
        ({"mask": {"path": "m.pt"}, "start_epoch": 3}, "rewind"),
        ({"start_epoch": 3}, "dense"),  # a dense run resumed from epoch 3 is no rewound ticket
        ({"mask": {"path": "m.pt"}, "init": {"path": "runs/dense-x/reinit/seed1000.pt"}}, "reinit"),
        ({"mask": {"path": "m.pt"}, "model": {"activation": "mish", "skip": "identity"}}, "mish+skip_identity"),
        ({"mask": {"path": "m.pt"}, "train": {"kd_alpha": 0.5}}, "kd_alpha=0.5"),  # by hand: no part sets 0.5
        ({"sparse_training": {"algorithm": "rigl"}, "model": {"activation": "swish"}}, "swish"),  # RigL's own run
    ],
)
def test_ls_names_the_variant_a_run_trained(record, variant):
    from lth.run_folders import trained_as

    assert trained_as(record) == variant
