"""Workflow benchmarks (issue: benchmarks, items 5-6).

  python bench/workflow.py dag          # `snakemake -n` on the paper's full DAG (config.yaml)
  python bench/workflow.py noop         # a no-op rerun of the paper's full DAG, every output up to date
  python bench/workflow.py per-job      # per-job overhead of a trivial rule under snakemake
  python bench/workflow.py start        # what every cluster job pays first: parsing and planning
  python bench/workflow.py quickstart   # offline quickstart end to end: wall time and peak memory

Each runs in a fresh temporary folder; nothing is written into the repository.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import summarise  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def snakemake(*args: str, cwd: Path, env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, check=True, capture_output=True, env=env)
    return time.perf_counter() - started


def bench_dag(args) -> None:
    with tempfile.TemporaryDirectory() as folder:
        times = [
            snakemake(
                "-s",
                str(REPO / "Snakefile"),
                "-d",
                folder,
                "--configfile",
                str(REPO / "config.yaml"),
                "-n",
                "--quiet",
                "all",
                cwd=Path(folder),
            )
            for _ in range(args.repeats)
        ]
    print(f"snakemake -n, paper DAG: {summarise(times)} s")


def bench_noop(args) -> None:
    """Time `snakemake` on the paper's DAG when every output exists and is up to date.

    A finished paper run takes GPU-weeks, so the outputs are placeholders: the very files
    `snakemake --summary` lists, empty, all with one mtime. That is all snakemake looks at to
    decide that nothing is to be done (the profile's rerun trigger is mtime), and the run checks
    that it did decide so.
    """
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        paper = ("-s", str(REPO / "Snakefile"), "-d", folder, "--configfile", str(REPO / "config.yaml"))
        listing = subprocess.run(
            [sys.executable, "-m", "snakemake", *paper, "--summary"],
            cwd=workdir,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        outputs = pd.read_csv(io.StringIO(listing), sep="\t")["output_file"]
        for output in outputs:
            path = workdir / output
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
            os.utime(path, (1_700_000_000, 1_700_000_000))
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            run = subprocess.run(
                [sys.executable, "-m", "snakemake", *paper, "--cores", "2"],
                cwd=workdir,
                check=True,
                capture_output=True,
                text=True,
            )
            times.append(time.perf_counter() - started)
            if "Nothing to be done" not in run.stdout + run.stderr:
                sys.exit(f"the rerun was not a no-op:\n{run.stdout}{run.stderr}")
    print(f"no-op rerun, paper DAG ({len(outputs)} outputs up to date): {summarise(times)} s")


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


def bench_start(args) -> None:
    """Every cluster job starts by parsing the Snakefile and planning (here: `snakemake -n` of
    configs/cifar10-mini.yaml). `--against DIR` times another checkout in the same run, repeats
    interleaved, with its own lth first on the path (e.g. `git worktree add /tmp/old HEAD~1`)."""
    checkouts = {"this checkout": REPO, **({"--against": Path(args.against).resolve()} if args.against else {})}
    times: dict[str, list[float]] = {name: [] for name in checkouts}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.repeats):
            for name, repo in checkouts.items():
                env = {**os.environ, "PYTHONPATH": str(repo)}
                times[name].append(
                    snakemake(
                        "-s",
                        str(repo / "Snakefile"),
                        "-d",
                        folder,
                        "--configfile",
                        str(repo / "configs" / "cifar10-mini.yaml"),
                        "-n",
                        "--quiet",
                        cwd=Path(folder),
                        env=env,
                    )
                )
    for name, values in times.items():
        print(f"snakemake -n, configs/cifar10-mini.yaml, {name}: {summarise(values)} s")


def bench_quickstart(args) -> None:
    walls, largest, pairs = [], [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as folder:
            walls.append(
                snakemake(
                    "-s",
                    str(REPO / "Snakefile"),
                    "-d",
                    folder,
                    "--configfile",
                    str(REPO / "configs" / "quickstart.yaml"),
                    "--cores",
                    "2",
                    cwd=Path(folder),
                )
            )
            jobs = pd.concat([pd.read_csv(path, sep="\t") for path in Path(folder).glob("results/**/*benchmark.tsv")])
        largest.append(jobs["max_rss"].max())  # MB, from snakemake's per-job benchmark files
        pairs.append(jobs["max_rss"].nlargest(2).sum())  # --cores 2 runs at most two jobs at once
    print(
        f"quickstart on 2 cores ({len(jobs)} jobs): wall {summarise(walls)} s; largest single process "
        f"{summarise(largest)} MB peak RSS; two concurrent jobs at most {summarise(pairs)} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("dag", "noop", "per-job", "start", "quickstart"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--against", help="start: another checkout to time side by side")
    args = parser.parse_args()
    {
        "dag": bench_dag,
        "noop": bench_noop,
        "per-job": bench_per_job,
        "start": bench_start,
        "quickstart": bench_quickstart,
    }[args.what](args)


if __name__ == "__main__":
    main()
