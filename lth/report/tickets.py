"""`lth tickets`: the paper's headline numbers from an experiment's summary.csv (tickets.csv).

Every statistic is computed on means over seeds: at each level, a variant's mean test accuracy
(summary.csv's `test_acc_pct`: at the epoch of best validation accuracy, in %) and the level's mean
sparsity (`sparsity_pct`, in %). One row per statistic, columns `statistic, mask_source, variant,
reference, level, sparsity_pct, value_pct, seeds` (empty cells, NaN in the frame, where a statistic
has no value); `value_pct` is a test accuracy in % or, for `gain`, a difference of two in
percentage points. Every statistic is computed
per mask source (summary.csv's `mask_source`: what made the tickets' masks), among the tickets of
that source only, and `mask_source` names it; rows come source by source in order of appearance
(the config's order), each source's gains, then winning tickets, then critical sparsities. A
summary.csv without the column (older) is one source, its rows' `mask_source` empty.

- `gain`: for each variant other than vanilla and each level it shares with the vanilla of its
  source: `value_pct` = its mean test accuracy minus vanilla's, in percentage points; `reference` = vanilla's name
  (the variant with no parts, `lth`, however the CSV spells it); `seeds` = the smaller seed count of
  the two. Vanilla's own (zero) gains are left out, and there are no gain rows for a source without
  vanilla.
- `winning_ticket`: per variant (vanilla included) and source, `reference` = `dense` (the same dense
  network for every source): the highest level whose mean test accuracy is at least the dense
  network's mean over seeds (a "winning ticket"; the paper: 91% sparsity with its tweaks vs 67%
  without), even when a lower level fell short; `sparsity_pct` = that level's, `value_pct` = its
  mean accuracy; level, sparsity_pct and value_pct are empty when no level qualifies. `seeds` = the
  smaller of the dense seed count and the variant's at that level (at its fewest-seeded level when
  none qualifies). No rows without `dense` rows.
- `critical_sparsity`: per source and pair (a, b) of `pairs` whose variants both exist in it
  (matched by what they resolve to, so `at+trt` finds `skip+swish+gradinit+ls`; a pair with an
  absent variant gives no row), where the two mean curves cross: over the levels both have, in
  order of sparsity, d = mean_a - mean_b; the crossing lies between the LAST two adjacent levels
  where d changes sign, by linear interpolation on x = log(remaining fraction) = log(1 - sparsity)
  (a level where d = 0 is itself a crossing, at that level's sparsity). The last crossing is the
  one beyond which the order of the two never changes again. `variant` = a, `reference` = b,
  `sparsity_pct` = the crossing's, `value_pct` = a's mean accuracy interpolated there the same way
  (equal to b's: d = 0), `level` empty (a crossing usually lies between levels); sparsity_pct and
  value_pct empty when the curves never cross. `seeds` = the smallest seed count of the two over their shared levels.

The dense network (`dense`) is only the winning-ticket reference, and dense-with-tweak baselines
(`dense+<tweak>`, level 0) enter no statistic: they are not tickets, and comparing a ticket with a
dense network trained differently answers another question (Figure 1 draws them instead).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lth.errors import LthError
from lth.io import write_sealed_csv
from lth.report.summary import (
    SUMMARY_COLUMNS,
    check_one_experiment,
    find_variant,
    level_means,
    parts_of,
    read_summary,
    sources_of,
    sparse_rows,
    with_source,
)

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = ["statistic", "mask_source", "variant", "reference", "level", "sparsity_pct", "value_pct", "seeds"]
NAN = float("nan")


def _checked_curves(sparsity_pct: Sequence[float], *curves: Sequence[float]) -> list[float]:
    """log(remaining fraction) per level, after checking the inputs (same lengths, sparsities in % in
    [0, 100), increasing)."""
    if any(len(curve) != len(sparsity_pct) for curve in curves):
        raise LthError(
            f"critical sparsity: {len(sparsity_pct)} sparsities but curves of "
            f"{[len(c) for c in curves]} points; give one accuracy per sparsity"
        )
    if any(not 0 <= s < 100 for s in sparsity_pct) or any(p >= q for p, q in zip(sparsity_pct, sparsity_pct[1:])):
        raise LthError(
            f"critical sparsity: sparsities {list(sparsity_pct)} must be percentages in [0, 100), strictly increasing"
        )
    return [math.log(1 - s / 100) for s in sparsity_pct]


def critical_point(sparsity_pct: Sequence[float], a: Sequence[float], b: Sequence[float]) -> tuple[float, float] | None:
    """(sparsity in %, a's accuracy) at the last crossing of curves `a` and `b` (module docstring), or
    None when they never cross. `sparsity_pct` strictly increasing, one value of `a` and `b` per sparsity."""
    xs = _checked_curves(sparsity_pct, a, b)
    d = [p - q for p, q in zip(a, b)]
    crossing = None
    for i in range(len(d)):
        if d[i] == 0:
            crossing = (xs[i], a[i])
        elif i + 1 < len(d) and d[i] * d[i + 1] < 0:
            t = d[i] / (d[i] - d[i + 1])  # where the straight line between the two d's is zero
            crossing = (xs[i] + t * (xs[i + 1] - xs[i]), a[i] + t * (a[i + 1] - a[i]))
    if crossing is None:
        return None
    return 100 * (1 - math.exp(crossing[0])), crossing[1]


def critical_sparsity(sparsity_pct: Sequence[float], a: Sequence[float], b: Sequence[float]) -> float | None:
    """The critical sparsity (in %) of curves `a` and `b`: their last crossing, interpolated on log
    remaining weights (module docstring), or None when they never cross."""
    point = critical_point(sparsity_pct, a, b)
    return None if point is None else point[0]


def winning_level(levels: Sequence[int], means: Sequence[float], dense_mean: float) -> int | None:
    """The highest of `levels` whose mean accuracy (`means`, one per level) reaches `dense_mean`, or None."""
    if len(levels) != len(means):
        raise LthError(f"winning level: {len(levels)} levels but {len(means)} means; give one mean per level")
    winning = [level for level, mean in zip(levels, means) if mean >= dense_mean]
    return max(winning) if winning else None


def _pair_curves(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """The levels two level_means frames share, in order of sparsity: level, sparsity_pct (a's), mean_a,
    mean_b, seeds (the smaller count)."""
    joined = a.merge(b, on="level", suffixes=("_a", "_b")).sort_values("sparsity_pct_a")
    return joined.assign(sparsity_pct=joined["sparsity_pct_a"], seeds=joined[["seeds_a", "seeds_b"]].min(axis=1))


def curves_crossing(a: pd.DataFrame, b: pd.DataFrame) -> tuple[float, float] | None:
    """critical_point of two level_means frames (lth.report.summary) over the levels they share: (sparsity in %,
    a's accuracy) at their last crossing, or None. tickets.csv and Figure 4b's marker both use it."""
    joined = _pair_curves(a, b)
    return critical_point(joined["sparsity_pct"].tolist(), joined["mean_a"].tolist(), joined["mean_b"].tolist())


def _source_statistics(
    sparse: pd.DataFrame, dense: pd.DataFrame, pairs: Sequence[tuple[str, str]], source: str | None
) -> list[dict[str, Any]]:
    """tickets.csv's rows of one mask source: its tickets `sparse`, against the `dense` rows."""
    names = list(dict.fromkeys(sparse["variant"]))
    curves = {name: level_means(sparse[sparse["variant"] == name]).sort_values("level") for name in names}
    rows: list[dict[str, Any]] = []

    def row(statistic: str, variant: str, reference: str, level: Any, sparsity: Any, value: Any, seeds: Any) -> None:
        rows.append(dict(zip(COLUMNS, (statistic, source, variant, reference, level, sparsity, value, int(seeds)))))

    vanilla = find_variant("lth", names)
    if vanilla is not None:
        for name in names:
            if name != vanilla:
                for stat in _pair_curves(curves[name], curves[vanilla]).itertuples():
                    row("gain", name, vanilla, stat.level, stat.sparsity_pct, stat.mean_a - stat.mean_b, stat.seeds)
    if not dense.empty:
        dense_mean, dense_seeds = dense["test_acc_pct"].mean(), dense["seed"].nunique()
        for name in names:
            curve = curves[name]
            level = winning_level(curve["level"].tolist(), curve["mean"].tolist(), dense_mean)
            if level is None:
                row("winning_ticket", name, "dense", NAN, NAN, NAN, min(dense_seeds, curve["seeds"].min()))
            else:
                best = curve[curve["level"] == level].iloc[0]
                row(
                    "winning_ticket",
                    name,
                    "dense",
                    level,
                    best["sparsity_pct"],
                    best["mean"],
                    min(dense_seeds, best["seeds"]),
                )
    for first, second in pairs:
        a, b = find_variant(first, names), find_variant(second, names)
        if a is None or b is None or a == b:
            continue  # this source lacks the pair (configs list pairs for every experiment)
        joined = _pair_curves(curves[a], curves[b])
        if not joined.empty:  # no shared level: nothing to compare
            point = curves_crossing(curves[a], curves[b])
            row("critical_sparsity", a, b, NAN, *(point or (NAN, NAN)), joined["seeds"].min())
    return rows


def ticket_statistics(
    summary: pd.DataFrame, pairs: Sequence[tuple[str, str]] = (), where: str = "the summary"
) -> pd.DataFrame:
    """tickets.csv's rows (module docstring) from one experiment's summary.csv rows (`where` names
    them in errors), mask source by mask source (`mask_source` None for a summary without the column)."""
    import pandas as pd

    missing = [column for column in SUMMARY_COLUMNS if column not in summary]
    if missing:
        raise LthError(f"{where} lacks the column {missing[0]!r}; give a summary.csv written by `lth aggregate`")
    check_one_experiment(summary, where)
    dense = summary[summary["variant"] == "dense"]  # dense+<tweak> baselines enter no statistic
    rows = [
        row
        for source in sources_of(summary, where)
        for row in _source_statistics(sparse_rows(with_source(summary, source)), dense, pairs, source)
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def parse_pair(text: str) -> tuple[str, str]:
    """`A:B` (two variant expressions, e.g. at+trt:rewind) as a pair, or an LthError."""
    first, sep, second = text.partition(":")
    if not sep or parts_of(first) is None or parts_of(second) is None:
        raise LthError(
            f"--pair: {text!r} is not allowed; give two variants as A:B, e.g. at+trt:rewind "
            "(each a `+`-joined list of parts or aliases)"
        )
    if parts_of(first) == parts_of(second):
        raise LthError(f"--pair: {text!r} names one variant twice; give two different variants")
    return first, second


def write_tickets(summary_csv: str | Path, out: str | Path, pairs: Sequence[tuple[str, str]] = ()) -> pd.DataFrame:
    """tickets.csv (module docstring) from a summary.csv, written atomically and sealed; returns its rows."""
    statistics = ticket_statistics(read_summary(summary_csv), pairs, str(summary_csv))

    def cell(key: str, value: Any) -> Any:  # empty for "none"; levels and seeds as integers
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ""
        if key in ("level", "seeds"):
            return int(value)
        # as summary.csv's: 8 decimals, so a difference of two reads 0.82417583, not 0.8241758300000015
        return round(value, 8) if isinstance(value, float) else value

    records = [{key: cell(key, value) for key, value in record.items()} for record in statistics.to_dict("records")]
    write_sealed_csv(out, records, COLUMNS)
    return statistics
