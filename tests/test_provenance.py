"""Provenance: a run made from a copy of the source (no git) still names the code that made it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from lth.provenance import PACKAGE, source_digest

PRINT = "import json; from lth.provenance import provenance; print(json.dumps(provenance()))"


def provenance_of(tree: Path) -> dict[str, str]:
    """What lth imported from `tree` (a folder holding an `lth` package) records."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    result = subprocess.run(
        [sys.executable, "-c", PRINT], cwd=tree, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(result.stdout)


def test_a_copied_tree_has_no_commit_but_the_same_source_digest_and_an_edit_changes_it(tmp_path: Path):
    tree = tmp_path / "lth-0.1.0 copy"  # an unpacked sdist: no .git anywhere above it
    shutil.copytree(PACKAGE, tree / "lth", ignore=shutil.ignore_patterns("__pycache__"))
    copied = provenance_of(tree)
    assert copied["git_commit"] == "unknown" and copied["lth"]
    assert copied["lth_source_sha256"] == source_digest()
    module = tree / "lth" / "provenance.py"
    module.write_text(module.read_text() + "\n# edited\n")
    assert provenance_of(tree)["lth_source_sha256"] != source_digest()


def test_the_digest_covers_file_names_not_only_contents(tmp_path: Path):
    tree = tmp_path / "src"
    shutil.copytree(PACKAGE, tree / "lth", ignore=shutil.ignore_patterns("__pycache__"))
    (tree / "lth" / "extra_module.py").write_text("")  # an empty file adds nothing but its name
    assert provenance_of(tree)["lth_source_sha256"] != source_digest()
