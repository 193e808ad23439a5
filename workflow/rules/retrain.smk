# Sparse (re-)training: one job per (variant, level, seed) with the mask never changed. The IMP
# chain's own training at each level is one of these runs too (the plan hashes it like any other).
# Distilling runs also take their teacher, the dense run's final.pt. GradInit's gradinit.json is
# written only by runs that use it, so it is not a declared output; summary.json still comes last.
# --force: as for train_dense, files of an earlier attempt at the same run are replaced.


rule train_sparse:
    input:
        unpack(lambda w: PLAN.sparse_inputs(w.sparse)),
    output:
        protected(run_outputs(f"{RUNS}/{{sparse}}")),
    params:
        seed=lambda w: PLAN.sparse[w.sparse].dense.seed,
        start=lambda w: PLAN.sparse[w.sparse].start_epoch,
        hparams=lambda w: flags(PLAN.sparse[w.sparse].model, PLAN.sparse[w.sparse].dense.data,
                                PLAN.sparse[w.sparse].train, PLAN.sparse[w.sparse].gradinit),
        teacher=lambda w, input: f"--teacher {input.teacher}" if "teacher" in input.keys() else "",
        options=RUN_OPTIONS,
        out_dir=lambda w: f"{RUNS}/{w.sparse}",
    log:
        f"{RUNS}/{{sparse}}/train.log",
    benchmark:
        f"{RUNS}/{{sparse}}/train.benchmark.tsv"
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        **TRAIN_RESOURCES,
    shell:
        "lth train --init {input.init} --mask {input.mask} {params.teacher} --start-epoch {params.start}"
        " --out-dir {params.out_dir} --seed {params.seed} --force --threads {threads} {params.options} {params.hparams} > {log} 2>&1"
