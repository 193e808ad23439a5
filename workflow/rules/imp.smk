# Mask export: each level of an IMP chain (prune 20% of what the previous level kept, after
# training it), of one-shot pruning (OMP: the dense weights pruned straight to the level), or of
# another mask source (lth/mask_registry.py: random, SNIP, GraSP, SynFlow from theta0 at the level's
# count, or the user's file for the level, passed by path: its content is in the chain's hash, so
# a changed file is a new chain, and a touched or moved one is not a reason to redo a mask.


rule prune:
    input:
        unpack(lambda w: published(prune_inputs(ALL_RUNS, w.chain, int(w.level)))),
    output:
        mask=f"{PUBLISHED}/runs/{{chain}}/{artifacts.level_mask('{level}')}",
        sidecar=f"{PUBLISHED}/runs/{{chain}}/level{{level}}/{artifacts.MASK_SIDECAR}",
    log:
        f"{LOGS}/runs/{{chain}}/level{{level}}/prune.log",
    benchmark:
        f"{LOGS}/runs/{{chain}}/level{{level}}/prune.benchmark.tsv"
    group:
        CHAIN_GROUP
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **LIGHT_RESOURCES,
    params:
        lth=LTH,
        weights=lambda w, input: stored(input.weights),
        out=lambda w, output: stored(output.mask),
        publish=publish_args,
        rounds=lambda w: prune_rounds(ALL_RUNS, w.chain, int(w.level)),
        inputs=lambda w, input: optional_inputs(input, ("mask", "like")),
        options=mask_options,
    shell:
        store_job(
            "{params.lth} prune --weights {params.weights:q} {params.inputs} --out {params.out:q}"
            " --rounds {params.rounds:q} --threads {threads:q} {params.options}"
        )
