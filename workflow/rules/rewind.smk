# Snapshots: a run's weights after epoch k, each a file of its own so that asking for one never
# makes a finished run look incomplete. The run's by-product epoch<k>.pt is published as is; a
# snapshot the run did not keep (asked for later) is re-trained from the run's starting weights
# with the same seed and settings up to epoch k (bit-identical on the CPU with the same threads).
# Dense snapshots are the rewind points, where rewinding variants and IMP with rewinding start;
# sparse snapshots are the epochs an analysis reads (`analysis.<name>.epochs`).


rule rewind_point:
    input:
        init=f"{PUBLISHED}/runs/{{dense}}/{artifacts.INIT}",
        finished=f"{PUBLISHED}/runs/{{dense}}/{artifacts.SUMMARY}",
    output:
        f"{PUBLISHED}/runs/{{dense}}/{artifacts.rewind_point('{epoch}')}",
    log:
        f"{LOGS}/runs/{{dense}}/rewind/epoch{{epoch}}.log",
    benchmark:
        f"{LOGS}/runs/{{dense}}/rewind/epoch{{epoch}}.benchmark.tsv"
    conda:
        CONDA_ENV
    threads: THREADS
    resources:
        **training_resources(lambda w: w.dense, lambda w: int(w.epoch)),
    params:
        lth=LTH,
        init=lambda w, input: stored(input.init),
        out=lambda w, output: stored(output[0]),
        publish=publish_args,
        seed=lambda w: ALL_RUNS.dense[w.dense].seed,
        hparams=lambda w: training_flags(w.dense),
        options=RUN_OPTIONS,
        run=lambda w: f"{RUNS}/{w.dense}",
    shell:
        store_job(
            "{params.lth} snapshot --run {params.run:q} --epoch {wildcards.epoch:q} --init {params.init:q}"
            " --out {params.out:q} --seed {params.seed:q} --threads {threads:q} {params.options}"
            " {params.hparams}"
        )


rule snapshot:
    input:
        unpack(lambda w: published(sparse_inputs(ALL_RUNS, w.sparse))),
        finished=f"{PUBLISHED}/runs/{{sparse}}/{artifacts.SUMMARY}",
    output:
        f"{PUBLISHED}/runs/{{sparse}}/{artifacts.snapshot('{epoch}')}",
    log:
        f"{LOGS}/runs/{{sparse}}/snapshots/epoch{{epoch}}.log",
    benchmark:
        f"{LOGS}/runs/{{sparse}}/snapshots/epoch{{epoch}}.benchmark.tsv"
    group:
        ANALYSIS_GROUP  # a sparse snapshot is read by analyses only
    conda:
        CONDA_ENV
    threads: THREADS
    resources:
        **training_resources(lambda w: w.sparse, lambda w: int(w.epoch) - ALL_RUNS.sparse[w.sparse].start_epoch),
    params:
        lth=LTH,
        init=lambda w, input: stored(input.init),
        out=lambda w, output: stored(output[0]),
        publish=publish_args,
        seed=lambda w: ALL_RUNS.sparse[w.sparse].dense.seed,
        hparams=lambda w: training_flags(w.sparse),
        inputs=lambda w, input: optional_inputs(input),
        options=RUN_OPTIONS,
        run=lambda w: f"{RUNS}/{w.sparse}",
    shell:
        store_job(
            "{params.lth} snapshot --run {params.run:q} --epoch {wildcards.epoch:q} --init {params.init:q}"
            " {params.inputs} --out {params.out:q} --seed {params.seed:q} --threads {threads:q}"
            " {params.options} {params.hparams}"
        )
