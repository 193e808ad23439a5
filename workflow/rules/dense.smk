# Dense training: theta0 for each seed, then the dense run that every ticket is drawn from, and the
# dense-with-tweak baselines (`dense_variants`), trained from the same theta0.
# Run folders are a store shared by every experiment and every Snakemake process on this results
# folder: the lth commands write them under a lock, and a job's declared outputs are the links that
# `lth link` publishes afterwards (common.smk, lth/store.py). --reuse: a finished, intact artifact
# is kept as it is (another process may have made it); --force: files of an unfinished or damaged
# attempt are replaced.


rule init:
    input:
        data=lambda w: data_input(ALL_RUNS.dense[w.dense]),
    output:
        f"{PUBLISHED}/runs/{{dense}}/{artifacts.INIT}",
    log:
        f"{LOGS}/runs/{{dense}}/init.log",
    benchmark:
        f"{LOGS}/runs/{{dense}}/init.benchmark.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **LIGHT_RESOURCES,
    params:
        lth=LTH,
        out=lambda w: f"{RUNS}/{w.dense}/{artifacts.INIT}",
        publish=publish_args,
        seed=lambda w: ALL_RUNS.dense[w.dense].seed,
        hparams=lambda w: flags(ALL_RUNS.dense[w.dense].model, job_data(ALL_RUNS.dense[w.dense].data)),
    shell:
        store_job(
            "{params.lth} init --out {params.out:q} --seed {params.seed:q} --threads {threads:q}" " {params.hparams}"
        )


# The `reinit` variant part's start: the same network initialised afresh with another seed (seed +
# reinit_seed_offset), the random re-initialisation control of a ticket.
rule reinit:
    input:
        data=lambda w: data_input(ALL_RUNS.dense[w.dense]),
    output:
        f"{PUBLISHED}/runs/{{dense}}/{artifacts.reinit('{reseed}')}",
    log:
        f"{LOGS}/runs/{{dense}}/reinit/seed{{reseed}}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **LIGHT_RESOURCES,
    params:
        lth=LTH,
        out=lambda w, output: stored(output[0]),
        publish=publish_args,
        hparams=lambda w: flags(ALL_RUNS.dense[w.dense].model, job_data(ALL_RUNS.dense[w.dense].data)),
    shell:
        store_job(
            "{params.lth} init --out {params.out:q} --seed {wildcards.reseed:q} --threads {threads:q}"
            " {params.hparams}"
        )


# The rewind points (and epochs to analyse) this experiment needs are kept by the run as a
# by-product (epoch<k>.pt, not published), which rule rewind_point publishes; one added later costs
# its own epochs only, and this job's outputs never change with it.
rule train_dense:
    input:
        init=lambda w: published(training_inputs(ALL_RUNS, w.dense)["init"]),  # a baseline starts from theta0
    output:
        published(run_outputs(f"{RUNS}/{{dense}}")),
    log:
        f"{LOGS}/runs/{{dense}}/train.log",
    benchmark:
        f"{LOGS}/runs/{{dense}}/train.benchmark.tsv"
    conda:
        CONDA_ENV
    threads: THREADS
    resources:
        **training_resources(lambda w: w.dense),
    params:
        lth=LTH,
        init=lambda w, input: stored(input.init),
        publish=publish_args,
        seed=lambda w: ALL_RUNS.dense[w.dense].seed,
        hparams=lambda w: training_flags(w.dense),
        save_epochs=lambda w: [str(k) for k in kept_epochs(ALL_RUNS, w.dense)],
        options=RUN_OPTIONS,
        out_dir=lambda w: f"{RUNS}/{w.dense}",
    shell:
        store_job(
            "{params.lth} train --init {params.init:q} --out-dir {params.out_dir:q} --seed {params.seed:q}"
            " --save-epochs {params.save_epochs:q} --threads {threads:q} {params.options} {params.hparams}"
        )
