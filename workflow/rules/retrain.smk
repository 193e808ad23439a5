# Sparse (re-)training: one job per (variant, level, seed) with the mask never changed. The IMP
# chain's own training at each level is one of these runs too (the plan hashes it like any other).
# Distilling runs also take their teacher, the dense run's final.pt. GradInit's gradinit.json is
# written only by runs that use it, so it is not a declared output; summary.json still comes last.
# Epochs an analysis asks for are kept as by-products (epoch<k>.pt), published by rule snapshot.
# --force: as for train_dense, files of an earlier attempt at the same run are replaced.


rule train_sparse:
    input:
        unpack(lambda w: PLAN.sparse_inputs(w.sparse)),
    output:
        protected(run_outputs(f"{RUNS}/{{sparse}}")),
    params:
        lth=LTH,
        seed=lambda w: PLAN.sparse[w.sparse].dense.seed,
        hparams=lambda w: training_flags(w.sparse),
        inputs=lambda w, input: optional_inputs(input),
        save_epochs=lambda w: [str(k) for k in PLAN.kept_epochs(w.sparse)],
        options=RUN_OPTIONS,
        out_dir=lambda w: f"{RUNS}/{w.sparse}",
    log:
        f"{RUNS}/{{sparse}}/train.log",
    benchmark:
        f"{RUNS}/{{sparse}}/train.benchmark.tsv"
    conda:
        CONDA_ENV
    threads: THREADS
    resources:
        **training_resources(lambda w: w.sparse),
    shell:
        "{params.lth} train --init {input.init:q} {params.inputs} --out-dir {params.out_dir:q} --seed {params.seed:q}"
        " --force --save-epochs {params.save_epochs:q} --threads {threads:q} {params.options} {params.hparams}"
        " > {log:q} 2>&1"
