"""`lth estimate`: the compute a config's plan still needs, before anything runs.

The plan is built as the Snakefile builds it (the same config files, merged as Snakemake merges
them, the schema's defaults, `lth.plan.graph.Plan`), and every job of the run store is costed from
its settings: training epochs over the training split plus evaluation of the validation and test
splits every epoch, GradInit's iterations, and the analyses' passes. A job whose artifact is
already finished in the store is not counted: `lth train --reuse`, which every workflow job runs,
keeps such an artifact at once (for a run, its summary.json, written last: lth.store.keep_existing).

Costs are in training steps per image of the reference job of lth/resources.py (ResNet-18 at width
64 on 32x32 images), scaled by each model's forward FLOPs per image (`lth.resources.image_cost`),
and turned into seconds by a reference device's measured throughput (lth/reference_devices.py, each
entry citing BENCHMARKS.md). Small models are bound by overheads, not FLOPs: each device also has a floor, the
fastest training measured on it, below which a job's cost per image does not fall. On a GPU that
floor is per step (a launch-bound step takes the same time whatever the model, so a smaller batch
costs more per image); on a CPU it is per image. Torch-free, like planning: the answer comes in a
second or two, even for the paper's 1,600 jobs.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lth import artifacts
from lth.analysis.registry import ANALYSES
from lth.errors import LthError, UsageError
from lth.hparams import DataHparams, GradinitHparams, ModelHparams, TrainHparams
from lth.plan import paths
from lth.plan.analyses import AnalysisJob
from lth.plan.arguments import analysis_inputs, prune_inputs, training_inputs
from lth.plan.graph import Plan
from lth.reference_devices import DEVICES, Device, Pass
from lth.resources import image_cost

REPO = Path(__file__).resolve().parents[1]

# Multiples of one training step (forward, backward, SGD) per image. A forward pass is a third of a
# step (the usual count; BENCHMARKS.md row 1 agrees: evaluating 15,000 images every epoch adds
# 10.5-11.6% to a 45,000-image training pass, and 15/(45 x 3) = 11.1%).
FORWARD = 1 / 3
# BENCHMARKS.md "GradInit (issue #25)": one iteration on its S0 u S1 batch costs 5.18 training steps
# of that batch (the constraint step; the objective step 4.89).
GRADINIT_ITERATION = 5.18
# BENCHMARKS.md row 8: a Hessian-vector product on a kept graph costs 2.14 training steps (width 16;
# 2.01 at width 64), the first of a power iteration 3.70 (width 64; 3.19 at width 16).
HVP, FIRST_HVP = 2.14, 3.70
# Batch sizes the jobs evaluate and analyse with (they only matter on a device whose floor is per
# step): lth.train.RunOptions.eval_batch_size, and lth.analysis' samples (batches of 500); both
# modules import torch, which this one must not.
EVAL_BATCH, ANALYSIS_BATCH = 1024, 500


@dataclass
class Job:
    """One workflow job on the run store."""

    kind: str  # a row of the table (KINDS)
    experiment: str  # the first experiment of the config that plans it
    outputs: tuple[str, ...]  # store paths it produces
    inputs: tuple[str, ...]  # store paths it reads
    seconds: float  # on the device; 0 for a light job
    done: bool  # its artifact is finished in the store
    light: bool = False  # seconds at most, on the CPU: counted, not timed
    threads: int = 1


# The table's rows, in the order jobs run.
KINDS = (
    "data download",
    "theta0 (init)",
    "dense training",
    "dense baselines",
    "rewind points",
    "masks (prune)",
    "IMP chain training",
    "re-training",
    "reinit weights",
    "snapshots",
    *(f"analysis {name}" for name in ANALYSES),
    "analysis grid merge",
    "analysis collect",
)


def device(name: str) -> Device:
    if name not in DEVICES:
        raise UsageError(f"--device: {name!r} is not a reference device; choose one of {', '.join(DEVICES)}")
    return DEVICES[name]


# --- the plan, as the Snakefile reads it ------------------------------------------------------


def load_plans(config_files: Sequence[str | Path], results: str | None = None) -> tuple[dict[str, Plan], Plan]:
    """(experiment name -> its plan, the merged plan) of these config files, read as `snakemake
    --configfile` reads them (later files merged over earlier ones; config.yaml of the repository when
    none is given); `results` replaces the config's results folder (not part of any run's name)."""
    from snakemake.utils import update_config, validate

    from lth.experiments import experiment_configs
    from lth.plan.config import resolve_data_root
    from lth.yamlio import read_yaml

    files = [Path(path) for path in config_files] or [REPO / "config.yaml"]
    config: dict[str, Any] = {}
    for path in files:
        if not path.is_file():
            raise UsageError(f"--configfile: {path} does not exist")
        content = read_yaml(path)  # lth's loader: a duplicate key is an error naming both lines
        if not isinstance(content, dict):
            raise UsageError(f"--configfile: {path} is not a mapping of settings")
        update_config(config, content)
    if results is not None:
        config["results"] = results
    schema = REPO / "workflow" / "schemas" / "config.schema.yaml"
    plans = {}
    for name, experiment in experiment_configs(config).items():
        try:
            validate(experiment, str(schema))
        except Exception as error:  # snakemake's WorkflowError carries the schema's message
            raise LthError(f"config {', '.join(map(str, files))}: {error}") from None
        resolve_data_root(experiment, files)
        plans[name] = Plan.from_config(experiment)
    return plans, Plan.merge(list(plans.values()))


# --- what each job costs -----------------------------------------------------------------------


@functools.cache
def _sizes(data: DataHparams) -> dict[str, int]:
    from lth.data import split_sizes

    return split_sizes(data)


def _image_cost(model: ModelHparams, data: DataHparams) -> float:
    from lth.data.sources import SOURCES

    return image_cost(model.name, model.width, SOURCES[data.name].image_size ** 2)


def epoch_passes(data: DataHparams, train: TrainHparams) -> list[Pass]:
    """One epoch: the training split (with distillation, a teacher's forward per image too), then
    evaluation of the validation and test splits, as `lth train` runs it."""
    sizes = _sizes(data)
    teacher = FORWARD if train.kd_alpha > 0 else 0
    return [
        Pass(sizes["train"] * (1 + teacher), train.batch_size),
        Pass((sizes["val"] + sizes["test"]) * FORWARD, EVAL_BATCH),
    ]


def training_passes(data: DataHparams, train: TrainHparams, gradinit: GradinitHparams, epochs: int) -> list[Pass]:
    """`epochs` epochs of training, after GradInit when the run uses it."""
    passes = [Pass(p.steps * epochs, p.batch) for p in epoch_passes(data, train)]
    if gradinit.enabled:
        passes.append(Pass(gradinit.iterations * gradinit.batch_size * GRADINIT_ITERATION, gradinit.batch_size))
    return passes


def power_iteration(images: int, settings: Mapping[str, Any]) -> Pass:
    """A power iteration over `images` at its budget (`max_iter` products: an upper bound, since it
    stops once the eigenvalue settles, after 4 to 26 products in BENCHMARKS.md's runs)."""
    products = FIRST_HVP + (settings["max_iter"] - 1) * HVP
    return Pass(images * products, min(images, ANALYSIS_BATCH))


def _sample(settings: Mapping[str, Any], sizes: Mapping[str, int]) -> int:
    return settings["sample"] or sizes["train"]  # 0: the whole training split


def _grid_part(job: AnalysisJob, part: int, sample: int) -> list[Pass]:
    """Part `part` of a grid: its share of the points, one forward pass over the sample each."""
    points = len(range(part, job.settings["points"] ** 2, job.parts))
    return [Pass(points * sample * FORWARD, min(sample, ANALYSIS_BATCH))]


# Analysis name -> its passes (for a grid, one part's), from its settings and the data's split sizes.
ANALYSIS_PASSES = {
    "activations": lambda job, sizes, part: [Pass(sizes["test"] * FORWARD, ANALYSIS_BATCH)],
    "hessian": lambda job, sizes, part: (
        [power_iteration(_sample(job.settings, sizes), job.settings)] * job.settings["k"]
    ),
    "perturbation": lambda job, sizes, part: [
        power_iteration(_sample(job.settings, sizes), job.settings),
        Pass(job.settings["points"] * job.settings["test_sample"] * FORWARD, ANALYSIS_BATCH),
    ],
    "landscape": lambda job, sizes, part: _grid_part(job, part, job.settings["sample"]),
    "input_landscape": lambda job, sizes, part: _grid_part(job, part, job.settings["sample"]),
}
# Tracked analyses re-train the run: its training plus, after every epoch, these passes.
TRACKED_PASSES = {"hessian_per_epoch": lambda job, sizes: [power_iteration(_sample(job.settings, sizes), job.settings)]}


# --- the jobs of a plan ------------------------------------------------------------------------


@dataclass
class Estimate:
    device: Device
    gpus: int
    config_files: list[str]
    results: Path
    experiments: list[str]
    jobs: list[Job] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def pending(self) -> list[Job]:
        return [job for job in self.jobs if not job.done]

    @property
    def hours(self) -> float:
        return sum(job.seconds for job in self.pending) / 3600

    @property
    def core_hours(self) -> float:
        """CPU core-hours: a GPU job holds its `threads` cores; on a CPU device a job holds the machine."""
        cores = (lambda job: job.threads) if self.device.gpu else (lambda job: self.device.cores)
        return sum(job.seconds * cores(job) for job in self.pending) / 3600

    def critical_path(self) -> tuple[float, list[Job]]:
        """(hours, jobs) of the longest chain of jobs still to run, each waiting for the one before."""
        producer = {path: job for job in self.jobs for path in job.outputs}
        longest: dict[int, tuple[float, list[Job]]] = {}

        def finish(job: Job) -> tuple[float, list[Job]]:
            if id(job) not in longest:
                before = [finish(producer[path]) for path in job.inputs if path in producer]
                seconds, chain = max(before, key=lambda item: item[0], default=(0.0, []))
                own = 0.0 if job.done else job.seconds
                longest[id(job)] = (seconds + own, [*chain, job] if own else chain)
            return longest[id(job)]

        seconds, chain = max((finish(job) for job in self.jobs), key=lambda item: item[0], default=(0.0, []))
        return seconds / 3600, chain

    @property
    def wall_hours(self) -> float:
        return max(self.hours / self.gpus, self.critical_path()[0])

    def rows(self) -> list[dict[str, Any]]:
        """One row per experiment and job kind: jobs planned, finished, to run, and their hours."""
        table: dict[tuple[str, str], dict[str, Any]] = {}
        for job in self.jobs:
            row = table.setdefault(
                (job.experiment, job.kind),
                {"experiment": job.experiment, "kind": job.kind, "jobs": 0, "finished": 0, "to_run": 0, "hours": 0.0},
            )
            row["jobs"] += 1
            row["finished" if job.done else "to_run"] += 1
            row["hours"] += 0.0 if job.done else job.seconds / 3600
            row["light"] = job.light
        order = {name: i for i, name in enumerate(self.experiments)}
        return sorted(table.values(), key=lambda row: (order[row["experiment"]], KINDS.index(row["kind"])))


def estimate(
    config_files: Sequence[str | Path], device_name: str, gpus: int = 1, results: str | None = None
) -> Estimate:
    """What the plan of `config_files` still needs on reference device `device_name`, run on `gpus` of them."""
    chosen = device(device_name)
    if gpus < 1:
        raise UsageError(f"--gpus: {gpus} is not allowed; give the number of devices working at once, >= 1")
    plans, merged = load_plans(config_files, results)
    estimate = Estimate(
        chosen, gpus, [str(path) for path in config_files] or ["config.yaml"], merged.results, list(plans)
    )
    estimate.jobs = _jobs(plans, merged, chosen)
    estimate.notes = _notes(merged, chosen)
    return estimate


def _finished_run(folder: str) -> bool:
    """A training is finished once its summary.json, written last, is there and intact (its own digest;
    the digests of the files it lists are not read here: that would read every checkpoint)."""
    from lth.manifest import verify_run

    try:
        verify_run(folder, files=False)
    except LthError:
        return False
    return True


def _complete(path: str) -> bool:
    """An analysis' file, written whole or not at all: done when it reads back (lth.store.check_complete)."""
    from lth.store import check_complete

    try:
        check_complete(Path(path))
    except LthError:
        return False
    return True


def _exists(*files: str) -> bool:
    return all(Path(path).is_file() for path in files)


def _jobs(plans: Mapping[str, Plan], merged: Plan, device: Device) -> list[Job]:
    owner: dict[str, str] = {}  # run key or analysis output -> the first experiment that plans it
    for name, plan in plans.items():
        for key in (*plan.dense, *plan.chains, *plan.sparse, *plan.analyses):
            owner.setdefault(key, name)
    threads = merged.config["threads"]
    jobs: list[Job] = []

    def run_of(key: str) -> tuple[ModelHparams, DataHparams, TrainHparams, GradinitHparams, int]:
        """(model, data, train, gradinit, start epoch) of run `key`."""
        if key in merged.dense:
            run = merged.dense[key]
            return run.model, run.data, run.train, run.gradinit, 0
        sparse = merged.sparse[key]
        return sparse.model, sparse.dense.data, sparse.train, sparse.gradinit, sparse.start_epoch

    def train_seconds(key: str, epochs: int, extra: Sequence[Pass] = ()) -> float:
        model, data, train, gradinit, _ = run_of(key)
        return device.seconds([*training_passes(data, train, gradinit, epochs), *extra], _image_cost(model, data))

    def heavy(
        kind: str, key: str, outputs: Sequence[str], inputs: Mapping[str, str], seconds: float, done: bool
    ) -> None:
        jobs.append(Job(kind, owner[key], tuple(outputs), tuple(inputs.values()), seconds, done, threads=threads))

    def light(kind: str, experiment: str, outputs: Sequence[str], inputs: Sequence[str], done: bool) -> None:
        jobs.append(Job(kind, experiment, tuple(outputs), tuple(inputs), 0.0, done, light=True))

    from lth.data.sources import SOURCES

    fetched = {run.data.name: owner[key] for key, run in merged.dense.items() if SOURCES[run.data.name].downloads}
    for name, experiment in fetched.items():
        record = f"{merged.results}/data/{name}.json"
        light("data download", experiment, [record], [], _exists(record))

    for key, run in merged.dense.items():
        folder = paths.folder(merged, key)
        if not run.baseline:
            init = paths.init_weights(merged, key)
            light("theta0 (init)", owner[key], [init], [], _exists(init))
        kind = "dense baselines" if run.baseline else "dense training"
        outputs = [paths.final_weights(merged, key), f"{folder}/{artifacts.SUMMARY}"]
        heavy(
            kind,
            key,
            outputs,
            training_inputs(merged, key),
            train_seconds(key, run.train.epochs),
            _finished_run(folder),
        )
    for key, run in merged.sparse.items():
        folder = paths.folder(merged, key)
        kind = "IMP chain training" if key in merged.chain_runs else "re-training"
        outputs = [paths.final_weights(merged, key), f"{folder}/{artifacts.SUMMARY}"]
        seconds = train_seconds(key, run.train.epochs - run.start_epoch)
        heavy(kind, key, outputs, training_inputs(merged, key), seconds, _finished_run(folder))
    for mask in paths.mask_paths(merged):
        chain, level = Path(mask).parent.parent.name, _level(mask)
        done = _exists(mask, str(Path(mask).with_name(artifacts.MASK_SIDECAR)))
        light("masks (prune)", owner[chain], [mask], list(prune_inputs(merged, chain, level).values()), done)
    for point in paths.reinit_points(merged):
        light("reinit weights", owner[Path(point).parent.parent.name], [point], [], _exists(point))

    # Rewind points and snapshots: a by-product of their run's training (epoch<k>.pt), published by
    # their job in a moment, unless the run finished without keeping it: then trained again to epoch k.
    kept = set(paths.rewind_points(merged)) | set(paths.snapshots(merged))
    kept |= {
        paths.weights(merged, job.run, job.epoch)
        for job in merged.analyses.values()
        if job.analysis.suffix and job.epoch < merged.epoch_range(job.run)[1]
    }
    for point in sorted(kept):
        key, epoch = _run_and_epoch(merged, point)
        folder = paths.folder(merged, key)
        retrain = _finished_run(folder) and not _exists(f"{folder}/{artifacts.kept_epoch(epoch)}")
        seconds = train_seconds(key, epoch - run_of(key)[4]) if retrain else 0.0
        inputs = {**training_inputs(merged, key), "finished": f"{folder}/{artifacts.SUMMARY}"}
        kind = "rewind points" if key in merged.dense else "snapshots"
        heavy(kind, key, [point], inputs, seconds, _exists(point))

    for output, job in merged.analyses.items():
        model, data, *_ = run_of(job.run)
        sizes, cost = _sizes(data), _image_cost(model, data)
        kind = f"analysis {job.analysis.name}"
        inputs = analysis_inputs(merged, output)
        if not job.analysis.suffix:  # a tracked re-training: the run's training plus the tracker every epoch
            start, last = merged.epoch_range(job.run)
            epochs = last - start
            each = _passes(TRACKED_PASSES, job, sizes)
            extra = [Pass(p.steps * epochs, p.batch) for p in each]
            heavy(kind, output, [output], inputs, train_seconds(job.run, epochs, extra), _finished_run(output))
        elif job.analysis.grid:
            merged_done = _complete(output)
            for part, path in enumerate(job.part_outputs()):
                seconds = device.seconds(_passes(ANALYSIS_PASSES, job, sizes, part), cost)
                heavy(kind, output, [path], inputs, seconds, merged_done or _complete(path))
            light("analysis grid merge", owner[output], [output], job.part_outputs(), merged_done)
        else:
            seconds = device.seconds(_passes(ANALYSIS_PASSES, job, sizes, 0), cost)
            heavy(kind, output, [output], inputs, seconds, _complete(output))
    for name, plan in plans.items():
        for analysis, table in paths.collected(plan).items():
            reads = [job.output for job in plan.analysis_jobs(analysis)]
            light("analysis collect", name, [table], reads, _exists(table))
    return jobs


def _passes(table: Mapping[str, Any], job: AnalysisJob, *args: Any) -> list[Pass]:
    if job.analysis.name not in table:
        raise LthError(f"analysis {job.analysis.name!r} has no cost in lth/estimate.py; add its passes there")
    return table[job.analysis.name](job, *args)


def _level(mask: str) -> int:
    return int(Path(mask).parent.name.removeprefix("level"))


def _run_and_epoch(plan: Plan, path: str) -> tuple[str, int]:
    """(run key, epoch) of a rewind point (<dense>/rewind/epoch<k>.pt) or a snapshot (<sparse>/snapshots/...)."""
    point = Path(path)
    return point.parent.parent.name, int(point.stem.removeprefix("epoch"))


def _notes(plan: Plan, device: Device) -> list[str]:
    """What the device's figures do not say about these runs."""
    runs = [*plan.dense.values(), *plan.sparse.values()]
    notes = []
    other = [run for run in runs if run.train.precision != device.precision]
    if other:
        notes.append(
            f"{len(other)} of {len(runs)} runs train in {other[0].train.precision} (train.precision); the "
            f"device's figures are {device.precision}"
        )
    if device.gpu and plan.config["device"] == "cpu":
        notes.append("the config trains on `device: cpu`; this is the estimate for the GPU named")
    if not device.gpu and plan.config["device"] not in ("cpu", "auto"):
        notes.append(f"the config trains on `device: {plan.config['device']}`; this is the estimate for the CPU named")
    return notes


# --- the report ---------------------------------------------------------------------------------


def _hours(hours: float) -> str:
    return f"{hours:,.2f}" if hours < 10 else f"{hours:,.1f}" if hours < 100 else f"{hours:,.0f}"


def _duration(hours: float) -> str:
    """Hours in words a person plans by: minutes, hours or days."""
    if hours < 1:
        return f"{hours * 60:.1f} min"
    return f"{hours:.1f} h" if hours < 48 else f"{hours:.1f} h ({hours / 24:.1f} days)"


def path_text(chain: Sequence[Job]) -> str:
    """The critical path's jobs by kind, runs of one kind counted: `dense training -> IMP chain training x15`."""
    parts: list[list[Any]] = []
    for job in chain:
        if parts and parts[-1][0] == job.kind:
            parts[-1][1] += 1
        else:
            parts.append([job.kind, 1])
    return " -> ".join(kind if count == 1 else f"{kind} x{count}" for kind, count in parts) or "nothing to run"


def report(estimate: Estimate) -> str:
    """The readable table, the totals and the assumptions."""
    device = estimate.device
    unit = "GPU-hours" if device.gpu else "hours"
    rows = estimate.rows()
    header = ("experiment", "kind", "jobs", "finished", "to run", unit)
    lines = [
        (
            row["experiment"],
            row["kind"],
            f"{row['jobs']:,}",
            f"{row['finished']:,}",
            f"{row['to_run']:,}",
            "light" if row["light"] else _hours(row["hours"]),
        )
        for row in rows
    ]
    jobs, done = len(estimate.jobs), sum(job.done for job in estimate.jobs)
    lines.append(("total", "", f"{jobs:,}", f"{done:,}", f"{jobs - done:,}", _hours(estimate.hours)))
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]

    def format_line(line: Sequence[str]) -> str:
        cells = [cell.ljust(width) if i < 2 else cell.rjust(width) for i, (cell, width) in enumerate(zip(line, widths))]
        return "  ".join(cells).rstrip()

    hours, chain = estimate.critical_path()
    count = estimate.gpus
    devices = (
        f"{count} GPU{'s' if count > 1 else ''}" if device.gpu else f"{count} such machine{'s' if count > 1 else ''}"
    )
    light = sum(job.light for job in estimate.pending)
    if device.gpu:
        totals = (
            f"GPU-hours: {_hours(estimate.hours)} (one GPU per job); CPU core-hours held beside them: "
            f"{_hours(estimate.core_hours)} (each job's `threads`)"
        )
    else:
        totals = (
            f"CPU-hours: {_hours(estimate.hours)} of the {device.cores}-core machine = "
            f"{_hours(estimate.core_hours)} core-hours; GPU-hours: 0"
        )
    out = [
        f"lth estimate: {', '.join(estimate.config_files)} ({len(estimate.experiments)} experiment"
        f"{'s' if len(estimate.experiments) > 1 else ''}) on {device.name}",
        f"device: {device.assumption()}",
        f"store: {estimate.results / 'runs'}: {done:,} of {jobs:,} jobs finished there, not counted",
        "",
        format_line(header),
        *(format_line(line) for line in lines),
        "",
        totals,
        f"wall time on {devices}: {_duration(estimate.wall_hours)} = max(work / {count}: "
        f"{_duration(estimate.hours / count)}, critical path: {_duration(hours)})",
        f"critical path: {path_text(chain)}",
        "",
        "assumes: cost per image by forward FLOPs relative to ResNet-18 w64 on 32x32 images "
        "(lth/resources.py), never below the device's floor; sparse runs cost as dense ones (masks "
        f"are dense tensors); a forward pass is {FORWARD:.2g} of a training step, every epoch evaluates "
        f"the validation and test splits; a GradInit iteration costs {GRADINIT_ITERATION} training steps "
        f"and a Hessian-vector product {HVP} ({FIRST_HVP} the first: BENCHMARKS.md); power iterations "
        "run to their budget max_iter (an upper bound); job start-up (seconds each) is not counted",
        f"light: {light:,} of the jobs to run (data, init, prune, reinit, grid merges, collects) take seconds "
        "each and are counted, not timed; the tables and figures of each experiment are neither",
    ]
    out += [f"note: {note}" for note in estimate.notes]
    return "\n".join(out)


def as_records(estimate: Estimate) -> dict[str, Any]:
    """The estimate as data (`--format json`): the rows, the totals and the assumptions."""
    hours, chain = estimate.critical_path()
    return {
        "config_files": estimate.config_files,
        "device": estimate.device.name,
        "assumption": estimate.device.assumption(),
        "gpus": estimate.gpus,
        "rows": [{**row, "hours": round(row["hours"], 4)} for row in estimate.rows()],
        "jobs": len(estimate.jobs),
        "finished": sum(job.done for job in estimate.jobs),
        "hours": estimate.hours,
        "gpu_hours": estimate.hours if estimate.device.gpu else 0.0,
        "cpu_core_hours": estimate.core_hours,
        "critical_path_hours": hours,
        "critical_path": path_text(chain),
        "wall_hours": estimate.wall_hours,
        "notes": estimate.notes,
    }
