"""Regenerate the README's quickstart figures and the numbers it quotes from a finished quickstart.

  make quickstart                      # or: snakemake --cores all --configfile configs/quickstart.yaml
  python docs/update_quickstart.py     # then commit docs/quickstart/ and README.md

Copies the quickstart's tables (summary.csv, tickets.csv, analysis/hessian.csv), each with its seal
(`<table>.sha256`: lth reads only tables that match theirs), into docs/quickstart/,
redraws the README's two figures from those copies with `lth figure`, and rewrites the README's text
between the `<!-- quickstart:NAME -->` and `<!-- /quickstart:NAME -->` markers from the same copies.
tests/test_readme.py renders the text again from the committed copies and compares, so a README that
quotes another run than its figures fails the suite.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from lth.io import IntegrityError, check_sealed, seal_path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "quickstart"
README = REPO / "README.md"
# What the README shows: (table copied from the quickstart's results, figure drawn from it).
TABLES = {"summary.csv": "summary.csv", "tickets.csv": "tickets.csv", "hessian.csv": "analysis/hessian.csv"}
WRITERS = {"summary.csv": "lth aggregate", "tickets.csv": "lth tickets", "hessian.csv": "lth analyze collect"}
FIGURES = {"fig4a_at_trt": "summary.csv", "fig2_hessian": "hessian.csv"}
VANILLA, TWEAKED = "lth", "at+trt"


def _pct(value: float) -> str:
    return f"{value:.1f}%"


def _sparsity(value: float) -> str:
    """Sparsity in percent with the digits that tell the levels apart (60%, 97.4%, 99.6%)."""
    return f"{value:.1f}".removesuffix(".0") + "%"


def _threshold(tickets: pd.DataFrame, variant: str) -> str:
    row = tickets[(tickets["statistic"] == "winning_ticket") & (tickets["variant"] == variant)]
    sparsity = row["sparsity_pct"].iloc[0] if len(row) else float("nan")
    return "no level" if pd.isna(sparsity) else _sparsity(sparsity)


def caption(summary: pd.DataFrame, tickets: pd.DataFrame, hessian: pd.DataFrame) -> str:
    """The figure caption under the README's first figure."""
    dense = summary[summary["variant"] == "dense"]["test_acc_pct"].mean()
    last = summary[summary["variant"].isin([VANILLA, TWEAKED])]["level"].max()
    at_last = summary[summary["level"] == last].groupby("variant").mean(numeric_only=True)
    sparsity = _sparsity(at_last.loc[VANILLA, "sparsity_pct"])
    accuracy = {v: _pct(at_last.loc[v, "test_acc_pct"]) for v in (VANILLA, TWEAKED)}
    nonzero = {v: f"{int(at_last.loc[v, 'nonzero_params']):,}" for v in (VANILLA, TWEAKED)}
    return (
        f"*The quickstart's main figure, `fig4a_at_trt` (ResNet-18 at width 4 on scikit-learn's 8x8 digits, "
        f"10 epochs, IMP at 60% per round to {sparsity} sparsity, one seed, 2 CPU cores): vanilla tickets "
        f"(`{VANILLA}`) against the paper's tweaks combined (`{TWEAKED}`), the dense network dashed. The dense "
        f"network reaches {_pct(dense)} test accuracy (at its best validation epoch, as everywhere in lth). "
        f"The tickets match or beat it up to {_threshold(tickets, VANILLA)} sparsity (vanilla) and "
        f"{_threshold(tickets, TWEAKED)} (at+trt); at {sparsity} vanilla reaches {accuracy[VANILLA]} and at+trt "
        f"{accuracy[TWEAKED]}. At+trt's skip branches are dense and add weights: {nonzero[TWEAKED]} nonzero "
        f"parameters against vanilla's {nonzero[VANILLA]} at that level (`figures: {{x: nonzero_params}}` plots "
        f"against that axis instead). One seed on toy data shows the mechanics, not the paper's numbers, and "
        f"another CPU can give other digits (its kernels sum in another order).*"
    )


def hessian_text(hessian: pd.DataFrame) -> str:
    """The sentences before the README's Hessian figure: what the quickstart's eigenvalues show."""
    top = hessian[hessian["rank"] == 1].groupby(["variant", "level"], as_index=False).mean(numeric_only=True)
    dense = top[top["variant"] == "dense"]["eigenvalue"].mean()
    pairs = top[top["variant"].isin([VANILLA, TWEAKED])].pivot(index="level", columns="variant", values="eigenvalue")
    pairs = pairs.dropna().sort_index()
    sparsity = top.groupby("level")["sparsity_pct"].mean()
    levels = ", ".join(
        f"{_sparsity(sparsity[level])}: {row[VANILLA]:,.0f} vs {row[TWEAKED]:,.0f}" for level, row in pairs.iterrows()
    )
    lower = int((pairs[TWEAKED] < pairs[VANILLA]).sum())
    return (
        f"The quickstart asks for the Hessian of the dense network and of the {VANILLA} and {TWEAKED} tickets at "
        f"every other level. The dense network's top eigenvalue is {dense:,.0f}; the tickets' ({VANILLA} vs "
        f"{TWEAKED}) are {levels}: {TWEAKED}'s is the lower at {lower} of {len(pairs)} levels. At+trt is another "
        f"architecture (skip branches, Swish) trained with another loss, so its eigenvalues measure the curvature "
        f"of another function, not a flatter minimum of the same one; one seed on toy data is an illustration, "
        f"not evidence for the paper's Figure 2:"
    )


BLOCKS: dict[str, Callable[[pd.DataFrame, pd.DataFrame, pd.DataFrame], str]] = {
    "caption": caption,
    "hessian": lambda summary, tickets, hessian: hessian_text(hessian),
}


def read_tables(folder: Path = DOCS) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    for name in TABLES:  # the README quotes only what lth wrote, never a table edited since
        check_sealed(folder / name, WRITERS[name])
    return tuple(pd.read_csv(folder / name) for name in TABLES)  # type: ignore[return-value]


def marked(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- quickstart:{name} -->\n)(.*?)(\n<!-- /quickstart:{name} -->)", re.DOTALL)


def readme_blocks(text: str) -> dict[str, str]:
    """The README's text between each pair of markers."""
    found = {name: marked(name).search(text) for name in BLOCKS}
    missing = [name for name, match in found.items() if match is None]
    if missing:
        raise SystemExit(f"README.md lacks the markers of {', '.join(missing)}")
    return {name: match.group(2) for name, match in found.items()}


def rendered_blocks(folder: Path = DOCS) -> dict[str, str]:
    tables = read_tables(folder)
    # Wrapped as the rest of the README is, so a diff of the text after a new quickstart reads well.
    return {
        name: textwrap.fill(render(*tables), width=100, break_long_words=False, break_on_hyphens=False)
        for name, render in BLOCKS.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--results",
        type=Path,
        default=REPO / "results" / "quickstart",
        help="the finished quickstart's results folder (default: %(default)s)",
    )
    args = parser.parse_args()
    missing = [str(args.results / source) for source in TABLES.values() if not (args.results / source).is_file()]
    if missing:
        raise SystemExit(f"not a finished quickstart: {', '.join(missing)} missing; run `make quickstart` first")
    try:  # every table checked before any is copied: the docs never quote an edited table
        for name, source in TABLES.items():
            check_sealed(args.results / source, WRITERS[name])
    except IntegrityError as error:
        raise SystemExit(str(error)) from None
    DOCS.mkdir(parents=True, exist_ok=True)
    for name, source in TABLES.items():
        shutil.copyfile(args.results / source, DOCS / name)
        shutil.copyfile(seal_path(args.results / source), seal_path(DOCS / name))  # names the file: same basename
    for figure, table in FIGURES.items():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "lth",
                "figure",
                figure,
                "--csv",
                str(DOCS / table),
                "--out",
                str(DOCS / f"{figure}.png"),
                "--force",
            ],
            check=True,
        )
    text = README.read_text()
    readme_blocks(text)  # every marker is there before anything is rewritten
    for name, block in rendered_blocks().items():
        text = marked(name).sub(lambda match: match.group(1) + block + match.group(3), text)
    README.write_text(text)
    print(f"wrote {DOCS} and README.md's {', '.join(BLOCKS)}")


if __name__ == "__main__":
    main()
