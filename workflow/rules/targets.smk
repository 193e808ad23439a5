# Targets that ask for one stage by name: `snakemake <target>` builds it and everything it needs.
# (`--until <rule>` cannot: the IMP chain alternates prune and train_sparse jobs.)


rule dense:
    input:
        dense_outputs(),
        PLAN.rewind_points(),


rule masks:
    input:
        mask_outputs(),


rule retrain:
    input:
        sparse_outputs(),


rule tables:
    input:
        TABLES,


rule figures:
    input:
        FIGURES,


# Everything `snakemake --report` shows; build it first, then write the report.
rule report:
    input:
        TABLES,
        FIGURES,
