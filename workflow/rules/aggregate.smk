# Tables: one summary.csv per experiment (a row per seed, variant and level, dense rows included),
# its ticket statistics (tickets.csv), and results/summary.csv with every experiment of the config.


rule aggregate:
    input:
        lambda w: published([f"{folder}/{artifacts.SUMMARY}" for folder in run_folders(EXPERIMENT_PLANS[w.experiment])]),
    output:
        report(
            f"{RESULTS}/{{experiment}}/summary.csv",
            caption="../report/summary.rst",
            category="{experiment}",
            subcategory="Tables",
        ),
    log:
        f"{RESULTS}/{{experiment}}/logs/aggregate.log",
    benchmark:
        f"{RESULTS}/{{experiment}}/logs/aggregate.benchmark.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **LIGHT_RESOURCES,
    params:
        lth=LTH,
        rows=lambda w: row_args(EXPERIMENT_PLANS[w.experiment]),
    shell:
        "{params.lth} aggregate --out {output:q} {params.rows} > {log:q} 2>&1"


rule tickets:
    input:
        summary=rules.aggregate.output[0],
        settings=lambda w: figure_settings(w.experiment),
    output:
        report(
            f"{RESULTS}/{{experiment}}/tickets.csv",
            caption="../report/tickets.rst",
            category="{experiment}",
            subcategory="Tables",
        ),
    log:
        f"{RESULTS}/{{experiment}}/logs/tickets.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **LIGHT_RESOURCES,
    params:
        lth=LTH,
        pairs=lambda w: shlex.join(
            word for a, b in CONFIGS[w.experiment]["figures"]["critical_pairs"] for word in ("--pair", f"{a}:{b}")
        ),
    shell:
        "{params.lth} tickets --summary {input.summary:q} --out {output:q} --force {params.pairs} > {log:q} 2>&1"


rule summaries:
    input:
        [f"{RESULTS}/{name}/summary.csv" for name in CONFIGS],
    output:
        report(
            f"{RESULTS}/summary.csv",
            caption="../report/summaries.rst",
            category="All experiments",
            subcategory="Tables",
        ),
    log:
        f"{RESULTS}/logs/summaries.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **LIGHT_RESOURCES,
    params:
        lth=LTH,
        experiments=[f"{name}={RESULTS}/{name}/summary.csv" for name in CONFIGS],
    shell:
        "{params.lth} aggregate --out {output:q} --force --experiments {params.experiments:q} > {log:q} 2>&1"
