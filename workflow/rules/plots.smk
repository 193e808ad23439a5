# Figures, rebuilt from summary.csv alone.


rule plot_accuracy_vs_sparsity:
    input:
        rules.aggregate.output[0],
    output:
        report(FIGURES, caption="../report/accuracy_vs_sparsity.rst", category="Figures"),
    params:
        title=config["experiment"],
    log:
        f"{EXPERIMENT}/logs/plot_accuracy_vs_sparsity.log",
    benchmark:
        f"{EXPERIMENT}/logs/plot_accuracy_vs_sparsity.benchmark.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **LIGHT_RESOURCES,
    shell:
        "lth plot --summary {input} --out {output} --title {params.title:q} > {log} 2>&1"


# Paper figures of the analyses, each from its collected CSV alone (lth/analysis/figures.py).
rule plot_analysis:
    input:
        lambda w: ANALYSIS_TABLES[ANALYSIS_FIGURES[w.figure][0]],
    output:
        report(multiext(f"{EXPERIMENT}/figures/{{figure}}", ".png", ".pdf"), caption="../report/analysis.rst",
               category="Analysis"),
    wildcard_constraints:
        figure="fig[A-Za-z0-9_]+",
    params:
        figure=analysis_figure,
    log:
        f"{EXPERIMENT}/logs/plot_{{figure}}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **LIGHT_RESOURCES,
    shell:
        "lth figure {params.figure} --csv {input} --out {output} --force > {log} 2>&1"


# Table A1 is a table: its CSV as well as a rendered image.
rule tabulate_analysis:
    input:
        lambda w: ANALYSIS_TABLES[ANALYSIS_FIGURES[w.figure][0]],
    output:
        report(multiext(f"{EXPERIMENT}/figures/{{figure}}", ".png", ".pdf", ".csv"),
               caption="../report/analysis.rst", category="Analysis"),
    wildcard_constraints:
        figure="table[A-Za-z0-9_]+",
    params:
        figure=analysis_figure,
    log:
        f"{EXPERIMENT}/logs/plot_{{figure}}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **LIGHT_RESOURCES,
    shell:
        "lth figure {params.figure} --csv {input} --out {output} --force > {log} 2>&1"
