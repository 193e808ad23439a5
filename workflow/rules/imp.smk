# Mask export: each level of an IMP chain (prune 20% of what the previous level kept, after
# training it) or of one-shot pruning (OMP: the dense weights pruned straight to the level).


rule prune:
    input:
        unpack(lambda w: PLAN.prune_inputs(w.chain, int(w.level))),
    output:
        mask=protected(f"{RUNS}/{{chain}}/level{{level}}/mask.pt"),
        sidecar=protected(f"{RUNS}/{{chain}}/level{{level}}/mask.json"),
    params:
        lth=LTH,
        rounds=lambda w: PLAN.prune_rounds(w.chain, int(w.level)),
        mask=lambda w, input: f"--mask {input.mask}" if "mask" in input.keys() else "",
        hparams=lambda w: flags(PLAN.chains[w.chain].prune),
    log:
        f"{RUNS}/{{chain}}/level{{level}}/prune.log",
    benchmark:
        f"{RUNS}/{{chain}}/level{{level}}/prune.benchmark.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **LIGHT_RESOURCES,
    shell:
        "{params.lth} prune --weights {input.weights} {params.mask} --out {output.mask} --rounds {params.rounds}"
        " {params.hparams} > {log} 2>&1"
