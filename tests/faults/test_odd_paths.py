"""Paths are data, never shell: results and data folders whose names hold spaces, unicode, quotes,
`$` and `;` run end to end, and nothing is written outside them (issue #24, finding 4)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import write_digits_npz
from test_workflow import tiny_config
from workflow_helpers import REPO, snakemake, write_config

# Shell params that hold several flags, built already shell-quoted (lth.plan.arguments.flags, shlex.join
# in workflow/rules/common.smk and lth/plan/arguments.py), so they go into the command as they are. `lth` is the
# interpreter and module (quoted in common.smk; `python -m lth` under conda).
PREQUOTED = {
    "params.lth",
    "params.hparams",
    "params.options",
    "params.settings",
    "params.rows",
    "params.pairs",
    "params.inputs",
    "params.mask",
    "params.track",
    "params.figure",
    "params.parts",
    "params.publish",
}
FIELD = re.compile(r"(?<!\{)\{([^{}]+)\}(?!\})")


def shell_fields() -> list[tuple[str, int, str]]:
    """(file, line, field) of every `{...}` in a `shell:` directive of the workflow."""
    found = []
    for path in [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]:
        in_shell = False
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.match(r"\s+shell:\s*$", line):
                in_shell = True
                continue
            # a command is string literals, or `store_job(...)` around them (workflow/rules/common.smk)
            in_shell = in_shell and re.match(r'\s+("|store_job\(|\)$)', line) is not None
            if in_shell:
                found += [(path.name, number, match.group(1)) for match in FIELD.finditer(line)]
            if line.strip().startswith('return f"{command}'):  # what store_job appends (an f-string: {{...}})
                found += [(path.name, number, field) for field in re.findall(r"\{\{([^{}]+)\}\}", line)]
    return found


def test_every_shell_command_quotes_what_it_interpolates():
    fields = shell_fields()
    assert len(fields) > 100  # the parser found the rules' commands
    unquoted = [
        f"{name}:{line} {{{field}}}"
        for name, line, field in fields
        if not field.endswith(":q") and field not in PREQUOTED
    ]
    assert not unquoted, "shell fields without :q (shlex.quote):\n" + "\n".join(unquoted)


@pytest.mark.workflow
def test_a_results_and_data_path_with_spaces_quotes_dollar_and_semicolon_run_end_to_end(tmp_path):
    data = write_digits_npz(tmp_path / "d ata $x" / "n'pz;ls")
    results = tmp_path / "a b" / "ü'q$x;y" / "results"
    # Every lth subcommand the rules call on such paths: init, train, prune, snapshot (the rewind
    # point), analyze and its collection, aggregate, tickets, plot and figure.
    config = write_config(
        tmp_path,
        "odd",
        tiny_config(
            data,
            results=str(results),
            variants=["lth", "rewind"],
            prune__levels=1,
            train__epochs=2,
            analysis={"activations": {"variants": ["lth"], "levels": [1]}},
        ),
    )
    snakemake(tmp_path, config)

    table = pd.read_csv(results / "tiny" / "summary.csv")
    assert sorted(zip(table["variant"], table["level"])) == [("dense", 0), ("lth", 1), ("rewind", 1)]
    assert all(Path(run).is_relative_to(results / "runs") for run in table["run"])
    assert (results / "tiny" / "analysis" / "activation_sparsity.csv").is_file()
    assert (results / "tiny" / "figures" / "accuracy_vs_sparsity.png").is_file()
    # `aggregate --experiments NAME=PATH` (rule summaries, for configs with `experiments:`).
    merged = subprocess.run(
        [
            sys.executable,
            "-m",
            "lth",
            "aggregate",
            "--out",
            str(results / "summary.csv"),
            "--experiments",
            f"tiny={results / 'tiny' / 'summary.csv'}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert merged.returncode == 0, merged.stderr[-2000:]
    assert len(pd.read_csv(results / "summary.csv")) == len(table)
    # Nothing outside the results and data folders, the config and Snakemake's own records.
    allowed = [results, data, config, tmp_path / ".snakemake"]
    stray = sorted(
        str(path.relative_to(tmp_path))
        for path in tmp_path.rglob("*")
        if not any(path == root or path.is_relative_to(root) or root.is_relative_to(path) for root in allowed)
    )
    assert not stray, f"written outside the results folder: {stray}"


@pytest.mark.workflow
@pytest.mark.parametrize("folder, named", [("a{b}", "'{', '}'"), ("a\nb", r"'\n'")])
def test_a_results_path_with_braces_or_a_newline_is_refused_when_planning(tmp_path, npz_root, folder, named):
    results = tmp_path / folder / "results"
    config = write_config(tmp_path, "odd", tiny_config(npz_root, results=str(results)))
    result = snakemake(tmp_path, config, "-n", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"results: {str(results)!r} holds {named}, which a results folder cannot" in output
    assert "Traceback" not in output
    assert not (tmp_path / folder).exists()
