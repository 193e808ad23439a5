# lth: draw lottery tickets (dense training + IMP/OMP) and spend them (re-training variants).
# Usage: snakemake --cores all [--configfile configs/quickstart.yaml]
# Run folders are content-addressed (see lth/plan.py and README.md, "Results layout").

from snakemake.utils import min_version

min_version("8.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/dense.smk"
include: "workflow/rules/imp.smk"
include: "workflow/rules/retrain.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/plots.smk"


rule all:
    input:
        FIGURES,
        # Every run's artifacts too: snakemake reruns a job for a missing output only when a target
        # asks for it, so a deleted final.pt is retrained even though summary.csv is up to date.
        [path for folder in PLAN.run_folders() for path in run_outputs(folder)],
    default_target: True
