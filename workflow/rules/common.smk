# Config validation and the run plan shared by every rule.

from snakemake.utils import validate

from lth.plan import Plan, flags


validate(config, workflow.source_path("../schemas/config.schema.yaml"))

PLAN = Plan.from_config(config)
RUNS = str(PLAN.results / "runs")
EXPERIMENT = str(PLAN.experiment_dir())
FIGURES = [f"{EXPERIMENT}/figures/accuracy_vs_sparsity.{ext}" for ext in ("png", "pdf")]
TRAIN_RESOURCES = config["resources"]["train"]
LIGHT_RESOURCES = config["resources"]["light"]
RUN_OPTIONS = f"--threads {config['threads']} --device {config['device']}"


wildcard_constraints:
    dense=r"dense-[0-9a-f]+",
    chain=r"(imp|omp)-[0-9a-f]+",
    sparse=r"sparse-[0-9a-f]+",
    level=r"[1-9][0-9]*",


def run_outputs(folder, extra=()):
    """The files a finished `lth train` leaves; summary.json is written last."""
    names = ["final.pt", "metrics.csv", "hparams.yaml", *extra, "summary.json"]
    return [f"{folder}/{name}" for name in names]
