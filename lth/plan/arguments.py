"""What each workflow rule passes to `lth`: the files a job reads and its flags, shell-quoted."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

import yaml

from lth.hparams import Hparams
from lth.mask_registry import MASK_SOURCES, source_of
from lth.plan import paths

if TYPE_CHECKING:
    from lth.plan.graph import Plan


# Snakemake job groups (profiles/slurm): the jobs of one group id are one cluster job, and the profile's
# `group-components` puts several unconnected parts of one group id (or of one pattern: Snakemake's parent
# group id) in one job.
CHAIN_GROUP = "chain-{chain}"  # an IMP chain's trainings and prunes, or the levels of another source
ANALYSIS_GROUP = "analyses"  # the small analysis jobs of every run, and the snapshots they read


def chain_group(plan: Plan, key: str) -> str | None:
    """The job group of sparse run `key`: an IMP chain's training at each level it prunes again runs
    in its chain's group, with the prune jobs between them, so a chain waits in a cluster's queue
    once and not once per level; a re-training of a variant (or the last level) is a job of its own."""
    if key not in plan.chain_runs:
        return None
    return CHAIN_GROUP.format(chain=plan.sparse[key].chain.key)


def flags(*sections: Hparams) -> str:
    """Shell-quoted `--section.key value` flags that rebuild these hparams in `lth`."""
    words = []
    for hparams in sections:
        for key, value in hparams.to_dict().items():
            text = value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True).strip()
            text = text.removesuffix("\n...").strip()
            words += [f"--{hparams.section}.{key}", text]
    return shlex.join(words)


def prune_inputs(plan: Plan, chain_key: str, level: int) -> dict[str, str]:
    """What level `level` of a chain is drawn from: the trained weights magnitude pruning ranks (and
    the previous IMP level), or another source's theta0 (and its reference mask, or the user's file),
    or a sparse training's final weights (its mask is saved with them)."""
    chain = plan.chains[chain_key]
    if source_of(chain.method).algorithm:
        return {"weights": paths.final_weights(plan, plan.algorithm_run(chain, level).key)}
    if source_of(chain.method).trained:
        return {"weights": paths.final_weights(plan, chain.dense.key)}
    if chain.method not in ("imp", "omp"):
        inputs = {"weights": paths.init_weights(plan, chain.dense.key)}
        if chain.like:
            inputs["like"] = paths.mask_path(plan, chain.like, level)
        return inputs
    if chain.method == "omp" or level == 1:
        return {"weights": paths.final_weights(plan, chain.dense.key)}
    previous = plan.chain_run(chain, level - 1)
    return {"weights": paths.final_weights(plan, previous.key), "mask": paths.mask_path(plan, chain, level - 1)}


def prune_rounds(plan: Plan, chain_key: str, level: int) -> int:
    """`lth prune --rounds`: one more IMP round, else straight to the level's count."""
    return 1 if plan.chains[chain_key].method == "imp" else level


def prune_options(plan: Plan, chain_key: str, level: int) -> str:
    """`lth prune` flags of a chain's source at `level`: --method and its settings (the workflow files
    it reads come from prune_inputs). A user's file is passed by path, not as a Snakemake input:
    its content is in the chain's hash, and a moved file must not look like a changed input."""
    chain = plan.chains[chain_key]
    if chain.method in ("imp", "omp"):
        return f"--method magnitude {flags(chain.prune)}"
    words = ["--method", chain.method, "--seed", str(chain.dense.seed)]
    for setting in MASK_SOURCES[chain.method].settings:  # an "input" setting's mask comes from prune_inputs
        if setting.role != "input":
            value = chain.files[level] if setting.role == "file" else str(chain.settings[setting.name])
            words += [f"--{setting.flag}", value]
    return f"{shlex.join(words)} {flags(chain.prune)}"


def sparse_inputs(plan: Plan, key: str) -> dict[str, str]:
    run = plan.sparse[key]
    inputs = {"init": paths.start_weights(plan, run.dense, run.start_epoch, run.reinit_seed)}
    if not run.sparse_training:  # a sparse training draws its own mask
        inputs["mask"] = paths.mask_path(plan, run.chain, run.level)
    if run.train.kd_alpha > 0:
        inputs["teacher"] = paths.final_weights(plan, run.dense.key)  # the dense network of the same seed
    return inputs


def training_inputs(plan: Plan, key: str) -> dict[str, str]:
    """The files run `key`'s training reads (init weights, mask, teacher)."""
    if key in plan.dense:
        return {"init": paths.init_weights(plan, plan.dense[key].init)}
    return sparse_inputs(plan, key)


def analysis_inputs(plan: Plan, output: str) -> dict[str, str]:
    """The files analysis job `output` reads: the weights analysed and the run's mask."""
    job = plan.analyses[output]
    if not job.analysis.suffix:  # a tracked re-training of the run
        return training_inputs(plan, job.run)
    inputs = {"weights": paths.weights(plan, job.run, job.epoch)}
    if job.run in plan.sparse:
        run = plan.sparse[job.run]
        inputs["mask"] = paths.mask_path(plan, run.chain, run.level)
    return inputs


def analysis_rows(plan: Plan, name: str) -> str:
    """`lth analyze collect` rows of analysis `name`: SEED:VARIANT:LEVEL:EPOCH:RUN_FOLDER:FILE."""
    rows = [
        f"{s.seed}:{s.variant}:{s.level}:{s.epoch}:{paths.folder(plan, job.run)}:{job.collected_file}"
        for job in plan.analysis_jobs(name)
        for s in job.subjects
    ]
    return shlex.join(dict.fromkeys(rows))


def row_args(plan: Plan) -> str:
    """`lth aggregate` rows: SEED:VARIANT:LEVEL:MASK_SOURCE:RUN_FOLDER."""
    return shlex.join(f"{row.seed}:{row.variant}:{row.level}:{row.mask_source}:{row.run}" for row in plan.rows)


def job_count(plan: Plan) -> dict[str, int]:
    """Jobs the full DAG holds per rule, for checks and the README."""
    theta0 = [run for run in plan.dense.values() if not run.baseline]
    return {
        "init": len(theta0),
        "train_dense": len(plan.dense),
        "rewind_point": len(paths.rewind_points(plan)),
        "reinit": len(paths.reinit_points(plan)),
        "prune": len(paths.mask_paths(plan)),
        "train_sparse": len(plan.sparse),
    }
