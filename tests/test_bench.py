"""The benchmark scripts still run against the current library (tiny sizes; no time is asserted), on
the tests' own CIFAR-shaped images (`npz_root`, through --data)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO


@pytest.mark.parametrize(
    "script, what, flags",
    [
        # 100 images in batches of 64: a partial batch
        ("training", "ceiling", ["--widths", "8", "--images", "100", "--batch-size", "64", "--eval-images", "100"]),
        ("training", "peer", ["--widths", "8", "--images", "128", "--peer-workers", "0"]),
        ("training", "masking", ["--widths", "8", "--images", "256"]),
        ("training", "gradinit", ["--widths", "4", "--images", "64", "--batch-size", "32"]),
        ("analysis", "hvp", ["--widths", "8"]),
        (
            "analysis",
            "track",
            ["--widths", "8", "--images", "256", "--sample", "16", "--max-iter", "3", "--warmup-steps", "1"],
        ),
        ("analysis", "landscape", ["--widths", "8", "--images", "100", "--points", "2"]),
        ("masks", None, ["--widths", "8", "--batch-size", "16", "--synflow-rounds", "3"]),
    ],
)
def test_bench_runs(script: str, what: str | None, flags: list[str], npz_root, tmp_path) -> None:
    # The default folder points nowhere, so only --data can give the scripts their images.
    env = {**os.environ, "LTH_SHARED_DATA": str(tmp_path / "absent")}
    data = ["--data", str(npz_root)] if script in ("training", "analysis") else []  # masks.py draws random batches
    command = [sys.executable, str(REPO / "bench" / f"{script}.py"), *([what] if what else []), *flags, *data]
    result = subprocess.run(
        [*command, "--repeats", "1", "--threads", "1"], capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "(min" in result.stdout  # a median (min, max) summary was printed
