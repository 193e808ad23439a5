# Snapshots: a run's weights after epoch k, each a file of its own so that asking for one never
# makes a finished run look incomplete. The run's by-product epoch<k>.pt is published as is; a
# snapshot the run did not keep (asked for later) is re-trained from the run's starting weights
# with the same seed and settings up to epoch k (bit-identical on the CPU with the same threads).
# Dense snapshots are the rewind points, where rewinding variants and IMP with rewinding start;
# sparse snapshots are the epochs an analysis reads (`analysis.<name>.epochs`).


rule rewind_point:
    input:
        init=f"{RUNS}/{{dense}}/init.pt",
        finished=f"{RUNS}/{{dense}}/summary.json",
    output:
        protected(f"{RUNS}/{{dense}}/rewind/epoch{{epoch}}.pt"),
    params:
        lth=LTH,
        seed=lambda w: PLAN.dense[w.dense].seed,
        hparams=lambda w: training_flags(w.dense),
        options=RUN_OPTIONS,
        run=lambda w: f"{RUNS}/{w.dense}",
    log:
        f"{RUNS}/{{dense}}/rewind/epoch{{epoch}}.log",
    benchmark:
        f"{RUNS}/{{dense}}/rewind/epoch{{epoch}}.benchmark.tsv"
    conda:
        CONDA_ENV
    threads: THREADS
    resources:
        **training_resources(lambda w: w.dense, lambda w: int(w.epoch)),
    shell:
        "{params.lth} snapshot --run {params.run:q} --epoch {wildcards.epoch:q} --init {input.init:q} --out {output:q}"
        " --seed {params.seed:q} --threads {threads:q} {params.options} {params.hparams} > {log:q} 2>&1"


rule snapshot:
    input:
        unpack(lambda w: PLAN.sparse_inputs(w.sparse)),
        finished=f"{RUNS}/{{sparse}}/summary.json",
    output:
        protected(f"{RUNS}/{{sparse}}/snapshots/epoch{{epoch}}.pt"),
    params:
        lth=LTH,
        seed=lambda w: PLAN.sparse[w.sparse].dense.seed,
        hparams=lambda w: training_flags(w.sparse),
        inputs=lambda w, input: optional_inputs(input),
        options=RUN_OPTIONS,
        run=lambda w: f"{RUNS}/{w.sparse}",
    log:
        f"{RUNS}/{{sparse}}/snapshots/epoch{{epoch}}.log",
    benchmark:
        f"{RUNS}/{{sparse}}/snapshots/epoch{{epoch}}.benchmark.tsv"
    conda:
        CONDA_ENV
    threads: THREADS
    resources:
        **training_resources(lambda w: w.sparse, lambda w: int(w.epoch) - PLAN.sparse[w.sparse].start_epoch),
    shell:
        "{params.lth} snapshot --run {params.run:q} --epoch {wildcards.epoch:q} --init {input.init:q} {params.inputs}"
        " --out {output:q} --seed {params.seed:q} --threads {threads:q} {params.options} {params.hparams}"
        " > {log:q} 2>&1"
