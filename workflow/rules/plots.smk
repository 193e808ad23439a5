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
