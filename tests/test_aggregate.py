"""results/summary.csv: every experiment's summary.csv in one table."""

from __future__ import annotations

import csv

import pytest

from lth.aggregate import COLUMNS, merge_summaries
from lth.errors import LthError


def write(path, columns, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def row(columns, **values):
    return {column: values.get(column, "1") for column in columns}


def test_a_summary_written_before_mask_sources_merges_with_an_empty_source(tmp_path):
    legacy_columns = [column for column in COLUMNS if column != "mask_source"]
    old = write(tmp_path / "old.csv", legacy_columns, [row(legacy_columns, variant="lth")])
    new = write(tmp_path / "new.csv", COLUMNS, [row(COLUMNS, variant="lth", mask_source="snip")])
    merge_summaries([f"old={old}", f"new={new}"], tmp_path / "all.csv")
    with open(tmp_path / "all.csv", newline="") as handle:
        merged = list(csv.DictReader(handle))
    assert [(r["experiment"], r["mask_source"]) for r in merged] == [("old", ""), ("new", "snip")]
    assert list(merged[0]) == ["experiment", *COLUMNS]


def test_a_summary_with_other_columns_is_refused(tmp_path):
    other = write(tmp_path / "other.csv", ["seed", "variant"], [{"seed": 0, "variant": "lth"}])
    with pytest.raises(LthError, match="lacks columns this lth writes.*--forcerun aggregate"):
        merge_summaries([f"x={other}"], tmp_path / "all.csv")
