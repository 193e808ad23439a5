# Dense training: theta0 for each seed, then the dense run that every ticket is drawn from, and the
# dense-with-tweak baselines (`dense_variants`), trained from the same theta0.
# Run folders are a cache shared by every experiment: their files are protected() (write-protected
# once made), so `snakemake --delete-all-output` of one experiment cannot remove another's work.


rule init:
    input:
        data=lambda w: data_input(PLAN.dense[w.dense]),
    output:
        protected(f"{RUNS}/{{dense}}/init.pt"),
    params:
        lth=LTH,
        seed=lambda w: PLAN.dense[w.dense].seed,
        hparams=lambda w: flags(PLAN.dense[w.dense].model, job_data(PLAN.dense[w.dense].data)),
    log:
        f"{RUNS}/{{dense}}/init.log",
    benchmark:
        f"{RUNS}/{{dense}}/init.benchmark.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **LIGHT_RESOURCES,
    shell:
        "{params.lth} init --out {output:q} --seed {params.seed:q} --threads {threads:q} {params.hparams}"
        " > {log:q} 2>&1"


# The `reinit` variant part's start: the same network initialised afresh with another seed (seed +
# reinit_seed_offset), the random re-initialisation control of a ticket.
rule reinit:
    input:
        data=lambda w: data_input(PLAN.dense[w.dense]),
    output:
        protected(f"{RUNS}/{{dense}}/reinit/seed{{reseed}}.pt"),
    params:
        lth=LTH,
        hparams=lambda w: flags(PLAN.dense[w.dense].model, job_data(PLAN.dense[w.dense].data)),
    log:
        f"{RUNS}/{{dense}}/reinit/seed{{reseed}}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **LIGHT_RESOURCES,
    shell:
        "{params.lth} init --out {output:q} --seed {wildcards.reseed:q} --threads {threads:q} {params.hparams}"
        " > {log:q} 2>&1"


# The rewind points (and epochs to analyse) this experiment needs are kept by the run as a
# by-product (epoch<k>.pt, not declared), which rule rewind_point publishes; one added later costs
# its own epochs only, and this job's outputs never change with it.
# --force: Snakemake runs this job only when it has to and has already removed its declared
# outputs; files of an earlier attempt at the same run (same hash) are replaced, not kept.
rule train_dense:
    input:
        init=lambda w: PLAN.training_inputs(w.dense)["init"],  # a dense-with-tweak baseline starts from theta0
    output:
        protected(run_outputs(f"{RUNS}/{{dense}}")),
    params:
        lth=LTH,
        seed=lambda w: PLAN.dense[w.dense].seed,
        hparams=lambda w: training_flags(w.dense),
        save_epochs=lambda w: [str(k) for k in PLAN.kept_epochs(w.dense)],
        options=RUN_OPTIONS,
        out_dir=lambda w: f"{RUNS}/{w.dense}",
    log:
        f"{RUNS}/{{dense}}/train.log",
    benchmark:
        f"{RUNS}/{{dense}}/train.benchmark.tsv"
    conda:
        CONDA_ENV
    threads: THREADS
    resources:
        **training_resources(lambda w: w.dense),
    shell:
        "{params.lth} train --init {input.init:q} --out-dir {params.out_dir:q} --seed {params.seed:q} --force"
        " --save-epochs {params.save_epochs:q} --threads {threads:q} {params.options} {params.hparams} > {log:q} 2>&1"
