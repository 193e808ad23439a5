"""`lth estimate`: the compute a config still needs, from its plan and the store, without training anything."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lth.analysis.registry import ANALYSES
from lth.cli import main
from lth.errors import UsageError
from lth.estimate import ANALYSIS_PASSES, DEVICES, TRACKED_PASSES, Pass, estimate, load_plans
from lth.manifest import write_summary
from lth.plan import paths
from lth.plan.arguments import job_count

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = str(REPO / "configs" / "quickstart.yaml")
# BENCHMARKS.md row 6: `make quickstart`, 35 jobs on the project's 2-core CPU machine, 3 min 23 s wall.
QUICKSTART_MEASURED_SECONDS = 3 * 60 + 23


@pytest.fixture(autouse=True)
def fingerprint_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("LTH_CACHE_DIR", str(tmp_path / "cache"))


def override(tmp_path: Path, name: str, settings: dict) -> str:
    """A config file of `settings` merged over the quickstart's (as snakemake merges --configfile)."""
    path = tmp_path / name
    path.write_text(yaml.safe_dump(settings))
    return str(path)


def kind_hours(result, *kinds: str) -> float:
    return sum(row["hours"] for row in result.rows() if row["kind"] in kinds)


def test_quickstart_on_the_cpu_is_within_an_order_of_magnitude_of_its_measured_time(tmp_path):
    result = estimate([QUICKSTART], "cpu-2core", results=str(tmp_path / "results"))
    seconds = result.wall_hours * 3600
    assert QUICKSTART_MEASURED_SECONDS / 10 < seconds < QUICKSTART_MEASURED_SECONDS * 10, seconds
    assert result.wall_hours == result.hours  # one machine: all the work, after one another
    hours, chain = result.critical_path()
    assert 0 < hours < result.hours
    # the longest chain: the dense run, the IMP levels it prunes again, a last re-training, its Hessian
    assert [job.kind for job in chain] == [
        "dense training",
        *["IMP chain training"] * 5,
        "re-training",
        "analysis hessian",
    ]


def test_every_job_of_the_plan_is_counted_once(tmp_path):
    result = estimate([QUICKSTART], "cpu-2core", results=str(tmp_path / "results"))
    _, merged = load_plans([QUICKSTART], str(tmp_path / "results"))
    counts = job_count(merged)
    by_kind = {row["kind"]: row["jobs"] for row in result.rows()}
    assert by_kind["theta0 (init)"] == counts["init"]
    assert by_kind["dense training"] == counts["train_dense"]
    assert by_kind["masks (prune)"] == counts["prune"]
    assert by_kind["IMP chain training"] + by_kind["re-training"] == counts["train_sparse"]
    assert by_kind["analysis hessian"] == len(merged.analyses)
    assert all(not job.done for job in result.jobs)
    assert all(job.seconds > 0 for job in result.jobs if not job.light)


def test_the_estimate_scales_with_epochs_and_seeds(tmp_path):
    results = str(tmp_path / "results")
    base = estimate([QUICKSTART], "cpu-2core", results=results)
    longer = estimate([QUICKSTART, override(tmp_path, "long.yaml", {"train": {"epochs": 20}})], "cpu-2core", 1, results)
    plain = ("dense training", "IMP chain training")  # without GradInit, whose iterations do not grow with the epochs
    assert kind_hours(longer, *plain) == pytest.approx(2 * kind_hours(base, *plain))
    assert 1.5 < kind_hours(longer, "re-training") / kind_hours(base, "re-training") < 2
    assert kind_hours(longer, "analysis hessian") == pytest.approx(kind_hours(base, "analysis hessian"))
    seeds = estimate([QUICKSTART, override(tmp_path, "seeds.yaml", {"seeds": [0, 1]})], "cpu-2core", 1, results)
    assert len(seeds.jobs) == 2 * len(base.jobs) - 1  # one analysis collect for both seeds
    assert seeds.hours == pytest.approx(2 * base.hours)
    assert seeds.critical_path()[0] == pytest.approx(base.critical_path()[0])  # the seeds run side by side


def test_more_gpus_shorten_the_wall_time_down_to_the_critical_path(tmp_path):
    results = str(tmp_path / "results")
    one, four, many = (estimate([QUICKSTART], "h200-bf16", n, results) for n in (1, 4, 1000))
    assert one.hours == four.hours == many.hours
    assert one.wall_hours == pytest.approx(one.hours)
    assert four.wall_hours == pytest.approx(max(four.hours / 4, four.critical_path()[0]))
    assert many.wall_hours == pytest.approx(many.critical_path()[0])


def test_runs_finished_in_the_store_are_not_counted(tmp_path):
    results = tmp_path / "results"
    before = estimate([QUICKSTART], "cpu-2core", results=str(results))
    _, merged = load_plans([QUICKSTART], str(results))
    (dense,) = merged.dense
    last_mask = paths.mask_paths(merged)[-1]
    folder = Path(paths.folder(merged, dense))
    folder.mkdir(parents=True)
    write_summary(folder, {"test_acc_at_best_val": 0.9}, [])  # the marker `lth train` writes last
    Path(last_mask).parent.mkdir(parents=True)
    Path(last_mask).write_bytes(b"")
    Path(last_mask).with_name("mask.json").write_text("{}")
    after = estimate([QUICKSTART], "cpu-2core", results=str(results))
    rows = {row["kind"]: row for row in after.rows()}
    assert (rows["dense training"]["finished"], rows["dense training"]["to_run"]) == (1, 0)
    assert rows["dense training"]["hours"] == 0
    assert (rows["masks (prune)"]["finished"], rows["masks (prune)"]["to_run"]) == (1, 5)
    (dense_job,) = [job for job in before.jobs if job.kind == "dense training"]
    assert after.hours == pytest.approx(before.hours - dense_job.seconds / 3600)
    assert after.critical_path()[0] == pytest.approx(before.critical_path()[0] - dense_job.seconds / 3600)
    # a damaged summary.json is not a finished run: the training would run again
    (folder / "summary.json").write_text("{")
    assert estimate([QUICKSTART], "cpu-2core", results=str(results)).hours == pytest.approx(before.hours)


def test_bad_input_names_the_value_and_the_choices(tmp_path, capsys):
    with pytest.raises(
        UsageError, match=r"--device: 'a100' is not a reference device; choose one of h200-bf16, cpu-2core"
    ):
        estimate([QUICKSTART], "a100")
    with pytest.raises(UsageError, match=r"--gpus: 0 is not allowed; .*>= 1"):
        estimate([QUICKSTART], "cpu-2core", 0)
    assert main(["estimate", "--configfile", QUICKSTART, "--gpus", "-2"]) == 2
    assert "lth estimate: error: --gpus: -2 is not allowed" in capsys.readouterr().err
    assert main(["estimate", "--configfile", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml does not exist" in capsys.readouterr().err


def test_the_command_prints_a_table_json_and_csv_without_torch(tmp_path):
    results = str(tmp_path / "results")
    command = (
        "import sys; from lth.cli import main; "
        f"code = main(['estimate', '--configfile', {QUICKSTART!r}, '--device', 'cpu-2core', "
        f"'--results', {results!r}]); "
        "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(code)"
    )
    out = subprocess.run([sys.executable, "-c", command], capture_output=True, text=True, cwd=REPO, check=True).stdout
    assert "on cpu-2core" in out and "BENCHMARKS.md" in out and "critical path:" in out
    assert "CPU-hours:" in out and "wall time on 1 such machine" in out
    as_json = subprocess.run(
        [sys.executable, "-m", "lth", "estimate", "--configfile", QUICKSTART, "--results", results, "--format", "json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    ).stdout
    record = json.loads(as_json)
    assert record["device"] == "h200-bf16" and record["gpu_hours"] == record["hours"] > 0
    assert sum(row["jobs"] for row in record["rows"]) == record["jobs"]


def test_every_analysis_and_device_has_a_cost():
    assert set(ANALYSIS_PASSES) | set(TRACKED_PASSES) == set(ANALYSES)
    assert not set(ANALYSIS_PASSES) & set(TRACKED_PASSES)
    assert all("BENCHMARKS.md" in device.source for device in DEVICES.values())


def test_the_devices_give_back_their_measured_throughputs():
    """One training step-image of ResNet-18 at width 64 (cost 1) and at width 8 (cost 1/64), batch 128."""
    cpu, gpu = DEVICES["cpu-2core"], DEVICES["h200-bf16"]
    assert cpu.seconds([Pass(1, 128)], 1.0) == pytest.approx(1 / 27.7)
    assert cpu.seconds([Pass(1, 128)], 1 / 64) == pytest.approx(1 / 680)  # the floor: no faster than width 8
    assert gpu.seconds([Pass(1, 128)], 1.0) == pytest.approx(1 / 9_034)  # launch-bound at batch 128
    assert gpu.seconds([Pass(1, 128)], 1 / 64) == pytest.approx(1 / 9_034)  # ... whatever the model
    assert gpu.seconds([Pass(1, 64)], 1.0) == pytest.approx(2 / 9_034)  # half the images per launch-bound step
    assert gpu.seconds([Pass(1, 4096)], 1.0) == pytest.approx(1 / 40_730)  # large batches: compute-bound
