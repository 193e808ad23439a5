# One summary.csv per experiment: a row per (seed, variant, level), dense rows included.


rule aggregate:
    input:
        [f"{folder}/summary.json" for folder in PLAN.run_folders()],
    output:
        report(TABLES[0], caption="../report/summary.rst", category="Tables"),
    params:
        rows=PLAN.row_args(),
    log:
        f"{EXPERIMENT}/logs/aggregate.log",
    benchmark:
        f"{EXPERIMENT}/logs/aggregate.benchmark.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **LIGHT_RESOURCES,
    shell:
        "lth aggregate --out {output} {params.rows} > {log} 2>&1"
