# Config validation and the run plan shared by every rule.

import os

from snakemake.utils import validate

from lth.plan import Plan, flags, resolve_data_root


validate(config, workflow.source_path("../schemas/config.schema.yaml"))
resolve_data_root(config, CONFIG_FILES)

PLAN = Plan.from_config(config)
RUNS = str(PLAN.results / "runs")
EXPERIMENT = str(PLAN.experiment_dir())
TABLES = [f"{EXPERIMENT}/summary.csv"]
FIGURES = [f"{EXPERIMENT}/figures/accuracy_vs_sparsity.{ext}" for ext in ("png", "pdf")]
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
    chain=r"(imp|omp)-[0-9a-f]+",
    sparse=r"sparse-[0-9a-f]+",
    level=r"[1-9][0-9]*",
    epoch=r"[1-9][0-9]*",


def run_outputs(folder):
    """The files a finished `lth train` leaves; summary.json is written last."""
    names = ["final.pt", "metrics.csv", "hparams.yaml", "summary.json"]
    return [f"{folder}/{name}" for name in names]


def dense_training_flags(key):
    """The settings of dense run `key` as `lth` flags: its training and its rewind points share them."""
    run = PLAN.dense[key]
    return flags(run.model, run.data, run.train)


def dense_outputs():
    return [path for key in PLAN.dense for path in [f"{RUNS}/{key}/init.pt", *run_outputs(f"{RUNS}/{key}")]]


def mask_outputs():
    return [f"{RUNS}/{key}/level{level}/{name}" for key in PLAN.chains for level in range(1, PLAN.levels + 1)
            for name in ("mask.pt", "mask.json")]


def sparse_outputs():
    return [path for key in PLAN.sparse for path in run_outputs(f"{RUNS}/{key}")]
