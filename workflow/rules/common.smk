# Config validation and the run plan shared by every rule.

import os

from snakemake.utils import validate

from lth.analysis.jobs import analysis_figures
from lth.plan import Plan, flags, resolve_data_root


validate(config, workflow.source_path("../schemas/config.schema.yaml"))
resolve_data_root(config, CONFIG_FILES)

PLAN = Plan.from_config(config)
RUNS = str(PLAN.results / "runs")
EXPERIMENT = str(PLAN.experiment_dir())
TABLES = [f"{EXPERIMENT}/summary.csv"]
FIGURES = [f"{EXPERIMENT}/figures/accuracy_vs_sparsity.{ext}" for ext in ("png", "pdf")]
# Analysis name -> its collected CSV, and the table name (the CSV's stem) -> the analysis name.
ANALYSIS_TABLES = PLAN.collected()
COLLECTED = {Path(path).stem: name for name, path in ANALYSIS_TABLES.items()}
# Paper figures of the analyses: file stem -> (analysis, `lth figure` name, epoch filter).
ANALYSIS_FIGURES = analysis_figures(config["analysis"])
ANALYSIS_FIGURE_FILES = [f"{EXPERIMENT}/figures/{stem}.{ext}" for stem in ANALYSIS_FIGURES
                         for ext in ("png", "pdf", *(("csv",) if stem.startswith("table") else ()))]
TRAIN_RESOURCES = config["resources"]["train"]
LIGHT_RESOURCES = config["resources"]["light"]
# Training shell commands pass `--threads {threads}`: what Snakemake scheduled (it scales `threads`
# down to --cores), not the config value.
RUN_OPTIONS = f"--device {config['device']}"
# `--sdm conda`: every rule's environment; its post-deploy script installs this checkout into it.
CONDA_ENV = workflow.source_path("../envs/lth.yaml")
os.environ.update(LTH_SOURCE=str(Path(workflow.basedir)))  # read by that script


wildcard_constraints:
    dense=r"dense-[0-9a-f]+",
    run=r"(dense|sparse)-[0-9a-f]+",
    hash=r"[0-9a-f]+",
    chain=r"(imp|omp)-[0-9a-f]+",
    sparse=r"sparse-[0-9a-f]+",
    level=r"[1-9][0-9]*",
    epoch=r"[1-9][0-9]*",


def run_outputs(folder):
    """The files a finished `lth train` leaves; summary.json is written last."""
    names = ["final.pt", "metrics.csv", "hparams.yaml", "summary.json"]
    return [f"{folder}/{name}" for name in names]


def training_flags(key):
    """The settings of run `key` as `lth` flags: its training, its snapshots and its tracked re-training
    share them. The files it reads come from PLAN.training_inputs."""
    if key in PLAN.dense:
        run = PLAN.dense[key]
        return flags(run.model, run.data, run.train)
    run = PLAN.sparse[key]
    return f"--start-epoch {run.start_epoch} {flags(run.model, run.dense.data, run.train, run.gradinit)}"


def optional_inputs(input):
    """`--mask M --teacher T` for the training inputs a run has (dense runs have neither)."""
    return " ".join(f"--{name} {input[name]}" for name in ("mask", "teacher") if name in input.keys())


def dense_outputs():
    return [path for key in PLAN.dense for path in [f"{RUNS}/{key}/init.pt", *run_outputs(f"{RUNS}/{key}")]]


def mask_outputs():
    return [f"{RUNS}/{key}/level{level}/{name}" for key in PLAN.chains for level in range(1, PLAN.levels + 1)
            for name in ("mask.pt", "mask.json")]


def sparse_outputs():
    return [path for key in PLAN.sparse for path in run_outputs(f"{RUNS}/{key}")]


# ---- analyses (workflow/rules/analysis.smk, plots.smk) ----
# `lth analyze` subcommand of each analysis that is one file per job.
ANALYZE_COMMANDS = {"activations": "activations", "hessian": "hessian", "perturbation": "perturb",
                    "landscape": "landscape", "input_landscape": "input-landscape"}


def analysis_job(w, suffix):
    return PLAN.analyses[f"{RUNS}/{w.run}/analysis/{w.analysis}-{w.hash}{suffix}"]


def analysis_settings(w, suffix):
    """The job's flags plus the data it reads: the run's seed fixes the train/validation split."""
    job = analysis_job(w, suffix)
    run = PLAN.dense.get(job.run) or PLAN.sparse[job.run].dense
    return f"{job.flags()} --seed {run.seed} {flags(run.data)}"


def analysis_figure(w):
    """`lth figure` name and epoch filter of the paper figure `w.figure`."""
    _, figure, epoch = ANALYSIS_FIGURES[w.figure]
    return f"{figure} --epoch {epoch}" if epoch else figure
