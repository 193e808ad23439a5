# Config validation and the run plan shared by every rule.

import dataclasses
import functools
import json
import os
import re
import shlex
import subprocess
import sys

from snakemake.utils import validate
from snakemake_interface_executor_plugins.settings import DeploymentMethod

from lth.analysis.registry import ANALYSES, analysis_figures
from lth.data import split_sizes
from lth.data.sources import SOURCES
from lth.devices import check_local_gpus
from lth.errors import LthError
from lth.experiments import experiment_configs
from lth.mask_registry import MASK_SOURCES, source_of
from lth.report.registry import ANALYSIS_FIGURES as ANALYSIS_FIGURE_NAMES
from lth.report.registry import GRID_FIGURES, SUMMARY_FIGURES, figure_status, grid_status
from lth.report.recipe import recipe_text
from lth.plan.arguments import (
    ANALYSIS_GROUP,
    CHAIN_GROUP,
    analysis_inputs,
    chain_group,
    analysis_rows,
    flags,
    prune_inputs,
    prune_options,
    prune_rounds,
    row_args,
    sparse_inputs,
    training_inputs,
)
from lth.plan.config import resolve_data_root
from lth.plan.graph import Plan
from lth.plan.identity import short_hash
from lth.plan.paths import collected, kept_epochs, mask_paths, reinit_points, rewind_points, run_folders
from lth.resources import Work, memory_mb, runtime_minutes
from lth import artifacts, store

# Each experiment of the config (`experiments:`, lth/experiments.py; one when there is none), validated
# with the schema's defaults filled in, and planned (EXPERIMENT_PLANS); ALL_RUNS holds every run of them all
# for the rules.
CONFIGS = experiment_configs(config)
for experiment_config in CONFIGS.values():
    validate(experiment_config, workflow.source_path("../schemas/config.schema.yaml"))
    resolve_data_root(experiment_config, CONFIG_FILES)
EXPERIMENT_PLANS = {name: Plan.from_config(experiment_config) for name, experiment_config in CONFIGS.items()}
ALL_RUNS = Plan.merge(list(EXPERIMENT_PLANS.values()))
SETTINGS = next(iter(CONFIGS.values()))  # the workflow-wide keys (lth.experiments.WORKFLOW_KEYS) are the same in all
RESULTS = str(ALL_RUNS.results)
RUNS = f"{RESULTS}/runs"
# The jobs that write into the run store declare as outputs links under results/published/, made by
# `lth link` once the lth command has finished the artifact under its lock (lth/store.py). Snakemake
# deletes a job's outputs before it runs it, after it fails and on --delete-all-output: only links,
# never a run another experiment or another Snakemake process is using. Their logs are in results/logs/.
PUBLISHED = f"{RESULTS}/{store.PUBLISHED}"
LOGS = f"{RESULTS}/logs"


def published(paths):
    """The link under results/published that stands for each store path (str, list or dict of them);
    a path outside the results folder (a user's mask file) is its own."""
    if isinstance(paths, dict):
        return {key: published(value) for key, value in paths.items()}
    if isinstance(paths, (list, tuple)):
        return [published(path) for path in paths]
    return str(store.published_path(RESULTS, paths)) if Path(paths).is_relative_to(RESULTS) else paths


def stored(path):
    """The store path a link under results/published stands for (what lth commands read and write)."""
    return str(Path(RESULTS) / Path(path).relative_to(PUBLISHED))


def stored_inputs(input, names):
    """`--name PATH` flags, shell-quoted, for those of the inputs `names` that a job has, as store paths."""
    return shlex.join(word for name in names if name in input.keys() for word in (f"--{name}", stored(input[name])))


# Snakemake deletes a job's log before each attempt, so every attempt's lines are also appended to
# <log name>.attempts.log beside it, after a header: the log of a killed or failed attempt is kept.
ATTEMPT_HEADER = (
    'echo "==== attempt started $(date -u +%FT%TZ) on $(hostname)${{SLURM_JOB_ID:+, SLURM job $SLURM_JOB_ID}}"'
)


def store_job(command):
    """The shell command of a job that writes into the store (lth/store.py): the lth command keeps an
    intact result it finds there (--reuse) and redoes only a damaged one (--force); then the job
    publishes what it left there as its outputs. Its output goes to its log and to the attempts log."""
    return (
        f"log={{log:q}}; {{{{ {ATTEMPT_HEADER}; {command} --reuse --force && {{params.lth}} link {{params.publish}}; }}}}"
        ' 2>&1 | tee -a "${{log%.log}}.attempts.log" > "$log"'
    )


def publish_args(wildcards, output):
    """`lth link`'s arguments, shell-quoted: the results folder and the store files of `output`."""
    return shlex.join(["--results", RESULTS, *(stored(path) for path in output)])


def figure_settings(experiment):
    """A file named by the hash of the experiment's `figures` section: an input of its figures and
    tickets.csv, so a changed setting redraws them (rerun trigger `input`) and nothing else."""
    return f"{RESULTS}/{experiment}/figure_settings-{short_hash(CONFIGS[experiment]['figures'])}.json"


def primary_method(experiment):
    """How the experiment's first mask source draws its masks (imp, omp, random, ...): the paper
    figures show that source's tickets."""
    spec = EXPERIMENT_PLANS[experiment].masks[0]
    return CONFIGS[experiment]["prune"]["method"] if spec.source == "magnitude" else spec.source


def masks_text(experiment):
    """The experiment's mask sources in words, for captions: `masks IMP at rate 0.2, random, snip`."""
    c = CONFIGS[experiment]
    names = [
        f"{c['prune']['method'].upper()} at rate {c['prune']['rate']}" if spec.source == "magnitude" else spec.label
        for spec in EXPERIMENT_PLANS[experiment].masks
    ]
    return f"mask{'s' if len(names) > 1 else ''} {', '.join(names)}"


# Paper figures (lth/report/registry.py) per experiment: the ones its variants allow; the others are named,
# with the reason, when the workflow is planned (`snakemake -n` shows it).
PAPER_FIGURES = {name: [] for name in CONFIGS}
SKIPPED_FIGURES = []
for name, experiment_config in CONFIGS.items():
    for figure in SUMMARY_FIGURES:
        sources = [spec.label for spec in EXPERIMENT_PLANS[name].masks]
        if SUMMARY_FIGURES[figure].per_source and len(sources) < 2:
            continue  # a figure across mask sources is not missing from an experiment with one
        reason = figure_status(
            figure,
            experiment_config["variants"],
            experiment_config["dense_variants"],
            primary_method(name),
            mask_sources=sources,
        )
        if reason:
            SKIPPED_FIGURES.append(f"{name}/{reason}")
        else:
            PAPER_FIGURES[name].append(figure)
# results/summary.csv and the grids belong to configs with `experiments:` (one experiment's
# summary.csv is its own table, and two single-experiment configs would overwrite each other's).
GRID = "experiments" in config
GRID_REASON = grid_status([(name, c["model"]["name"], c["data"]["name"], c["variants"]) for name, c in CONFIGS.items()])
GRIDS = list(GRID_FIGURES) if GRID and not GRID_REASON else []
SKIPPED_FIGURES += [f"{figure}: {GRID_REASON}" for figure in GRID_FIGURES if GRID and GRID_REASON]
if SKIPPED_FIGURES and workflow.is_main_process:
    print("lth: figures not produced:", *SKIPPED_FIGURES, sep="\n  ", file=sys.stderr)

TABLES = [
    *(f"{RESULTS}/{name}/{table}.csv" for name in CONFIGS for table in ("summary", "tickets")),
    *([f"{RESULTS}/summary.csv"] if GRID else []),
]
FIGURES = [
    f"{RESULTS}/{name}/figures/{stem}.{ext}"
    for name in CONFIGS
    for stem in ("accuracy_vs_sparsity", *PAPER_FIGURES[name])
    for ext in ("png", "pdf")
]
FIGURES += [f"{RESULTS}/figures/{stem}.{ext}" for stem in GRIDS for ext in ("png", "pdf")]
# Analysis name -> its collected CSV per experiment, and the table name (the CSV's stem) -> the analysis.
ANALYSIS_TABLES = {name: collected(plan) for name, plan in EXPERIMENT_PLANS.items()}
COLLECTED = {Path(path).stem: analysis for tables in ANALYSIS_TABLES.values() for analysis, path in tables.items()}
# Paper figures of the analyses per experiment: file stem -> (analysis, `lth figure` name, epoch filter).
ANALYSIS_FIGURES = {
    name: analysis_figures(experiment_config["analysis"]) for name, experiment_config in CONFIGS.items()
}
ANALYSIS_FIGURE_FILES = [
    f"{RESULTS}/{name}/figures/{stem}.{ext}"
    for name, figures in ANALYSIS_FIGURES.items()
    for stem in figures
    for ext in ("png", "pdf", *(("csv", "html") if stem.startswith("table") else ()))
]
THREADS = SETTINGS["threads"]
# Where cluster jobs go (profiles/slurm), from the environment, so that no file of the repository names
# a user's cluster: SLURM executor resources, set on every job that can be submitted. A profile's
# `set-resources` overrides them rule by rule; they override its `default-resources`.
CLUSTER_VARIABLES = {
    "slurm_account": "LTH_SLURM_ACCOUNT",
    "slurm_partition": "LTH_SLURM_PARTITION",
    "qos": "LTH_SLURM_QOS",
    "constraint": "LTH_SLURM_CONSTRAINT",
    "gpu_model": "LTH_SLURM_GPU_MODEL",
}
CLUSTER_RESOURCES = {name: os.environ[var] for name, var in CLUSTER_VARIABLES.items() if os.environ.get(var)}
CPU_CLUSTER_RESOURCES = {name: value for name, value in CLUSTER_RESOURCES.items() if name != "gpu_model"}
LIGHT_RESOURCES = {**SETTINGS["resources"]["light"], **CPU_CLUSTER_RESOURCES}  # a light job asks for no GPU
# Paths are data, never shell: every rule's shell command quotes each value it interpolates
# (`{x:q}`, shlex.quote), and a param holding several flags (this one, lth.plan.flags, ...) is
# built already quoted with shlex.join and goes in as it is. A plain value comes out unchanged.
# Training shell commands pass `--threads {threads}`: what Snakemake scheduled (it scales `threads`
# down to --cores), not the config value.
RUN_OPTIONS = shlex.join(
    ["--device", str(SETTINGS["device"]), "--jobs-per-gpu", str(SETTINGS["resources"]["jobs_per_gpu"])]
)
# `--sdm conda`: every rule's environment; its post-deploy script installs this checkout into it.
CONDA_ENV = workflow.source_path("../envs/lth.yaml")
# How rules call lth: through the interpreter running Snakemake, so a job finds it without an
# activated environment on PATH (an `lth` script there may be another install, or none); under
# `--sdm conda`, the environment's own python.
CONDA = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
LTH = "python -m lth" if CONDA else f"{shlex.quote(sys.executable)} -m lth"
os.environ.update(LTH_SOURCE=str(Path(workflow.basedir)))  # read by that script


def alternatives(names):
    """A wildcard constraint matching exactly these names (never an empty pattern)."""
    return "|".join(re.escape(name) for name in names) or "(?!)"


wildcard_constraints:
    experiment=alternatives(CONFIGS),
    dataset=alternatives(SOURCES),
    dense=r"dense-[0-9a-f]+",
    run=r"(dense|sparse)-[0-9a-f]+",
    hash=r"[0-9a-f]+",
    chain=rf"(imp|omp|{alternatives(MASK_SOURCES)})-[0-9a-f]+",
    sparse=r"sparse-[0-9a-f]+",
    level=r"[1-9][0-9]*",
    reseed=r"[0-9]+",
    epoch=r"[1-9][0-9]*",


def datasets_to_fetch():
    """Dataset name -> the data settings its `data` job fetches with, for every source that downloads
    (lth.data.sources: `downloads`); the others are read where they are."""
    found = {}
    for run in ALL_RUNS.dense.values():
        if not SOURCES[run.data.name].downloads:
            continue
        other = found.setdefault(run.data.name, run.data)
        if other.root != run.data.root:
            raise LthError(
                f"data.root: experiments read {run.data.name} from two folders ({other.root} and "
                f"{run.data.root}); one dataset is fetched once, into one folder"
            )
    return found


DATASETS = datasets_to_fetch()


def data_input(run):
    """The `data` job's record of the dataset `run` trains on ([] for a dataset read in place).
    ancient(): fetching again, or into a new folder, is not a reason to retrain anything."""
    return [ancient(published(f"{RESULTS}/data/{run.data.name}.json"))] if run.data.name in DATASETS else []


def job_data(data):
    """A job's data settings: never downloads (the `data` job did, once, before it)."""
    return dataclasses.replace(data, download=False)


# ---- where the jobs run ----
def check_execution():
    """What is wrong with where the jobs would run, said before any job runs (a dry run skips it)."""
    if workflow.local_exec:
        asked = workflow.global_resources.get("gpu")
        check_local_gpus(SETTINGS["device"], asked.value if asked else None, SETTINGS["resources"]["jobs_per_gpu"])
    elif workflow.executor_plugin.name == "slurm":
        if "slurm_partition" not in (workflow.resource_settings.default_resources or {}):
            # sinfo marks the default partition with "*"; without one sbatch refuses every job.
            partitions = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True).stdout.split()
            if not any(name.endswith("*") for name in partitions):
                raise LthError(
                    "slurm_partition: this cluster has no default partition; set default-resources: "
                    f"slurm_partition=<one of {', '.join(partitions) or 'sinfo -s'}> in the profile"
                )


# Locks held until Snakemake exits: the OS releases them with the process (lth/store.py).
HELD_LOCKS = []


def start_using_store():
    """Before any job: mark the store in use (lth gc waits), wait for any other workflow running one
    of these experiments (names sorted: two configs never wait on each other), and record which run
    folders each experiment references, so that `lth gc` keeps them."""
    HELD_LOCKS.append(store.use(RESULTS))
    HELD_LOCKS.extend(store.lock_experiment(RESULTS, name) for name in sorted(CONFIGS))
    for name, plan in EXPERIMENT_PLANS.items():
        store.record_references(RESULTS, name, [*plan.dense, *plan.chains, *plan.sparse], CONFIG_FILES)


# What Snakemake logs when SIGTERM stops it (its scheduler), and before each failed job.
GRACEFUL_STOP = "Will exit after finishing currently running jobs"
FAILED_JOB = "Error in rule "


def explain_stop(logfiles):
    """After SIGTERM, Snakemake lets the running jobs finish and then reports "At least one job did
    not complete successfully" although none failed: say what happened, above that message.
    `logfiles`: what Snakemake passes to onerror, a path or a list of them."""
    paths = [logfiles] if isinstance(logfiles, (str, os.PathLike)) else list(logfiles or [])
    try:
        text = "".join(Path(path).read_text(errors="replace") for path in paths)
    except OSError:
        return
    if GRACEFUL_STOP in text and FAILED_JOB not in text:
        print(
            "lth: the workflow was stopped (SIGTERM) after its running jobs finished; no job failed. "
            "Rerun the same command to go on: finished jobs are kept, the others run.",
            file=sys.stderr,
        )


onstart:
    check_execution()
    start_using_store()


onerror:
    explain_stop(log)


# ---- resources of the jobs that train (lth/resources.py) ----
TRAIN_SETTINGS = SETTINGS["resources"]["train"]
GPUS = 0 if SETTINGS["device"] == "cpu" else 1  # a CPU experiment never queues for a GPU


@functools.cache
def train_images(data):
    return split_sizes(data)["train"]


def job_work(key, epochs=None):
    """What a job on run `key` does: the run's model on its data for `epochs` (default: the run's own)."""
    run = ALL_RUNS.dense.get(key) or ALL_RUNS.sparse[key]
    data = run.data if key in ALL_RUNS.dense else run.dense.data
    if epochs is None:
        epochs = run.train.epochs - (0 if key in ALL_RUNS.dense else run.start_epoch)
    return Work(run.model.name, run.model.width, SOURCES[data.name].image_size ** 2, train_images(data), epochs)


def training_resources(key, epochs=None, scale=1):
    """Snakemake resources of a job that trains (or analyses) run `key(w)` for `epochs(w)` epochs;
    `scale`: its work per epoch relative to training. Both grow with the attempt."""

    def work(w):
        return job_work(key(w), epochs(w) if epochs else None)

    resources = {
        "mem_mb": lambda w, attempt: memory_mb(work(w), TRAIN_SETTINGS, attempt),
        "runtime": lambda w, attempt: runtime_minutes(work(w), TRAIN_SETTINGS, attempt) * scale,
        "gpu": GPUS,
    }
    if GPUS and TRAIN_SETTINGS.get("gpu_model"):
        resources["gpu_model"] = TRAIN_SETTINGS["gpu_model"]
    resources.update(CLUSTER_RESOURCES if GPUS else CPU_CLUSTER_RESOURCES)
    return resources


def run_outputs(folder):
    """The files a finished `lth train` leaves; summary.json is written last."""
    names = [artifacts.FINAL, artifacts.METRICS, artifacts.HPARAMS, artifacts.SUMMARY]
    return [f"{folder}/{name}" for name in names]


def training_flags(key):
    """The settings of run `key` as `lth` flags: its training, its snapshots and its tracked re-training
    share them. The files it reads come from lth.plan.arguments.training_inputs."""
    if key in ALL_RUNS.dense:
        run = ALL_RUNS.dense[key]
        return flags(run.model, job_data(run.data), run.train, *((run.gradinit,) if run.gradinit.enabled else ()))
    run = ALL_RUNS.sparse[key]
    hparams = flags(run.model, job_data(run.dense.data), run.train, run.gradinit)
    if run.sparse_training:  # a sparse training's own run: the algorithm and its settings, for no mask
        hparams += f" --sparse-training {run.sparse_training.section} {flags(run.sparse_training)}"
    return f"--start-epoch {run.start_epoch} {hparams}"


def optional_inputs(input, names=("mask", "teacher")):
    """`--mask M --teacher T` (store paths, shell-quoted) for those of the inputs `names` that a job has
    (a dense run has neither; prune's are mask and like, an analysis' its mask)."""
    return stored_inputs(input, names)


def dense_outputs():
    """theta0 and the dense runs, the dense-with-tweak baselines (which start from it) included."""
    return published(
        [
            path
            for key, run in ALL_RUNS.dense.items()
            for path in [*([] if run.baseline else [f"{RUNS}/{key}/{artifacts.INIT}"]), *run_outputs(f"{RUNS}/{key}")]
        ]
    )


def mask_options(w):
    """A prune job's flags: the source's own (lth.plan.arguments.prune_options) and, for a source that
    reads the data or its image size, the dense run's data settings."""
    chain = ALL_RUNS.chains[w.chain]
    data = flags(job_data(chain.dense.data)) if source_of(chain.method).needs_data else ""
    return f"{prune_options(ALL_RUNS, w.chain, int(w.level))} {data}"


def mask_outputs():
    return published(
        [path for mask in mask_paths(ALL_RUNS) for path in (mask, str(Path(mask).with_name(artifacts.MASK_SIDECAR)))]
    )


def sparse_outputs():
    return published([path for key in ALL_RUNS.sparse for path in run_outputs(f"{RUNS}/{key}")])


# ---- analyses (workflow/rules/analysis.smk, plots.smk) ----
# The analyses that are one file per job (lth/analysis/registry.py): a grid's parts are merged by one job.
FILE_ANALYSES = [name for name, analysis in ANALYSES.items() if analysis.command and not analysis.grid]
GRID_ANALYSES = [name for name, analysis in ANALYSES.items() if analysis.command and analysis.grid]
ANALYSIS_SUFFIXES = sorted({analysis.suffix.lstrip(".") for analysis in ANALYSES.values() if analysis.suffix})
# The analyses that re-train a run with `lth train --track <tracker>` (one rule each).
TRACKED_ANALYSES = [analysis for analysis in ANALYSES.values() if analysis.tracker]


def analysis_output(w, suffix):
    """The store path of the analysis job of `w` (lth/plan/analyses.py names it)."""
    return f"{RUNS}/{w.run}/{artifacts.ANALYSIS}/{w.analysis}-{w.hash}{suffix}"


def analysis_job(w, suffix):
    return ALL_RUNS.analyses[analysis_output(w, suffix)]


def analysis_settings(w, suffix):
    """The job's flags plus the data it reads: the run's seed fixes the train/validation split."""
    job = analysis_job(w, suffix)
    run = ALL_RUNS.dense.get(job.run) or ALL_RUNS.sparse[job.run].dense
    return f"{job.flags()} --seed {run.seed} {flags(job_data(run.data))}"


def analysis_figure(w):
    """`lth figure` name and epoch filter of the paper figure `w.figure` of `w.experiment`."""
    _, figure, epoch = ANALYSIS_FIGURES[w.experiment][w.figure]
    return shlex.join([figure, "--epoch", str(epoch)] if epoch else [figure])


def analysis_figure_input(w):
    """The collected CSV that analysis figure `w.figure` of `w.experiment` is drawn from."""
    return ANALYSIS_TABLES[w.experiment][ANALYSIS_FIGURES[w.experiment][w.figure][0]]


def figure_caption(w, figure):
    """What the paper's version of `figure` shows and this experiment's settings and training recipe
    (report captions)."""
    spec = SUMMARY_FIGURES.get(figure) or GRID_FIGURES.get(figure)
    if spec:
        what = spec.description
    elif figure in ANALYSIS_FIGURE_NAMES:
        what = f"{ANALYSIS_FIGURE_NAMES[figure].description}."
    else:
        what = "Every re-training variant against sparsity."
    if "experiment" not in w.keys():
        recipes = {name: recipe_text(c) for name, c in CONFIGS.items()}
        if len(set(recipes.values())) == 1:
            return f"{what} Experiments: {', '.join(CONFIGS)}. {next(iter(recipes.values()))}"
        return f"{what} Experiments: {' '.join(f'{name}: {recipe}' for name, recipe in recipes.items())}"
    c = CONFIGS[w.experiment]
    baselines = f"; dense baselines {', '.join(c['dense_variants'])}" if c["dense_variants"] else ""
    return (
        f"{what} This run: {c['model']['name']} (width {c['model']['width']}) on {c['data']['name']}, "
        f"{c['train']['epochs']} epochs, {masks_text(w.experiment)}, "
        f"seeds {', '.join(map(str, c['seeds']))}; variants {', '.join(c['variants'])}{baselines}. "
        f"{recipe_text(c)}"
    )
