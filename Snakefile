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
    default_target: True
