"""Workflow benchmarks (issue: benchmarks, items 5-6).

  python bench/workflow.py dag          # `snakemake -n` on the paper's full DAG (config.yaml)
  python bench/workflow.py per-job      # per-job overhead of a trivial rule under snakemake
  python bench/workflow.py quickstart   # offline quickstart end to end: wall time and peak memory

Each runs in a fresh temporary folder; nothing is written into the repository.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import summarise  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def snakemake(*args: str, cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - started


def bench_dag(args) -> None:
    with tempfile.TemporaryDirectory() as folder:
        times = [snakemake("-s", str(REPO / "Snakefile"), "-d", folder, "--configfile", str(REPO / "config.yaml"),
                           "-n", "--quiet", "all", cwd=Path(folder)) for _ in range(args.repeats)]
    print(f"snakemake -n, paper DAG: {summarise(times)} s")


TRIVIAL = """
rule all:
    input: expand("out/{i}.txt", i=range(JOBS))

rule one:
    output: "out/{i}.txt"
    shell: "echo {wildcards.i} > {output}"
"""


def bench_per_job(args) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "Snakefile").write_text(f"JOBS = {args.jobs}\n" + TRIVIAL)
        runs = []
        for repeat in range(args.repeats):
            work = root / f"run{repeat}"
            work.mkdir()
            total = snakemake("-s", str(root / "Snakefile"), "-d", str(work), "--cores", "1", cwd=root)
            empty = snakemake("-s", str(root / "Snakefile"), "-d", str(work), "--cores", "1", cwd=root)  # no-op
            runs.append((total - empty) / args.jobs)
    print(f"per-job overhead of a trivial rule ({args.jobs} jobs, 1 core): {summarise(runs)} s")


def bench_quickstart(args) -> None:
    with tempfile.TemporaryDirectory() as folder:
        wall = snakemake("-s", str(REPO / "Snakefile"), "-d", folder, "--configfile",
                         str(REPO / "configs" / "quickstart.yaml"), "--cores", "2", cwd=Path(folder))
        tables = [pd.read_csv(path, sep="\t").assign(job=path.parent.name + "/" + path.name)
                  for path in Path(folder).glob("results/**/*benchmark.tsv")]
        jobs = pd.concat(tables)
    print(f"quickstart on 2 cores: {wall:.0f} s wall, {len(jobs)} jobs; largest single process "
          f"{jobs['max_rss'].max():.0f} MB peak RSS; two concurrent jobs at most "
          f"{jobs['max_rss'].nlargest(2).sum():.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("dag", "per-job", "quickstart"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=50)
    args = parser.parse_args()
    {"dag": bench_dag, "per-job": bench_per_job, "quickstart": bench_quickstart}[args.what](args)


if __name__ == "__main__":
    main()
