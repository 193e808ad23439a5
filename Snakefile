# lth: draw lottery tickets (dense training + IMP/OMP) and spend them (re-training variants).
# Usage: snakemake [TARGET] --cores all [--configfile configs/quickstart.yaml]
# The target comes first (`snakemake report --configfile configs/quickstart.yaml`): --configfile takes
# every word after it as one more config file (or end its list with --: `--configfile X -- report`).
# Targets: all (default), dense, masks, retrain, tables, analysis, figures, report (workflow/rules/targets.smk).
# Run folders are content-addressed (see lth/plan/ and README.md, "Results layout").

from pathlib import Path

from snakemake.utils import min_version

from lth.report.landing import KEY as LANDING_KEY
from lth.report.landing import landing_context
from lth.yamlio import read_yaml

# 9.0 (pyproject.toml says the same): up to 8.5.5 Snakemake does not install beside the SLURM plugin 2.x
# (8.0.1 cannot even plan: `runtime ... <TBD>`), and 8.25.2 to 8.30.0 run `conda info` for every rule
# with `conda:`, without --sdm conda too, so every job fails where conda is not installed.
min_version("9.0")


# A config is one experiment, or several (`experiments:`, lth/experiments.py), each completed by
# the schema's defaults. config.yaml (the paper's experiment) is read only when no --configfile is
# given: Snakemake's `configfile:` directive would deep-merge it under every other config.
CONFIG_FILES = [Path(path) for path in workflow.overwrite_configfiles] or [Path(workflow.basedir) / "config.yaml"]
if not workflow.overwrite_configfiles:
    workflow.configfile(CONFIG_FILES[0])
# Snakemake's loader lets the last of two equal keys win without a word: read each file again with
# lth's, which stops the run naming the file, the key and both lines.
for path in CONFIG_FILES:
    read_yaml(path)


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/dense.smk"
include: "workflow/rules/rewind.smk"
include: "workflow/rules/imp.smk"
include: "workflow/rules/retrain.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/plots.smk"
include: "workflow/rules/targets.smk"


# `snakemake --report`'s landing page: Snakemake renders its template with the config alone, so the
# config carries what the page says (lth/report/landing.py): the config files, the code, and each
# experiment's settings after the schema's defaults (computed before this key is added).
report: "workflow/report/workflow.rst"


config[LANDING_KEY] = landing_context(CONFIGS, CONFIG_FILES)


# Light jobs run where Snakemake runs, never as cluster jobs (profiles/slurm): they take seconds, and
# the data job must reach the internet. `prune` is not one: a group with a local job runs wholly
# where Snakemake runs, and an IMP chain's prunes share its group with its trainings (rule prune).
localrules:
    data,
    init,
    reinit,
    aggregate,
    tickets,
    summaries,
    figure_settings,
    merge_grid,
    collect_analysis,
    plot_accuracy_vs_sparsity,
    plot_paper_figure,
    plot_grid,
    plot_analysis,
    tabulate_analysis,
    all,
    dense,
    masks,
    retrain,
    tables,
    analysis,
    figures,
    report,


# In the Snakefile itself: Snakemake ignores `default_target` in an included file.
rule all:
    default_target: True
    input:
        TABLES,
        REPORT_PAGES,
        FIGURES,
        [path for tables in ANALYSIS_TABLES.values() for path in tables.values()],
        ANALYSIS_FIGURE_FILES,
        # Every run's artifacts too: snakemake reruns a job for a missing output only when a target
        # asks for it, so a deleted final.pt is retrained even though summary.csv is up to date.
        dense_outputs(),
        published(rewind_points(ALL_RUNS)),
        published(reinit_points(ALL_RUNS)),
        mask_outputs(),
        sparse_outputs(),
