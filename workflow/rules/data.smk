# Datasets that lth downloads (CIFAR-10/100, Tiny-ImageNet) are fetched and checked once, before any job
# reads them, by a job on the machine running Snakemake (a local rule: cluster nodes are often offline);
# the seeds of an experiment must not download into one folder at once. Every theta0 waits for it
# (rule init), so every training does; training jobs themselves never download.


rule data:
    output:
        f"{PUBLISHED}/data/{{dataset}}.json",
    log:
        f"{LOGS}/data/{{dataset}}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **LIGHT_RESOURCES,
    params:
        lth=LTH,
        out=lambda w, output: stored(output[0]),
        publish=publish_args,
        hparams=lambda w: flags(DATASETS[w.dataset]),
    shell:
        store_job("{params.lth} data --out {params.out:q} {params.hparams}")
