"""README.md says what the code does: its quickstart text is the committed quickstart's numbers, its
figures exist, and its job count for the paper's experiment is what a dry run plans."""

from __future__ import annotations

import importlib.util
import re
import shutil

import pytest
from conftest import REPO
from workflow_helpers import dry_run_commands

README = (REPO / "README.md").read_text()


def _docs_script():
    spec = importlib.util.spec_from_file_location("update_quickstart", REPO / "docs" / "update_quickstart.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readmes_quickstart_text_is_rendered_from_the_committed_quickstart_tables():
    """docs/update_quickstart.py writes the text from docs/quickstart/*.csv; rendering it again from
    the committed tables gives the README's text, so the README cannot quote another run."""
    script = _docs_script()
    assert script.readme_blocks(README) == script.rendered_blocks()


def test_the_readmes_quickstart_text_is_never_rendered_from_an_edited_table(tmp_path):
    """The committed tables carry their seals (docs/update_quickstart.py copies them); a tickets.csv
    edited after lth wrote it is refused, so the README cannot quote it."""
    from lth.io import IntegrityError, seal_path

    script = _docs_script()
    for name in script.TABLES:
        shutil.copyfile(script.DOCS / name, tmp_path / name)
        shutil.copyfile(seal_path(script.DOCS / name), seal_path(tmp_path / name))
    script.read_tables(tmp_path)  # as committed: read
    tickets = tmp_path / "tickets.csv"
    text = tickets.read_text()
    edited = re.sub(r"^(winning_ticket,[^,]*,at\+trt,(?:[^,]*,){3})[^,]*", r"\g<1>99.0", text, count=1, flags=re.M)
    assert edited != text
    tickets.write_text(edited)
    with pytest.raises(IntegrityError, match=f"{re.escape(str(tickets))} does not match the sha256 in its seal"):
        script.read_tables(tmp_path)


def test_every_figure_the_readme_shows_is_committed():
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README)
    assert images and all((REPO / image).is_file() for image in images), images
    script = _docs_script()
    assert {f"docs/quickstart/{figure}.png" for figure in script.FIGURES} <= set(images)


def test_the_paper_plan_the_readme_quotes_is_what_a_dry_run_plans():
    """`snakemake -n` from the repository root, as the README runs it: the total and the per-stage
    counts on the README's plan line."""
    match = re.search(
        r"snakemake -n +# the plan: ([\d,]+) jobs \(([\d,]+) dense trainings, ([\d,]+) masks, "
        r"([\d,]+) re-trainings",
        README,
    )
    assert match, "README.md's plan line for config.yaml is missing"
    total, dense, masks, sparse = (int(group.replace(",", "")) for group in match.groups())
    _, output = dry_run_commands(REPO)
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", output.split("Job stats:", 1)[1], re.MULTILINE))
    assert (int(stats["total"]), int(stats["train_dense"]), int(stats["prune"]), int(stats["train_sparse"])) == (
        total,
        dense,
        masks,
        sparse,
    )
