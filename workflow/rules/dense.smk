# Dense training: theta0 for each seed, then the dense run that every ticket is drawn from.


rule init:
    output:
        f"{RUNS}/{{dense}}/init.pt",
    params:
        seed=lambda w: PLAN.dense[w.dense].seed,
        hparams=lambda w: flags(PLAN.dense[w.dense].model, PLAN.dense[w.dense].data),
    log:
        f"{RUNS}/{{dense}}/init.log",
    benchmark:
        f"{RUNS}/{{dense}}/init.benchmark.tsv"
    conda:
        "../envs/lth.yaml"
    threads: 1
    resources:
        **LIGHT_RESOURCES,
    shell:
        "lth init --out {output} --seed {params.seed} --threads {threads} {params.hparams} > {log} 2>&1"


rule dense:
    input:
        init=rules.init.output[0],
    output:
        run_outputs(f"{RUNS}/{{dense}}", [f"epoch{k}.pt" for k in config["save_epochs"] if k > 0]),
    params:
        seed=lambda w: PLAN.dense[w.dense].seed,
        hparams=lambda w: flags(PLAN.dense[w.dense].model, PLAN.dense[w.dense].data, PLAN.dense[w.dense].train),
        save_epochs=" ".join(str(k) for k in config["save_epochs"] if k > 0),
        options=RUN_OPTIONS,
        out_dir=lambda w: f"{RUNS}/{w.dense}",
    log:
        f"{RUNS}/{{dense}}/train.log",
    benchmark:
        f"{RUNS}/{{dense}}/train.benchmark.tsv"
    conda:
        "../envs/lth.yaml"
    threads: config["threads"]
    resources:
        **TRAIN_RESOURCES,
    shell:
        "lth train --init {input.init} --out-dir {params.out_dir} --seed {params.seed}"
        " --save-epochs {params.save_epochs} {params.options} {params.hparams} > {log} 2>&1"
