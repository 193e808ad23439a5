# Sparse (re-)training: one job per (variant, level, seed) with the mask never changed. The IMP
# chain's own training at each level is one of these runs too (the plan hashes it like any other).
# Distilling runs also take their teacher, the dense run's final.pt. GradInit's gradinit.json is
# written only by runs that use it, so it is not a declared output; summary.json still comes last.
# Epochs an analysis asks for are kept as by-products (epoch<k>.pt), published by rule snapshot.
# --reuse --force: as for train_dense (a run finished by another process is kept as it is).


rule train_sparse:
    input:
        unpack(lambda w: published(sparse_inputs(ALL_RUNS, w.sparse))),
    output:
        published(run_outputs(f"{RUNS}/{{sparse}}")),
    log:
        f"{LOGS}/runs/{{sparse}}/train.log",
    benchmark:
        f"{LOGS}/runs/{{sparse}}/train.benchmark.tsv"
    group:
        lambda w: chain_group(ALL_RUNS, w.sparse)
    conda:
        CONDA_ENV
    threads: THREADS
    resources:
        **training_resources(lambda w: w.sparse),
    params:
        lth=LTH,
        init=lambda w, input: stored(input.init),
        publish=publish_args,
        seed=lambda w: ALL_RUNS.sparse[w.sparse].dense.seed,
        hparams=lambda w: training_flags(w.sparse),
        inputs=lambda w, input: optional_inputs(input),
        save_epochs=lambda w: [str(k) for k in kept_epochs(ALL_RUNS, w.sparse)],
        options=RUN_OPTIONS,
        out_dir=lambda w: f"{RUNS}/{w.sparse}",
    shell:
        store_job(
            "{params.lth} train --init {params.init:q} {params.inputs} --out-dir {params.out_dir:q}"
            " --seed {params.seed:q} --save-epochs {params.save_epochs:q} --threads {threads:q} {params.options}"
            " {params.hparams}"
        )
