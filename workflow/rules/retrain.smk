# Sparse (re-)training: one job per (variant, level, seed) with the mask never changed. The IMP
# chain's own training at each level is one of these runs too (the plan hashes it like any other).


rule sparse:
    input:
        unpack(lambda w: PLAN.sparse_inputs(w.sparse)),
    output:
        run_outputs(f"{RUNS}/{{sparse}}"),
    params:
        seed=lambda w: PLAN.sparse[w.sparse].dense.seed,
        start=lambda w: PLAN.sparse[w.sparse].start_epoch,
        hparams=lambda w: flags(PLAN.sparse[w.sparse].model, PLAN.sparse[w.sparse].dense.data,
                                PLAN.sparse[w.sparse].train),
        options=RUN_OPTIONS,
    log:
        f"{RUNS}/{{sparse}}/train.log",
    benchmark:
        f"{RUNS}/{{sparse}}/train.benchmark.tsv"
    threads: config["threads"]
    resources:
        **TRAIN_RESOURCES,
    shell:
        "lth train --init {input.init} --mask {input.mask} --start-epoch {params.start}"
        " --out-dir {RUNS}/{wildcards.sparse} --seed {params.seed} {params.options} {params.hparams} > {log} 2>&1"
