# Analyses of finished runs, as the config's `analysis` section asks (lth/plan/analyses.py): one job
# per (analysis, run, epoch), its output in the run's folder under a hash of the analysis settings,
# so the training runs never change; then one long-form CSV per analysis and experiment.


rule analyze:
    input:
        unpack(lambda w: published(analysis_inputs(ALL_RUNS, analysis_output(w, f".{w.ext}")))),
    output:
        f"{PUBLISHED}/runs/{{run}}/analysis/{{analysis}}-{{hash}}.{{ext}}",
    log:
        f"{LOGS}/runs/{{run}}/analysis/{{analysis}}-{{hash}}.{{ext}}.log",
    benchmark:
        f"{LOGS}/runs/{{run}}/analysis/{{analysis}}-{{hash}}.{{ext}}.benchmark.tsv"
    wildcard_constraints:
        analysis=alternatives(FILE_ANALYSES),
        ext=alternatives(ANALYSIS_SUFFIXES),
    group:
        ANALYSIS_GROUP
    conda:
        CONDA_ENV
    threads: THREADS
    resources:
        **training_resources(lambda w: w.run),
    params:
        lth=LTH,
        command=lambda w: ANALYSES[w.analysis].command,
        weights=lambda w, input: stored(input.weights),
        mask=lambda w, input: optional_inputs(input, ("mask",)),
        out=lambda w, output: stored(output[0]),
        publish=publish_args,
        settings=lambda w: analysis_settings(w, f".{w.ext}"),
        options=RUN_OPTIONS,
    shell:
        store_job(
            "{params.lth} analyze {params.command:q} --weights {params.weights:q} {params.mask}"
            " --out {params.out:q} --threads {threads:q} {params.options} {params.settings}"
        )


# A landscape grid runs as `jobs` independent parts (a cluster spreads them), merged by one job;
# every point is computed from the checkpoint and the seeded directions alone, so the parts'
# numbers equal one job's.
rule analyze_grid_part:
    input:
        unpack(lambda w: published(analysis_inputs(ALL_RUNS, analysis_output(w, ".csv")))),
    output:
        f"{PUBLISHED}/runs/{{run}}/analysis/{{analysis}}-{{hash}}.parts/part{{part}}-of-{{parts}}.csv",
    log:
        f"{LOGS}/runs/{{run}}/analysis/{{analysis}}-{{hash}}.parts/part{{part}}-of-{{parts}}.log",
    benchmark:
        f"{LOGS}/runs/{{run}}/analysis/{{analysis}}-{{hash}}.parts/part{{part}}-of-{{parts}}.benchmark.tsv"
    wildcard_constraints:
        analysis=alternatives(GRID_ANALYSES),
    conda:
        CONDA_ENV
    threads: THREADS
    resources:
        **training_resources(lambda w: w.run),
    params:
        lth=LTH,
        command=lambda w: ANALYSES[w.analysis].command,
        weights=lambda w, input: stored(input.weights),
        mask=lambda w, input: optional_inputs(input, ("mask",)),
        out=lambda w, output: stored(output[0]),
        publish=publish_args,
        settings=lambda w: analysis_settings(w, ".csv"),
        options=RUN_OPTIONS,
    shell:
        store_job(
            "{params.lth} analyze {params.command:q} --weights {params.weights:q} {params.mask}"
            " --out {params.out:q} --part {wildcards.part:q} --parts {wildcards.parts:q}"
            " --threads {threads:q} {params.options} {params.settings}"
        )


rule merge_grid:
    input:
        lambda w: published(analysis_job(w, ".csv").part_outputs()),
    output:
        f"{PUBLISHED}/runs/{{run}}/analysis/{{analysis}}-{{hash}}.csv",
    log:
        f"{LOGS}/runs/{{run}}/analysis/{{analysis}}-{{hash}}.log",
    wildcard_constraints:
        analysis=alternatives(GRID_ANALYSES),
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **LIGHT_RESOURCES,
    params:
        lth=LTH,
        points=lambda w: analysis_job(w, ".csv").settings["points"],
        parts=lambda w, input: shlex.join(stored(path) for path in input),
        out=lambda w, output: stored(output[0]),
        publish=publish_args,
    shell:
        store_job("{params.lth} analyze merge --points {params.points:q} --out {params.out:q} {params.parts}")


# A tracked analysis (the top Hessian eigenvalue after every epoch): the run trained again with
# `--track <tracker>` into its analysis folder (the same trajectory: tracking reads the model and
# touches nothing). One rule per such analysis of the registry, so its shell command names its tracker.
for tracked in TRACKED_ANALYSES:

    rule:
        name:
            f"track_{tracked.tracker}"
        input:
            unpack(lambda w: published(training_inputs(ALL_RUNS, w.run))),
        output:
            published(run_outputs(f"{RUNS}/{{run}}/analysis/{{analysis}}-{{hash}}")),
        log:
            f"{LOGS}/runs/{{run}}/analysis/{{analysis}}-{{hash}}.log",
        benchmark:
            f"{LOGS}/runs/{{run}}/analysis/{{analysis}}-{{hash}}.benchmark.tsv"
        wildcard_constraints:
            analysis=tracked.name,
        conda:
            CONDA_ENV
        threads: THREADS
        resources:
            **training_resources(lambda w: w.run, scale=2),
        params:
            lth=LTH,
            init=lambda w, input: stored(input.init),
            publish=publish_args,
            seed=lambda w: (ALL_RUNS.dense.get(w.run) or ALL_RUNS.sparse[w.run].dense).seed,
            hparams=lambda w: training_flags(w.run),
            inputs=lambda w, input: optional_inputs(input),
            track=lambda w: analysis_job(w, "").flags(),
            options=RUN_OPTIONS,
            out_dir=lambda w: analysis_output(w, ""),
        shell:
            store_job(
                "{params.lth} train --init {params.init:q} {params.inputs} --out-dir {params.out_dir:q}"
                f" --seed {{params.seed:q}} --track {tracked.tracker} {{params.track}} --threads {{threads:q}}"
                " {params.options} {params.hparams}"
            )


rule collect_analysis:
    input:
        lambda w: published(
            [
                job.output if job.analysis.suffix else f"{job.output}/{artifacts.SUMMARY}"
                for job in EXPERIMENT_PLANS[w.experiment].analysis_jobs(COLLECTED[w.table])
            ]
        ),
    output:
        report(
            f"{RESULTS}/{{experiment}}/analysis/{{table}}.csv",
            caption="../report/analysis_table.rst",
            category="{experiment}",
            subcategory="Analysis",
        ),
    log:
        f"{RESULTS}/{{experiment}}/logs/collect_{{table}}.log",
    wildcard_constraints:
        table=alternatives(COLLECTED),
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **LIGHT_RESOURCES,
    params:
        lth=LTH,
        analysis=lambda w: COLLECTED[w.table],
        rows=lambda w: analysis_rows(EXPERIMENT_PLANS[w.experiment], COLLECTED[w.table]),
    shell:
        "{params.lth} analyze collect --analysis {params.analysis:q} --out {output:q} --force {params.rows}"
        " > {log:q} 2>&1"
