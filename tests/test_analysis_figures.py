"""`lth figure`: every paper figure from small synthetic collected CSVs, and bad input (exit 2)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lth.cli import main
from lth.io import seal_file
from lth.report.analysis import log_contour_levels
from lth.report.registry import ANALYSIS_FIGURES as FIGURES

SEEDS = (0, 1)
LEVELS = (1, 2, 3)
VARIANTS = ("lth", "at+trt")
STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")
POINTS = 5  # a 5 x 5 landscape grid
FINAL = 4  # the last training epoch


TRAINED = {"model": "resnet18", "width": 4, "dataset": "digits", "train_epochs": FINAL}  # every run's


def subjects() -> list[dict]:
    """The id columns of every (seed, variant, level): the dense run, then each variant's levels."""
    rows = []
    for seed in SEEDS:
        rows.append(
            {"seed": seed, "variant": "dense", "level": 0, "sparsity_pct": 0.0, "run": f"dense-{seed}", **TRAINED}
        )
        for variant in VARIANTS:
            for level in LEVELS:
                rows.append(
                    {
                        "seed": seed,
                        "variant": variant,
                        "level": level,
                        "sparsity_pct": 100 * (1 - 0.8**level),
                        "run": f"sparse-{variant}-{seed}-{level}",
                        **TRAINED,
                    }
                )
    return rows


def fraction(stage: str, seed: int, variant: str, level: int) -> float:
    """A known activation-sparsity fraction, so the table's means can be computed by hand."""
    return (
        0.1
        + 0.05 * level
        + 0.01 * seed
        + 0.02 * (STAGES.index(stage) if stage in STAGES else 5)
        + (0.1 if variant == "at+trt" else 0.0)
    )


def eigenvalue(seed: int, level: int) -> float:
    return 10.0 * (1 + level) * (1 + 0.1 * seed)


def grid_rows(ids: dict, epoch: int) -> list[dict]:
    coordinates = np.linspace(-1, 1, POINTS)
    rows = []
    for index in range(POINTS * POINTS):
        i, j = divmod(index, POINTS)
        alpha, beta = coordinates[i], coordinates[j]
        loss = 0.05 + (1 + ids["level"]) * (alpha**2 + 0.5 * beta**2) * epoch / FINAL
        rows.append(
            {
                **ids,
                "epoch": epoch,
                "index": index,
                "i": i,
                "j": j,
                "alpha": alpha,
                "beta": beta,
                "loss": loss,
                "accuracy_pct": max(0.0, 100 - 10 * loss),
            }
        )
    return rows


def write(path: Path, rows: list[dict]) -> Path:
    frame = pd.DataFrame(rows)
    ids = ["seed", "variant", "level", "sparsity_pct", "epoch", "run", *TRAINED]
    frame[ids + [c for c in frame.columns if c not in ids]].to_csv(path, index=False)
    seal_file(path)  # as `lth analyze collect` seals it: readers refuse a table without its seal
    return path


@pytest.fixture(scope="module")
def csvs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("analysis")
    activations, hessian, per_epoch, landscape, inputs, perturbation = [], [], [], [], [], []
    for ids in subjects():
        seed, variant, level = ids["seed"], ids["variant"], ids["level"]
        for stage in (*STAGES, "all"):
            total = 1000
            near = round(total * fraction(stage, seed, variant, level))
            activations.append(
                {
                    **ids,
                    "epoch": FINAL,
                    "stage": stage,
                    "near_zero": near,
                    "total": total,
                    "near_zero_pct": 100 * near / total,
                    "threshold": 0.01,
                }
            )
        for rank in (1, 2):
            hessian.append(
                {
                    **ids,
                    "epoch": FINAL,
                    "rank": rank,
                    "eigenvalue": eigenvalue(seed, level) / rank,
                    "iterations": 20,
                    "converged": not (variant == "lth" and level == 3 and seed == 1),
                    "residual": 1e-3,
                    "seconds": 1.5,
                    "sample": 200,
                }
            )
        for epoch in range(1, FINAL + 1):
            per_epoch.append(
                {
                    **ids,
                    "epoch": epoch,
                    "eigenvalue": eigenvalue(seed, level) * epoch,
                    "iterations": 10,
                    "converged": epoch != 2,
                    "residual": 1e-3,
                    "seconds": 0.5,
                }
            )
        for epoch in (2, FINAL):
            landscape += grid_rows(ids, epoch)
        inputs += grid_rows(ids, FINAL)
        for index, epsilon in enumerate(np.linspace(-0.5, 0.5, 5)):
            value = eigenvalue(seed, level)
            perturbation.append(
                {
                    **ids,
                    "epoch": FINAL,
                    "index": index,
                    "epsilon": epsilon,
                    "loss": 0.1 + value * epsilon**2,
                    "accuracy_pct": 90.0,
                    "eigenvalue": value,
                    "converged": True,
                }
            )
    return {
        "tableA1_activation_sparsity": write(root / "activation_sparsity.csv", activations),
        "fig2_hessian": write(root / "hessian.csv", hessian),
        "figA12_hessian_per_epoch": write(root / "hessian_per_epoch.csv", per_epoch),
        "fig_landscape": write(root / "landscape.csv", landscape),
        "fig11_input_landscape": write(root / "input_landscape.csv", inputs),
        "fig10_perturbation": write(root / "perturbation.csv", perturbation),
    }


def check_images(*paths: Path) -> None:
    import matplotlib.image

    for path in paths:
        assert path.is_file() and path.stat().st_size > 1000, path
        if path.suffix == ".png":
            image = matplotlib.image.imread(path)
            assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
        if path.suffix == ".pdf":
            assert path.read_bytes().startswith(b"%PDF")


@pytest.mark.parametrize(
    ("name", "stem", "extra"),
    [
        ("tableA1_activation_sparsity", "tableA1_activation_sparsity", []),
        ("fig2_hessian", "fig2_hessian", []),
        ("figA12_hessian_per_epoch", "figA12_hessian_per_epoch", []),
        ("fig_landscape", "fig5_landscape_epoch2", ["--epoch", "2"]),
        ("fig_landscape", "fig11_landscape_final", ["--epoch", "final"]),
        ("fig11_input_landscape", "fig11_input_landscape", ["--epoch", "final", "--title", "input space"]),
        ("fig10_perturbation", "fig10_perturbation", []),
    ],
)
def test_every_figure_renders_png_and_pdf(csvs, tmp_path, name, stem, extra):
    outputs = [tmp_path / "figures" / f"{stem}.png", tmp_path / "figures" / f"{stem}.pdf"]
    assert main(["figure", name, "--csv", str(csvs[name]), "--out", *map(str, outputs), *extra]) == 0
    check_images(*outputs)
    assert not [p for p in outputs[0].parent.iterdir() if p.name.endswith(".tmp")]  # atomic writes leave nothing


def test_every_registered_figure_is_covered(csvs):
    assert set(FIGURES) == set(csvs)
    for entry in FIGURES.values():
        function, columns, description = entry.function, entry.columns, entry.description
        assert callable(function) and columns[:10] == (
            "seed",
            "variant",
            "level",
            "sparsity_pct",
            "epoch",
            "run",
            "model",
            "width",
            "dataset",
            "train_epochs",
        )
        assert description


def test_table_csv_holds_the_hand_computed_means(csvs, tmp_path):
    out = tmp_path / "tableA1.csv"
    png = tmp_path / "tableA1.png"
    assert (
        main(
            [
                "figure",
                "tableA1_activation_sparsity",
                "--csv",
                str(csvs["tableA1_activation_sparsity"]),
                "--out",
                str(png),
                str(out),
            ]
        )
        == 0
    )
    check_images(png)
    table = pd.read_csv(out)
    assert list(table.columns[:5]) == ["threshold", "variant", "level", "sparsity_pct", "seeds"]
    assert (table["threshold"] == 0.01).all()
    assert [c for c in table.columns if c.endswith("_mean_pct")] == [f"{s}_mean_pct" for s in ("all", *STAGES)]
    assert list(zip(table["variant"], table["level"])) == [("dense", 0)] + [(v, lv) for v in VARIANTS for lv in LEVELS]
    assert (table["seeds"] == 2).all()
    for _, row in table.iterrows():
        for stage in ("all", *STAGES):
            per_seed = [
                100 * round(1000 * fraction(stage, seed, row["variant"], row["level"])) / 1000 for seed in SEEDS
            ]
            assert row[f"{stage}_mean_pct"] == pytest.approx(sum(per_seed) / 2)
            assert row[f"{stage}_std_pct"] == pytest.approx(np.std(per_seed, ddof=1), abs=1e-9)
        assert row["sparsity_pct"] == pytest.approx(100 * (1 - 0.8 ** row["level"]))
    lth2 = table[(table["variant"] == "lth") & (table["level"] == 2)].iloc[0]
    assert lth2["all_mean_pct"] == pytest.approx((30.0 + 31.0) / 2)  # 0.1 + 0.1 + 0.1 (+ 0.01 for seed 1)


def test_log_contour_levels():
    levels = log_contour_levels(0.01, 100.0, count=5)
    assert levels[0] == 0.01 and levels[-1] == 100.0
    np.testing.assert_allclose(levels, [0.01, 0.1, 1.0, 10.0, 100.0])
    ratios = levels[1:] / levels[:-1]
    np.testing.assert_allclose(ratios, ratios[0])  # even steps on a log scale
    assert log_contour_levels(0.0, 2.0, count=3)[0] == pytest.approx(2e-6)  # 0 is raised, never log(0)
    flat = log_contour_levels(1.5, 1.5)
    assert flat[0] < 1.5 < flat[-1] and np.all(np.diff(flat) > 0)
    for low, high in ((1.0, 0.5), (-1.0, 0.0), (0.1, math.inf), (math.nan, 1.0)):
        with pytest.raises(ValueError):
            log_contour_levels(low, high)
    with pytest.raises(ValueError):
        log_contour_levels(0.1, 1.0, count=1)


def test_negative_eigenvalues_still_draw(csvs, tmp_path):
    frame = pd.read_csv(csvs["fig2_hessian"])
    frame.loc[(frame["variant"] == "at+trt") & (frame["level"] == 1), "eigenvalue"] = -3.0
    csv = write(tmp_path / "hessian.csv", frame.to_dict("records"))
    assert main(["figure", "fig2_hessian", "--csv", str(csv), "--out", str(tmp_path / "f.png")]) == 0
    check_images(tmp_path / "f.png")


def bad(tmp_path: Path, csvs: dict[str, Path], name: str, change) -> Path:
    """A copy of figure `name`'s CSV with `change` applied to its frame (or to the file text)."""
    frame = pd.read_csv(csvs[name])
    path = tmp_path / csvs[name].name
    result = change(frame)
    if isinstance(result, str):
        path.write_text(result)
    else:
        result.to_csv(path, index=False)
    seal_file(path)  # sealed, so that the check under test is the one that refuses it
    return path


def drop_one_grid_point(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(index=frame.index[(frame["epoch"] == FINAL) & (frame["run"] == "sparse-lth-0-2")][3])


def put(frame: pd.DataFrame, column: str, value) -> pd.DataFrame:
    frame[column] = frame[column].astype(object)
    frame.loc[5, column] = value
    return frame


@pytest.mark.parametrize(
    ("name", "change", "extra", "words"),
    [
        ("fig2_hessian", lambda f: f.drop(columns="eigenvalue"), [], ["'eigenvalue'", "rank, eigenvalue, converged"]),
        ("tableA1_activation_sparsity", lambda f: f.drop(columns="stage"), [], ["'stage'"]),
        ("fig10_perturbation", lambda f: "", [], ["is empty"]),
        ("fig10_perturbation", lambda f: f.iloc[:0], [], ["no rows"]),
        ("fig_landscape", lambda f: f, ["--epoch", "7"], ["epoch 7", "'epoch'", "2, 4", "final"]),
        ("fig11_input_landscape", lambda f: f, ["--epoch", "2"], ["epoch 2", "4"]),
        ("fig_landscape", drop_one_grid_point, [], ["24 of its 5 x 5 points", "sparse-lth-0-2", "merge"]),
        ("fig2_hessian", lambda f: put(f, "eigenvalue", "big"), [], ["'eigenvalue'", "'big'", "line 7", "a number"]),
        ("fig2_hessian", lambda f: put(f, "converged", "maybe"), [], ["'converged'", "'maybe'", "True or False"]),
        ("fig2_hessian", lambda f: put(f, "sparsity_pct", 148.8), [], ["'sparsity_pct'", "148.8", "[0, 100)"]),
        ("fig2_hessian", lambda f: f.drop(columns="model"), [], ["'model'"]),
        ("tableA1_activation_sparsity", lambda f: put(f, "seed", ""), [], ["'seed'", "set in every row"]),
        ("fig2_hessian", lambda f: f[f["variant"] == "dense"], [], ["only dense rows", "'variant'"]),
        ("fig2_hessian", lambda f: pd.concat([f, f.iloc[[0]]]), [], ["more than one row", "seed 0"]),
        ("tableA1_activation_sparsity", lambda f: f[f["stage"] != "all"], [], ["stage 'all'"]),
        ("tableA1_activation_sparsity", lambda f: put(f, "threshold", ""), [], ["'threshold'", "set in every row"]),
        (
            "tableA1_activation_sparsity",
            lambda f: pd.concat([f, f.assign(threshold=0.0)[f["stage"] != "all"]]),
            [],
            ["no rows with stage 'all' at threshold 0"],
        ),
        ("figA12_hessian_per_epoch", lambda f: f, ["--epoch", "3"], ["--epoch", "no epoch filter"]),
        ("fig_landscape", lambda f: f, ["--epoch", "last"], ["--epoch", "'last'", "final"]),
    ],
)
def test_bad_input_exits_2_naming_the_problem(csvs, tmp_path, capsys, name, change, extra, words):
    csv = bad(tmp_path, csvs, name, change)
    out = tmp_path / "out" / "figure.png"
    assert main(["figure", name, "--csv", str(csv), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for word in words:
        assert word in err, (word, err)
    if not any(flag in err for flag in ("--epoch",)):
        assert str(csv) in err  # a data error names the file
    assert not out.exists()  # never an empty figure


def test_bad_paths_exit_2_before_reading(csvs, tmp_path, capsys):
    csv = str(csvs["fig2_hessian"])
    assert (
        main(["figure", "fig2_hessian", "--csv", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "f.png")]) == 2
    )
    assert "--csv" in (err := capsys.readouterr().err) and "missing.csv" in err
    assert main(["figure", "fig2_hessian", "--csv", csv, "--out", str(tmp_path / "f.jpg")]) == 2
    assert "'.jpg'" in (err := capsys.readouterr().err) and ".png" in err
    assert main(["figure", "fig2_hessian", "--csv", csv, "--out", str(tmp_path / "f.csv")]) == 2  # tables only
    assert "'.csv'" in capsys.readouterr().err
    (tmp_path / "old.png").write_bytes(b"old")
    assert main(["figure", "fig2_hessian", "--csv", csv, "--out", str(tmp_path / "old.png")]) == 2
    assert "--force" in capsys.readouterr().err and (tmp_path / "old.png").read_bytes() == b"old"
    assert main(["figure", "fig2_hessian", "--csv", csv, "--out", str(tmp_path / "old.png"), "--force"]) == 0
    check_images(tmp_path / "old.png")
    with pytest.raises(SystemExit) as exit_info:  # argparse: an unknown figure name lists the choices
        main(["figure", "fig99", "--csv", csv, "--out", str(tmp_path / "g.png")])
    assert exit_info.value.code == 2 and "fig2_hessian" in capsys.readouterr().err


@pytest.fixture
def drawn(monkeypatch):
    """The figure a call draws, instead of its files: its legend texts, title and y scale."""
    import lth.report.analysis as figures

    seen = {}

    def keep(fig, outputs, table=None, crop=None):
        ax = fig.axes[0]
        legend = ax.get_legend()
        seen.update(
            legend=[t.get_text() for t in legend.get_texts()] if legend else [],
            title=ax.get_title(),
            yscale=ax.get_yscale(),
            ylabel=ax.get_ylabel(),
            suptitle=fig.get_suptitle(),
            titles=[a.get_title() for a in fig.axes],
            cells=[
                [cell.get_text().get_text() for cell in table.get_celld().values()]
                for a in fig.axes
                for table in a.tables
            ],
        )
        figures.pyplot().close(fig)

    monkeypatch.setattr(figures, "save_figure", keep)
    return seen


def test_fig2_marks_non_convergence_and_uses_a_log_axis(csvs, tmp_path, drawn):
    from lth.report.analysis import fig2_hessian

    fig2_hessian(csvs["fig2_hessian"], [tmp_path / "f.png"])
    assert drawn["yscale"] == "log" and "log scale" in drawn["ylabel"]
    assert any("not converged" in text for text in drawn["legend"])  # lth level 3, seed 1 did not converge
    # The dense line's number is its eigenvalue, and says so (not "dense (97.6)", read as an accuracy).
    dense = [text for text in drawn["legend"] if text.startswith("dense")]
    assert len(dense) == 1 and re.fullmatch(r"dense \(λ1 = [0-9.]+ ± [0-9.]+\)", dense[0]), dense
    assert drawn["title"] == (
        "Fig. 2: top Hessian eigenvalue vs sparsity\nResNet-18 (width 4) on digits, 4 epochs, "
        "2 seeds (mean ± std); weights after the final epoch (4)"
    )


def test_negative_eigenvalue_switches_to_symlog_and_says_so(csvs, tmp_path, drawn):
    from lth.report.analysis import fig2_hessian

    frame = pd.read_csv(csvs["fig2_hessian"])
    frame.loc[frame["variant"] == "at+trt", "eigenvalue"] *= -1
    fig2_hessian(write(tmp_path / "hessian.csv", frame.to_dict("records")), [tmp_path / "f.png"])
    assert drawn["yscale"] == "symlog" and "<= 0" in drawn["ylabel"]


def test_landscape_titles_say_first_seed_and_epoch(csvs, tmp_path, drawn):
    from lth.report.analysis import fig_landscape

    fig_landscape(csvs["fig_landscape"], [tmp_path / "f.png"], epoch=2)
    assert "epoch 2" in drawn["suptitle"]
    assert all("seed 0 only (first of 2 seeds)" in title for title in drawn["titles"] if title)


def test_table_a1_has_one_table_per_threshold_each_titled_with_it(csvs, tmp_path, drawn):
    from lth.report.analysis import tableA1_activation_sparsity

    frame = pd.read_csv(csvs["tableA1_activation_sparsity"])
    # A second threshold, as `lth analyze activations` counts it in the same pass: other fractions.
    smaller = frame.assign(threshold=0.001, near_zero_pct=frame["near_zero_pct"] / 100)
    csv = write(tmp_path / "activation_sparsity.csv", pd.concat([frame, smaller]).to_dict("records"))
    table = tableA1_activation_sparsity(csv, [tmp_path / "t.png"], title="x")
    pairs = [("dense", 0)] + [(v, lv) for v in VARIANTS for lv in LEVELS]
    assert list(zip(table["threshold"], table["variant"], table["level"])) == [
        (t, *pair) for t in (0.001, 0.01) for pair in pairs
    ]  # never averaged across thresholds
    per_threshold = table.set_index(["threshold", "variant", "level"])["all_mean_pct"]
    assert per_threshold[0.001].tolist() == pytest.approx((per_threshold[0.01] / 100).tolist())
    first, second = drawn["titles"]
    assert first.startswith(
        "x: Table A1: % of activation outputs with |a| <= t, one table per threshold t (0.001, 0.01)"
    ) and first.endswith("|a| <= 0.001")
    assert second == "|a| <= 0.01"
    # Below 1%, two significant digits (the paper's Swish column reads 0.16-0.39%), not 0.2 for all.
    dense = table[(table["threshold"] == 0.001) & (table["variant"] == "dense")].iloc[0]
    assert (
        dense["all_mean_pct"] < 1 and f"{dense['all_mean_pct']:.2g} ± {dense['all_std_pct']:.2g}" in drawn["cells"][0]
    )


def test_one_threshold_is_named_in_the_title(csvs, tmp_path, drawn):
    from lth.report.analysis import tableA1_activation_sparsity

    tableA1_activation_sparsity(csvs["tableA1_activation_sparsity"], [tmp_path / "t.png"])
    assert drawn["titles"] == [drawn["title"]] and drawn["title"].startswith(
        "Table A1: % of activation outputs with |a| <= 0.01\nResNet-18"
    )


def test_one_seed_table_has_no_std(csvs, tmp_path):
    frame = pd.read_csv(csvs["tableA1_activation_sparsity"])
    csv = write(tmp_path / "activation_sparsity.csv", frame[frame["seed"] == 1].to_dict("records"))
    assert main(["figure", "tableA1_activation_sparsity", "--csv", str(csv), "--out", str(tmp_path / "t.csv")]) == 0
    table = pd.read_csv(tmp_path / "t.csv")
    assert (table["seeds"] == 1).all() and table["all_std_pct"].isna().all()
    row = table[(table["variant"] == "at+trt") & (table["level"] == 1)].iloc[0]
    assert row["all_mean_pct"] == pytest.approx(100 * round(1000 * fraction("all", 1, "at+trt", 1)) / 1000)


def run_folder(root: Path, name: str, sparsity: float, **model) -> Path:
    """A finished run as `lth train` leaves it, as far as `lth analyze collect` reads it."""
    import yaml

    from lth.manifest import write_summary

    folder = root / name
    folder.mkdir(parents=True)
    (folder / "hparams.yaml").write_text(
        yaml.safe_dump(
            {"model": {"name": "vgg16", "width": 8, **model}, "data": {"name": "cifar10"}, "train": {"epochs": 30}}
        )
    )
    write_summary(folder, {"sparsity": sparsity}, ["hparams.yaml"])
    return folder


def test_collected_csvs_hold_percentages_and_what_each_run_trained(tmp_path):
    from lth.report.collect import ID_COLUMNS, RUN_COLUMNS, collect

    dense, ticket = run_folder(tmp_path, "dense-a", 0.0), run_folder(tmp_path, "sparse-b", 0.36)
    for folder, fraction in ((dense, 0.25), (ticket, 0.5)):  # the runs' own files keep fractions
        pd.DataFrame([{"stage": "all", "near_zero": 1, "total": 4, "fraction": fraction, "threshold": 0.01}]).to_csv(
            folder / "activation_sparsity.csv", index=False
        )
        pd.DataFrame(
            [{"index": 0, "epsilon": 0.0, "loss": 0.1, "accuracy": 0.875, "eigenvalue": 3.0, "converged": True}]
        ).to_csv(folder / "perturbation.csv", index=False)
    out = tmp_path / "activation_sparsity.csv"
    collect(
        "activations",
        [f"0:dense:0:30:{dense}:activation_sparsity.csv", f"0:lth:2:30:{ticket}:activation_sparsity.csv"],
        out,
    )
    table = pd.read_csv(out)
    assert list(table.columns) == [
        *ID_COLUMNS,
        *RUN_COLUMNS,
        "stage",
        "near_zero",
        "total",
        "near_zero_pct",
        "threshold",
    ]
    assert table["sparsity_pct"].tolist() == [0.0, 36.0] and table["near_zero_pct"].tolist() == [25.0, 50.0]
    assert table[list(RUN_COLUMNS)].values.tolist() == [["vgg16", 8, "cifar10", 30]] * 2
    collect("perturbation", [f"0:lth:2:30:{ticket}:perturbation.csv"], tmp_path / "perturbation.csv")
    assert pd.read_csv(tmp_path / "perturbation.csv")["accuracy_pct"].tolist() == [87.5]
    assert main(["figure", "tableA1_activation_sparsity", "--csv", str(out), "--out", str(tmp_path / "t.csv")]) == 0
    assert pd.read_csv(tmp_path / "t.csv")["all_mean_pct"].tolist() == [25.0, 50.0]


def test_analysis_lines_take_their_variants_colours(csvs, tmp_path, monkeypatch):
    from matplotlib.colors import to_hex, to_rgb

    import lth.report.analysis as figures
    from lth.report.style import NAMED_COLORS

    seen = []
    monkeypatch.setattr(figures, "save_figure", lambda fig, outputs, table=None, crop=None: seen.append(fig))
    figures.fig2_hessian(csvs["fig2_hessian"], [tmp_path / "f.png"])
    figures.figA12_hessian_per_epoch(csvs["figA12_hessian_per_epoch"], [tmp_path / "g.png"])
    fig2 = {line.get_label(): to_hex(line.get_color()) for line in seen[0].axes[0].get_lines()}
    assert fig2["lth"] == NAMED_COLORS["lth"] and fig2["at+trt"] == NAMED_COLORS["at+trt"]  # as in fig4a
    per_level = {line.get_label(): to_rgb(line.get_color()) for line in seen[1].axes[0].get_lines()}
    # figA12: a line per (variant, level), in shades of the variant's colour, its sparsest level in full.
    assert per_level["at+trt, 48.8% sparse"] == pytest.approx(to_rgb(NAMED_COLORS["at+trt"]))
    lighter = per_level["at+trt, 20.0% sparse"]
    assert all(light >= full for light, full in zip(lighter, to_rgb(NAMED_COLORS["at+trt"])))
    assert per_level["dense"] == to_rgb("black")
