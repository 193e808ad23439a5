"""tickets.csv: gains, winning-ticket levels and critical sparsities equal values computed by hand
on a crafted summary (two seeds at each mean -0.5 and +0.5 points, so means are exact)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from lth.cli import main
from lth.errors import LthError
from lth.io import seal_file
from lth.report.tickets import COLUMNS, critical_point, critical_sparsity, ticket_statistics, winning_level

SPARSITY = {1: 20.0, 2: 36.0, 3: 48.8, 4: 59.04}  # in %, as summary.csv's sparsity_pct
# Mean test accuracy (%) per level. at+trt is spelt out, as a config may: found by its parts.
CURVES = {"lth": [92, 91, 89, 85], "skip+swish+gradinit+ls": [90, 91.5, 92, 90], "rewind": [93, 92, 90, 86]}


def crafted(dense=(90.0, 92.0), curves=CURVES, source: str | None = None) -> pd.DataFrame:
    """Dense at 90 and 92 (mean 91); a dense+skip baseline far above it, which no statistic may use.
    With `source`, a column mask_source after level: `source` for the tickets, empty for dense rows."""
    rows = [
        {"seed": seed, "variant": "dense", "level": 0, "sparsity_pct": 0.0, "test_acc_pct": acc}
        for seed, acc in enumerate(dense)
    ]
    rows += [
        {"seed": seed, "variant": "dense+skip", "level": 0, "sparsity_pct": 0.0, "test_acc_pct": 99.0}
        for seed in (0, 1)
    ]
    for variant, means in curves.items():
        for level, mean in zip(SPARSITY, means):
            rows += [
                {
                    "seed": seed,
                    "variant": variant,
                    "level": level,
                    "sparsity_pct": SPARSITY[level],
                    "test_acc_pct": mean + offset,
                }
                for seed, offset in ((0, -0.5), (1, 0.5))
            ]
    table = pd.DataFrame(rows)
    if source is not None:
        table.insert(3, "mask_source", table["level"].gt(0).map({True: source, False: None}))
    return table


# A second mask source's tickets, far from magnitude's: lth reaches the dense mean (91) at level 1 only,
# at+trt and rewind never; at+trt and rewind cross between levels 2 and 3.
RANDOM = {"lth": [92, 85, 70, 50], "skip+swish+gradinit+ls": [85, 80, 75, 72], "rewind": [86, 82, 74, 60]}


def two_sources() -> pd.DataFrame:
    """magnitude's tickets (CURVES) and the dense rows, then random's tickets (RANDOM)."""
    random = crafted(curves=RANDOM, source="random")
    return pd.concat([crafted(source="magnitude"), random[random["level"] > 0]], ignore_index=True)


def statistic(table: pd.DataFrame, name: str) -> pd.DataFrame:
    return table[table["statistic"] == name].set_index(["variant", "level"] if name == "gain" else "variant")


def test_gain_is_each_variants_mean_minus_vanillas_at_each_level():
    table = ticket_statistics(crafted(), [("at+trt", "rewind")])
    assert list(table.columns) == COLUMNS
    gains = statistic(table, "gain")
    at_trt = gains.loc["skip+swish+gradinit+ls"]
    assert at_trt["value_pct"].tolist() == pytest.approx([90 - 92, 91.5 - 91, 92 - 89, 90 - 85])
    assert at_trt["sparsity_pct"].tolist() == pytest.approx(list(SPARSITY.values()))
    assert gains.loc["rewind"]["value_pct"].tolist() == pytest.approx([1, 1, 1, 1])
    assert set(gains.index.get_level_values(0)) == {"skip+swish+gradinit+ls", "rewind"}  # not lth, no baseline
    assert set(gains["reference"]) == {"lth"} and set(gains["seeds"]) == {2}
    # Without vanilla, no gains; the other statistics stay.
    without = ticket_statistics(crafted(curves={k: v for k, v in CURVES.items() if k != "lth"}))
    assert set(without["statistic"]) == {"winning_ticket"}


def test_a_winning_ticket_is_the_sparsest_level_that_reaches_the_dense_mean():
    # Dense mean (90 + 92) / 2 = 91 (dense+skip's 99 ignored). lth: 92, 91, 89, 85 -> level 2 (91 >= 91).
    # at+trt: 90, 91.5, 92, 90 -> level 3 (92), though level 1 fell short. rewind: 93, 92, 90, 86 -> level 2.
    winning = statistic(ticket_statistics(crafted()), "winning_ticket")
    assert winning.loc["lth", ["level", "sparsity_pct", "value_pct", "seeds"]].tolist() == pytest.approx([2, 36, 91, 2])
    assert winning.loc["skip+swish+gradinit+ls", ["level", "sparsity_pct", "value_pct"]].tolist() == pytest.approx(
        [3, 48.8, 92]
    )
    assert winning.loc["rewind", "level"] == 2 and set(winning["reference"]) == {"dense"}
    nothing = statistic(ticket_statistics(crafted(dense=(99.0, 99.0))), "winning_ticket")
    assert len(nothing) == 3 and nothing[["level", "sparsity_pct", "value_pct"]].isna().all().all()
    no_dense = crafted()
    assert "winning_ticket" not in set(ticket_statistics(no_dense[no_dense["variant"] != "dense"])["statistic"])
    assert winning_level([1, 2, 3, 4], [92, 91, 89, 85], 91.0) == 2
    assert winning_level([1, 2, 3], [80, 80, 80], 91.0) is None


def test_the_critical_sparsity_is_the_last_crossing_interpolated_on_log_remaining_weights():
    critical = statistic(ticket_statistics(crafted(), [("at+trt", "rewind"), ("at+trt", "mish")]), "critical_sparsity")
    assert list(critical.index) == ["skip+swish+gradinit+ls"]  # the pair with mish is not in the table
    # d = at+trt - rewind = -3, -0.5, +2, +4: the sign changes between levels 2 and 3 only,
    # t = 0.5 / (0.5 + 2) = 0.2 of the way from log(1 - 0.36) to log(1 - 0.488).
    t = 0.2
    x = math.log(1 - 0.36) + t * (math.log(1 - 0.488) - math.log(1 - 0.36))
    row = critical.loc["skip+swish+gradinit+ls"]
    assert row["reference"] == "rewind" and math.isnan(row["level"]) and row["seeds"] == 2
    assert row["sparsity_pct"] == pytest.approx(100 * (1 - math.exp(x)))  # 38.38...
    assert row["value_pct"] == pytest.approx(91.5 + t * (92 - 91.5))  # at+trt's accuracy there (= rewind's)
    assert critical_sparsity(
        list(SPARSITY.values()), CURVES["skip+swish+gradinit+ls"], CURVES["rewind"]
    ) == pytest.approx(100 * (1 - math.exp(x)))
    # lth and rewind never cross: the row is there, without a sparsity.
    never = statistic(ticket_statistics(crafted(), [("lth", "rewind")]), "critical_sparsity").loc["lth"]
    assert math.isnan(never["sparsity_pct"]) and math.isnan(never["value_pct"])


def test_crossings_touches_and_none():
    s = [20, 36, 48.8]  # in %
    # d = 1, -1, 1 crosses twice; the last crossing (half-way from level 2 to 3) counts.
    assert critical_sparsity(s, [1, 0, 1], [0, 1, 0]) == pytest.approx(
        100 * (1 - math.exp(0.5 * math.log(0.64) + 0.5 * math.log(0.512)))
    )
    assert critical_point(s, [1, 2, 1], [0, 2, 0]) == pytest.approx((36, 2))  # touching at a level
    assert critical_sparsity(s, [1, 2, 3], [0, 1, 2]) is None
    with pytest.raises(LthError, match="strictly increasing"):
        critical_sparsity([36, 20], [1, 2], [2, 1])
    with pytest.raises(LthError, match=r"percentages in \[0, 100\)"):  # a fraction's 1.0 would be 100%
        critical_sparsity([20, 100], [1, 2], [2, 1])
    with pytest.raises(LthError, match="one accuracy per sparsity"):
        critical_sparsity(s, [1, 2], [2, 1, 0])


def test_every_statistic_per_mask_source():
    table = ticket_statistics(two_sources(), [("at+trt", "rewind")])
    assert list(table.columns) == COLUMNS and COLUMNS[:2] == ["statistic", "mask_source"]
    # Source by source in order of appearance, each with its gains, winning tickets, critical sparsities.
    assert table["mask_source"].tolist() == ["magnitude"] * 12 + ["random"] * 12
    assert table["statistic"].tolist() == 2 * (["gain"] * 8 + ["winning_ticket"] * 3 + ["critical_sparsity"])
    magnitude = table[table["mask_source"] == "magnitude"].drop(columns="mask_source").reset_index(drop=True)
    alone = ticket_statistics(crafted(), [("at+trt", "rewind")]).drop(columns="mask_source")
    pd.testing.assert_frame_equal(magnitude, alone)  # the other source changes nothing
    random = table[table["mask_source"] == "random"]
    gains = statistic(random, "gain")  # over random's own vanilla
    assert gains.loc["skip+swish+gradinit+ls"]["value_pct"].tolist() == pytest.approx(
        [85 - 92, 80 - 85, 75 - 70, 72 - 50]
    )
    assert gains.loc["rewind"]["value_pct"].tolist() == pytest.approx([86 - 92, 82 - 85, 74 - 70, 60 - 50])
    assert set(gains["reference"]) == {"lth"}
    winning = statistic(random, "winning_ticket")  # against the same dense mean, 91
    assert winning.loc["lth", ["level", "sparsity_pct", "value_pct", "seeds"]].tolist() == pytest.approx([1, 20, 92, 2])
    assert winning.loc[["skip+swish+gradinit+ls", "rewind"], ["level", "sparsity_pct", "value_pct"]].isna().all().all()
    # d = at+trt - rewind = -1, -2, +1, +12: the last sign change is between levels 2 and 3, t = 2 / 3.
    t = 2 / 3
    x = math.log(1 - 0.36) + t * (math.log(1 - 0.488) - math.log(1 - 0.36))
    critical = statistic(random, "critical_sparsity").loc["skip+swish+gradinit+ls"]
    assert critical["reference"] == "rewind" and critical["sparsity_pct"] == pytest.approx(100 * (1 - math.exp(x)))
    assert critical["value_pct"] == pytest.approx(80 + t * (75 - 80))


def test_a_summary_without_mask_sources_is_one_source():
    table = ticket_statistics(crafted(), [("at+trt", "rewind")])
    assert table["mask_source"].isna().all() and len(table) == 12
    labelled = ticket_statistics(crafted(source="magnitude"), [("at+trt", "rewind")])
    assert set(labelled["mask_source"]) == {"magnitude"}
    pd.testing.assert_frame_equal(labelled.drop(columns="mask_source"), table.drop(columns="mask_source"))


def test_one_experiment_at_a_time():
    both = pd.concat([crafted().assign(experiment=name) for name in ("a", "b")])
    with pytest.raises(LthError, match=r"holds 2 experiments \(a, b\)"):
        ticket_statistics(both)


def test_lth_tickets_writes_the_table(tmp_path, capsys):
    summary = tmp_path / "summary.csv"
    crafted().to_csv(summary, index=False)
    seal_file(summary)
    out = tmp_path / "tickets.csv"
    assert (
        main(["tickets", "--summary", str(summary), "--out", str(out), "--pair", "at+trt:rewind", "--pair", "lth:mish"])
        == 0
    )
    written = pd.read_csv(out)
    assert list(written.columns) == COLUMNS
    assert written["statistic"].value_counts().to_dict() == {"gain": 8, "winning_ticket": 3, "critical_sparsity": 1}
    assert "gain,,rewind,lth,1,20.0,1.0,2" in out.read_text()  # levels and seeds as integers; no mask source
    assert ",dense,,," not in out.read_text()  # every variant has a winning ticket here
    assert main(["tickets", "--summary", str(summary), "--out", str(out)]) == 2  # exists, no --force
    bad = tmp_path / "bad.csv"
    assert main(["tickets", "--summary", str(summary), "--out", str(bad), "--pair", "at+trt"]) == 2
    assert "--pair: 'at+trt' is not allowed; give two variants as A:B" in capsys.readouterr().err
    assert (
        main(["tickets", "--summary", str(summary), "--out", str(bad), "--pair", "at+trt:skip+swish+gradinit+ls"]) == 2
    )
    assert not bad.exists()
    two_sources().to_csv(summary, index=False)
    seal_file(summary)
    assert main(["tickets", "--summary", str(summary), "--out", str(out), "--force"]) == 0
    written = pd.read_csv(out)
    assert written["mask_source"].tolist() == ["magnitude"] * 11 + ["random"] * 11
    assert "gain,random,rewind,lth,1,20.0,-6.0,2" in out.read_text()


def test_a_summary_in_fractions_from_an_older_lth_gives_the_same_table(tmp_path):
    summary, legacy = tmp_path / "summary.csv", tmp_path / "legacy.csv"
    crafted().to_csv(summary, index=False)
    old = crafted()  # as an older lth wrote it: fractions under the old names
    old = old.assign(sparsity=old["sparsity_pct"] / 100, test_acc=old["test_acc_pct"] / 100)
    old.drop(columns=["sparsity_pct", "test_acc_pct"]).to_csv(legacy, index=False)
    for csv in (summary, legacy):
        seal_file(csv)
    for csv, out in ((summary, tmp_path / "new.csv"), (legacy, tmp_path / "old.csv")):
        assert main(["tickets", "--summary", str(csv), "--out", str(out), "--pair", "at+trt:rewind"]) == 0
    assert (tmp_path / "old.csv").read_text() == (tmp_path / "new.csv").read_text()
    # Differences of percentages are written to 8 decimals: no float noise (91.5 - 91 is 0.5, not 0.50000001).
    assert all(
        len(cell.partition(".")[2]) <= 8
        for line in (tmp_path / "new.csv").read_text().splitlines()[1:]
        for cell in line.split(",")
    )
