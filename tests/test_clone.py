"""A fresh clone with nothing beside it passes the data-dependent tests: they make their own data and
read nothing outside the repository (no ../shared, no $LTH_SHARED_DATA)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from conftest import REPO

# The tests that load data sets (npz, CIFAR, Tiny-ImageNet, image folders, digits) without running the
# workflow: about 20 s here. The workflow tests read the same fixture (conftest.py's npz_root).
DATA_TESTS = ["tests/test_batches.py", "tests/test_sources.py", "tests/test_data_identity.py"]
# What the clone's tests must not see: the old data location, the opt-in to the SLURM test (it
# installs and starts services), and options that would change which tests run.
UNSET = ("LTH_SHARED_DATA", "LTH_TEST_SLURM", "PYTEST_ADDOPTS")


def test_a_fresh_clone_passes_its_data_tests_with_nothing_beside_it(tmp_path):
    inside = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--is-inside-work-tree"], capture_output=True, text=True
    )
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        pytest.skip(f"{REPO} is not a git checkout, so there is nothing to clone")
    clone = tmp_path / "alone" / "lth"  # its parent holds nothing else: no ../shared beside it
    cloned = subprocess.run(
        ["git", "clone", "--quiet", str(REPO), str(clone)], capture_output=True, text=True, timeout=120
    )
    assert cloned.returncode == 0, cloned.stderr
    env = {key: value for key, value in os.environ.items() if key not in UNSET}
    env["PYTHONPATH"] = str(clone)  # the clone's lth, not the one installed from this checkout
    env["LTH_CACHE_DIR"] = str(tmp_path / "cache")  # data fingerprints: a cache of its own
    found = subprocess.run(
        [sys.executable, "-c", "import lth; print(lth.__file__)"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert found.stdout.strip() == str(clone / "lth" / "__init__.py"), found.stdout + found.stderr
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--basetemp",
            str(tmp_path / "basetemp"),
            *DATA_TESTS,
        ],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    summary = output.strip().splitlines()[-1] if output.strip() else ""
    assert result.returncode == 0, output[-6000:]
    # Every test passed: none failed, errored or was skipped (a skip would hide missing data).
    assert re.fullmatch(r"=* *\d+ passed in [\d.]+s( \([\d:]+\))? *=*", summary), summary
