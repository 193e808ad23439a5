"""The benchmark scripts still run against the current library (tiny sizes; no time is asserted)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO, find_shared_data


@pytest.mark.parametrize("script, what, flags", [
    # 100 images in batches of 64: a partial batch
    ("training", "ceiling", ["--widths", "8", "--images", "100", "--batch-size", "64", "--eval-images", "100"]),
    ("training", "peer", ["--widths", "8", "--images", "128", "--peer-workers", "0"]),
    ("training", "masking", ["--widths", "8", "--images", "256"]),
    ("analysis", "hvp", ["--widths", "8"]),
    ("analysis", "track", ["--widths", "8", "--images", "256", "--sample", "16", "--max-iter", "3",
                           "--warmup-steps", "1"]),
    ("analysis", "landscape", ["--widths", "8", "--images", "100", "--points", "2"]),
    ("masks", None, ["--widths", "8", "--batch-size", "16", "--synflow-rounds", "3"]),
])
def test_bench_runs(script: str, what: str | None, flags: list[str]) -> None:
    env = {**os.environ, "LTH_SHARED_DATA": str(find_shared_data())}
    command = [sys.executable, str(REPO / "bench" / f"{script}.py"), *([what] if what else []), *flags]
    result = subprocess.run([*command, "--repeats", "1", "--threads", "1"], capture_output=True, text=True,
                            timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert "(min" in result.stdout  # a median (min, max) summary was printed
