# Targets that ask for one stage by name: `snakemake <target>` builds it and everything it needs.
# (`--until <rule>` cannot: the IMP chain alternates prune and train_sparse jobs.)


rule dense:
    input:
        dense_outputs(),
        published(rewind_points(ALL_RUNS)),
        published(reinit_points(ALL_RUNS)),


rule masks:
    input:
        mask_outputs(),


rule retrain:
    input:
        sparse_outputs(),


rule tables:
    input:
        TABLES,


# The analyses the config's `analysis` section asks for, collected per experiment.
rule analysis:
    input:
        [path for tables in ANALYSIS_TABLES.values() for path in tables.values()],


rule figures:
    input:
        FIGURES,
        ANALYSIS_FIGURE_FILES,


# Everything `snakemake --report` shows; build it first, then write the report.
rule report:
    input:
        TABLES,
        REPORT_PAGES,
        FIGURES,
        [path for tables in ANALYSIS_TABLES.values() for path in tables.values()],
        ANALYSIS_FIGURE_FILES,
