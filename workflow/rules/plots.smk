# Figures, each rebuilt from CSVs alone: an experiment's summary.csv (accuracy figures), its
# collected analysis CSVs (analysis figures), or results/summary.csv (the cross-experiment grids).
# The `figures` section's file (figure_settings) is an input, so a changed setting redraws them.
# The report shows each figure once, as its PNG; the caption (workflow/report/*.rst) gives the PDF's
# path, since Snakemake's report has no way to attach a second file to an item.

# The pages the report shows for the summary and ticket tables, made by the jobs that write their CSVs
# (Table A1's page is one of ANALYSIS_FIGURE_FILES). Targets ask for them too: Snakemake reruns a
# finished job for a missing output only when a target asks for that output, and `snakemake --report`
# stops at a missing report item.
REPORT_PAGES = [str(Path(path).with_suffix(".html")) for path in TABLES]


rule figure_settings:
    output:
        f"{RESULTS}/{{experiment}}/figure_settings-{{hash}}.json",
    log:
        f"{RESULTS}/{{experiment}}/logs/figure_settings-{{hash}}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **LIGHT_RESOURCES,
    params:
        text=lambda w: json.dumps(CONFIGS[w.experiment]["figures"], sort_keys=True),
    shell:
        "printf '%s\\n' {params.text:q} > {output:q} 2> {log:q}"


rule plot_accuracy_vs_sparsity:
    input:
        summary=rules.aggregate.output[0],
        settings=lambda w: figure_settings(w.experiment),
    output:
        report(
            f"{RESULTS}/{{experiment}}/figures/accuracy_vs_sparsity.png",
            caption="../report/figure.rst",
            category="{experiment}",
            subcategory="Figures",
        ),
        f"{RESULTS}/{{experiment}}/figures/accuracy_vs_sparsity.pdf",
    log:
        f"{RESULTS}/{{experiment}}/logs/plot_accuracy_vs_sparsity.log",
    benchmark:
        f"{RESULTS}/{{experiment}}/logs/plot_accuracy_vs_sparsity.benchmark.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **LIGHT_RESOURCES,
    params:
        lth=LTH,
        x=lambda w: CONFIGS[w.experiment]["figures"]["x"],
        mask_sources=lambda w: CONFIGS[w.experiment]["figures"]["mask_sources"],
        caption=lambda w: figure_caption(w, "accuracy_vs_sparsity"),
    shell:
        "{params.lth} plot --summary {input.summary:q} --out {output:q} --x {params.x:q}"
        " --title {wildcards.experiment:q} --mask-sources {params.mask_sources:q} --force > {log:q} 2>&1"


# The paper's accuracy figures (lth/report/registry.py): only those whose series the experiment has.
rule plot_paper_figure:
    input:
        summary=rules.aggregate.output[0],
        settings=lambda w: figure_settings(w.experiment),
    output:
        report(
            f"{RESULTS}/{{experiment}}/figures/{{figure}}.png",
            caption="../report/figure.rst",
            category="{experiment}",
            subcategory="Figures",
        ),
        f"{RESULTS}/{{experiment}}/figures/{{figure}}.pdf",
    log:
        f"{RESULTS}/{{experiment}}/logs/plot_{{figure}}.log",
    wildcard_constraints:
        figure=alternatives(SUMMARY_FIGURES),
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **LIGHT_RESOURCES,
    params:
        lth=LTH,
        x=lambda w: CONFIGS[w.experiment]["figures"]["x"],
        caption=lambda w: figure_caption(w, w.figure),
    shell:
        "{params.lth} figure {wildcards.figure:q} --csv {input.summary:q} --out {output:q} --x {params.x:q}"
        " --title {wildcards.experiment:q} --force > {log:q} 2>&1"


# One panel per experiment (architecture x dataset); x axis from the first experiment's `figures`.
rule plot_grid:
    input:
        summary=rules.summaries.output[0],
        settings=figure_settings(next(iter(CONFIGS))),
    output:
        report(
            f"{RESULTS}/figures/{{grid}}.png",
            caption="../report/figure.rst",
            category="All experiments",
            subcategory="Figures",
        ),
        f"{RESULTS}/figures/{{grid}}.pdf",
    log:
        f"{RESULTS}/logs/plot_{{grid}}.log",
    wildcard_constraints:
        grid=alternatives(GRID_FIGURES),
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **LIGHT_RESOURCES,
    params:
        lth=LTH,
        x=SETTINGS["figures"]["x"],
        caption=lambda w: figure_caption(w, w.grid),
    shell:
        "{params.lth} figure {wildcards.grid:q} --csv {input.summary:q} --out {output:q} --x {params.x:q} --force"
        " > {log:q} 2>&1"


# Paper figures of the analyses, each from its collected CSV alone (lth/report/analysis.py).
rule plot_analysis:
    input:
        analysis_figure_input,
    output:
        report(
            f"{RESULTS}/{{experiment}}/figures/{{figure}}.png",
            caption="../report/analysis.rst",
            category="{experiment}",
            subcategory="Analysis",
        ),
        f"{RESULTS}/{{experiment}}/figures/{{figure}}.pdf",
    log:
        f"{RESULTS}/{{experiment}}/logs/plot_{{figure}}.log",
    wildcard_constraints:
        figure=alternatives(stem for figures in ANALYSIS_FIGURES.values() for stem in figures if stem.startswith("fig")),
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **LIGHT_RESOURCES,
    params:
        lth=LTH,
        figure=analysis_figure,
        caption=lambda w: figure_caption(w, ANALYSIS_FIGURES[w.experiment][w.figure][1]),
    shell:
        "{params.lth} figure {params.figure} --csv {input:q} --out {output:q} --title {wildcards.experiment:q}"
        " --force > {log:q} 2>&1"


# Table A1 is a table: its CSV and a page (what the report shows) as well as a rendered image.
rule tabulate_analysis:
    input:
        analysis_figure_input,
    output:
        multiext(f"{RESULTS}/{{experiment}}/figures/{{figure}}", ".png", ".pdf", ".csv"),
        report(
            f"{RESULTS}/{{experiment}}/figures/{{figure}}.html",
            caption="../report/analysis_page.rst",
            category="{experiment}",
            subcategory="Analysis",
        ),
    log:
        f"{RESULTS}/{{experiment}}/logs/plot_{{figure}}.log",
    wildcard_constraints:
        figure="table[A-Za-z0-9_]+",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **LIGHT_RESOURCES,
    params:
        lth=LTH,
        figure=analysis_figure,
        caption=lambda w: figure_caption(w, ANALYSIS_FIGURES[w.experiment][w.figure][1]),
    shell:
        "{params.lth} figure {params.figure} --csv {input:q} --out {output:q} --title {wildcards.experiment:q}"
        " --force > {log:q} 2>&1"
