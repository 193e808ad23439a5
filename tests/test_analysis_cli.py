"""`lth analyze` end to end on a tiny trained ticket: each analysis writes its CSV; bad input fails first."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import lth.data
from lth.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")
DATA = ["--data.name", "digits", "--data.subset_per_class", "10", "--seed", "0", "--threads", "1"]


@pytest.fixture(scope="module")
def ticket(tmp_path_factory) -> tuple[Path, Path]:
    """A one-epoch dense run of ResNet-18 at width 4 and its 20% mask."""
    root = tmp_path_factory.mktemp("analyze")
    model = ["--model.width", "4", "--data.name", "digits", "--data.subset_per_class", "10"]
    assert main(["-q", "init", "--out", str(root / "init.pt"), "--seed", "0", *model]) == 0
    assert (
        main(
            [
                "-q",
                "train",
                "--init",
                str(root / "init.pt"),
                "--out-dir",
                str(root / "dense"),
                "--seed",
                "0",
                "--threads",
                "1",
                "--train.epochs",
                "1",
                "--train.batch_size",
                "32",
                *model,
            ]
        )
        == 0
    )
    assert main(["-q", "prune", "--weights", str(root / "dense" / "final.pt"), "--out", str(root / "mask.pt")]) == 0
    return root / "dense" / "final.pt", root / "mask.pt"


def analyze(what: str, weights: Path, mask: Path, out: Path, *extra: str) -> pd.DataFrame:
    assert (
        main(["-q", "analyze", what, "--weights", str(weights), "--mask", str(mask), "--out", str(out), *DATA, *extra])
        == 0
    )
    return pd.read_csv(out)


def test_activation_sparsity_per_threshold_and_stage_and_in_total(ticket, tmp_path):
    stages = ["stem", "layer1", "layer2", "layer3", "layer4", "all"]
    table = analyze("activations", *ticket, tmp_path / "a.csv")  # the default thresholds: 0, 0.001, 0.01
    assert list(zip(table["threshold"], table["stage"])) == [(t, s) for t in (0.0, 0.001, 0.01) for s in stages]
    for _, rows in table.groupby("threshold"):
        rows = rows.set_index("stage")
        assert rows.loc["all", "near_zero"] == rows.drop(index="all")["near_zero"].sum()
        assert 0 < rows.loc["all", "fraction"] < 1  # ReLU: exact zeros even at threshold 0
    assert (table.groupby("stage")["total"].nunique() == 1).all()  # the same outputs at every threshold
    assert table.groupby("stage", sort=False)["near_zero"].is_monotonic_increasing.all()
    # 0 alone is allowed, and gives the rows it gives among others (the same single pass).
    zero = analyze("activations", *ticket, tmp_path / "zero.csv", "--thresholds", "0")
    pd.testing.assert_frame_equal(zero, table[table["threshold"] == 0].reset_index(drop=True))


@pytest.mark.parametrize("what", ["landscape", "input-landscape"])
def test_a_grid_split_into_parts_equals_the_whole(ticket, tmp_path, what):
    grid = ["--points", "3", "--sample", "40"]
    whole = analyze(what, *ticket, tmp_path / "whole.csv", *grid)
    parts = [
        analyze(what, *ticket, tmp_path / f"part{k}.csv", *grid, "--part", str(k), "--parts", "2") for k in range(2)
    ]
    merged = pd.concat(parts).sort_values("index").reset_index(drop=True)
    assert len(whole) == 9 and merged.equals(whole)


def test_hessian_records_the_sample_and_perturbation_follows_its_eigenvector(ticket, tmp_path):
    import json

    assert (
        main(
            [
                "-q",
                "analyze",
                "hessian",
                "--weights",
                str(ticket[0]),
                "--mask",
                str(ticket[1]),
                "--out",
                str(tmp_path / "h.json"),
                "--sample",
                "30",
                *DATA,
            ]
        )
        == 0
    )
    record = json.loads((tmp_path / "h.json").read_text())
    assert len(record["indices"]) == 30 and record["converged"] == [True] and record["eigenvalues"][0] > 0
    table = analyze("perturb", *ticket, tmp_path / "p.csv", "--sample", "30", "--points", "3", "--test-sample", "50")
    assert table["epsilon"].tolist() == [-0.5, 0.0, 0.5]
    assert table["eigenvalue"].unique().tolist() == pytest.approx(record["eigenvalues"])


@pytest.mark.parametrize(
    "what, flags, message",
    [
        ("landscape", ["--points", "0"], "grid points"),
        ("landscape", ["--part", "2", "--parts", "2"], "part"),
        ("input-landscape", ["--sample", "0"], "--sample"),
        ("hessian", ["--k", "6"], "--k"),
        ("perturb", ["--tol", "0"], "--tol"),
        (
            "activations",
            ["--thresholds", "0", "-1"],
            ("--thresholds[1]: -1.0 is not allowed; each threshold must be a finite number >= 0"),
        ),
        ("activations", ["--thresholds", "nan"], "--thresholds[0]: nan is not allowed"),
        ("activations", ["--thresholds", "0.01", "1e-2"], "--thresholds[1]: 0.01 is not allowed; it repeats"),
        ("activations", ["--thresholds", "small"], "'small' is not allowed; each threshold must be a finite number"),
        ("activations", ["--thresholds"], "--thresholds: expected at least one argument"),
    ],
)
def test_bad_settings_fail_before_the_data_loads(ticket, tmp_path, monkeypatch, capsys, what, flags, message):
    monkeypatch.setattr(lth.data, "load", lambda *a, **k: pytest.fail("loaded data before rejecting the input"))
    try:
        code = main(["analyze", what, "--weights", str(ticket[0]), "--out", str(tmp_path / "x.csv"), *DATA, *flags])
    except SystemExit as exit_info:  # a value argparse itself cannot parse
        code = exit_info.code
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def test_every_analysis_with_a_command_runs_and_its_flags_default_to_its_settings():
    """`lth analyze` builds its subcommands from the registry; COMMANDS says how each runs."""
    import dataclasses

    from lth.analysis.registry import ANALYSES
    from lth.cli import build_parser
    from lth.cli.analyze import COMMANDS

    assert set(COMMANDS) == {name for name, analysis in ANALYSES.items() if analysis.command}
    for name in COMMANDS:
        command = ANALYSES[name].command
        args = build_parser().parse_args(["analyze", command, "--weights", "w.pt", "--out", "o", "--seed", "0"])
        for field in dataclasses.fields(ANALYSES[name].settings):
            default = list(field.default) if isinstance(field.default, tuple) else field.default
            assert getattr(args, field.name) == default, (command, field.name)
