# Rewind points: the dense weights after epoch k, where rewinding variants and IMP with rewinding
# start. The finished dense run's by-product epoch<k>.pt is published as is; a rewind point the
# run did not keep (added to the config later) is re-trained from theta0 with the same seed and
# settings up to epoch k (bit-identical on the CPU with the same threads).


rule rewind_point:
    input:
        init=f"{RUNS}/{{dense}}/init.pt",
        finished=f"{RUNS}/{{dense}}/summary.json",
    output:
        protected(f"{RUNS}/{{dense}}/rewind/epoch{{epoch}}.pt"),
    params:
        seed=lambda w: PLAN.dense[w.dense].seed,
        hparams=lambda w: dense_training_flags(w.dense),
        options=RUN_OPTIONS,
        run=lambda w: f"{RUNS}/{w.dense}",
    log:
        f"{RUNS}/{{dense}}/rewind/epoch{{epoch}}.log",
    benchmark:
        f"{RUNS}/{{dense}}/rewind/epoch{{epoch}}.benchmark.tsv"
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        **TRAIN_RESOURCES,
    shell:
        "lth rewind-point --run {params.run} --epoch {wildcards.epoch} --init {input.init} --out {output}"
        " --seed {params.seed} --threads {threads} {params.options} {params.hparams} > {log} 2>&1"
