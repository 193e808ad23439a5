# Tables: one summary.csv per experiment (a row per seed, variant and level, dense rows included),
# its ticket statistics (tickets.csv), and results/summary.csv with every experiment of the config.
# Each also as a page (.html, lth/report/html.py), written by the same job: the report shows a page
# inline but offers a CSV only as a download, so the page is the report's item and the CSV its data.


rule aggregate:
    input:
        lambda w: published([f"{folder}/{artifacts.SUMMARY}" for folder in run_folders(EXPERIMENT_PLANS[w.experiment])]),
    output:
        csv=f"{RESULTS}/{{experiment}}/summary.csv",
        html=report(
            f"{RESULTS}/{{experiment}}/summary.html",
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
        "{params.lth} aggregate --out {output.csv:q} --html {output.html:q} {params.rows} > {log:q} 2>&1"


rule tickets:
    input:
        summary=rules.aggregate.output[0],
        settings=lambda w: figure_settings(w.experiment),
    output:
        csv=f"{RESULTS}/{{experiment}}/tickets.csv",
        html=report(
            f"{RESULTS}/{{experiment}}/tickets.html",
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
        "{params.lth} tickets --summary {input.summary:q} --out {output.csv:q} --html {output.html:q} --force"
        " {params.pairs} > {log:q} 2>&1"


rule summaries:
    input:
        [f"{RESULTS}/{name}/summary.csv" for name in CONFIGS],
    output:
        csv=f"{RESULTS}/summary.csv",
        html=report(
            f"{RESULTS}/summary.html",
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
        "{params.lth} aggregate --out {output.csv:q} --html {output.html:q} --force"
        " --experiments {params.experiments:q} > {log:q} 2>&1"
