"""results/summary.csv: every experiment's summary.csv in one table."""

from __future__ import annotations

import csv

import pytest

from lth.errors import LthError
from lth.io import seal_file
from lth.report.summary import COLUMNS, FRACTION_COLUMNS, merge_summaries, upgrade_summary


def write(path, columns, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)
    seal_file(path)  # as `lth aggregate` seals it: readers refuse a table without its seal
    return path


def row(columns, **values):
    return {column: values.get(column, "1") for column in columns}


OLD_NAMES = {new: old for old, new in FRACTION_COLUMNS.items()}


def test_a_summary_written_before_mask_sources_merges_with_an_empty_source(tmp_path):
    # Then accuracies and sparsities were fractions named sparsity, test_acc, final_test_acc.
    legacy_columns = [OLD_NAMES.get(column, column) for column in COLUMNS if column != "mask_source"]
    old = write(
        tmp_path / "old.csv",
        legacy_columns,
        [row(legacy_columns, variant="lth", sparsity="0.36", test_acc="0.9123", final_test_acc="")],
    )
    new = write(tmp_path / "new.csv", COLUMNS, [row(COLUMNS, variant="lth", mask_source="snip")])
    merge_summaries([f"old={old}", f"new={new}"], tmp_path / "all.csv")
    with open(tmp_path / "all.csv", newline="") as handle:
        merged = list(csv.DictReader(handle))
    assert [(r["experiment"], r["mask_source"]) for r in merged] == [("old", ""), ("new", "snip")]
    assert list(merged[0]) == ["experiment", *COLUMNS]
    # The old fractions in %, under the names this lth writes; an empty cell stays empty.
    assert (merged[0]["sparsity_pct"], merged[0]["test_acc_pct"], merged[0]["final_test_acc_pct"]) == (
        "36.0",
        "91.23",
        "",
    )
    assert merged[1]["sparsity_pct"] == "1"  # a new summary's text as written


def test_an_older_summary_in_fractions_reads_in_percent():
    import pandas as pd

    old = pd.DataFrame({"seed": [0], "sparsity": [0.36], "test_acc": [0.5], "final_test_acc": [0.25], "run": ["r"]})
    upgraded = upgrade_summary(old)
    assert list(upgraded.columns) == ["seed", "sparsity_pct", "test_acc_pct", "final_test_acc_pct", "run"]
    assert upgraded.iloc[0][["sparsity_pct", "test_acc_pct", "final_test_acc_pct"]].tolist() == [36, 50, 25]
    new = upgraded.copy()
    pd.testing.assert_frame_equal(upgrade_summary(new), new)  # this lth's summary is left as it is
    with pytest.raises(LthError, match="old.csv: column 'test_acc' .* not a number; rebuild it"):
        upgrade_summary(old.assign(test_acc=["high"]), "old.csv")


def test_a_summary_with_other_columns_is_refused(tmp_path):
    other = write(tmp_path / "other.csv", ["seed", "variant"], [{"seed": 0, "variant": "lth"}])
    with pytest.raises(LthError, match="lacks columns this lth writes.*--forcerun aggregate"):
        merge_summaries([f"x={other}"], tmp_path / "all.csv")
