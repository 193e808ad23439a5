"""Where each artifact of a plan lives: `<results>/runs/<key>/` and the file names of lth/artifacts.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lth import artifacts

if TYPE_CHECKING:  # the graph imports this module
    from lth.plan.graph import Chain, DenseRun, Plan


def folder(plan: Plan, key: str) -> str:
    return str(plan.results / "runs" / key)


def init_weights(plan: Plan, dense_key: str) -> str:
    """theta0 of dense run `dense_key`."""
    return f"{folder(plan, dense_key)}/{artifacts.INIT}"


def final_weights(plan: Plan, key: str) -> str:
    return f"{folder(plan, key)}/{artifacts.FINAL}"


def start_weights(plan: Plan, dense: DenseRun, epoch: int, reinit_seed: int | None = None) -> str:
    if reinit_seed is not None:
        return reinit_weights(plan, dense.key, reinit_seed)
    return init_weights(plan, dense.key) if epoch == 0 else rewind_point(plan, dense.key, epoch)


def reinit_weights(plan: Plan, dense_key: str, seed: int) -> str:
    """A fresh initialisation of `dense_key`'s network drawn with `seed` (rule reinit)."""
    return f"{folder(plan, dense_key)}/{artifacts.reinit(seed)}"


def rewind_point(plan: Plan, dense_key: str, epoch: int) -> str:
    """The dense weights after `epoch`: a file of its own (rule rewind_point), so that a new
    rewind point never makes the finished dense run look incomplete."""
    return f"{folder(plan, dense_key)}/{artifacts.rewind_point(epoch)}"


def rewind_points(plan: Plan) -> list[str]:
    return [rewind_point(plan, key, epoch) for key, epochs in plan.rewind.items() for epoch in sorted(epochs)]


def reinit_points(plan: Plan) -> list[str]:
    return sorted(
        {
            reinit_weights(plan, run.dense.key, run.reinit_seed)
            for run in plan.sparse.values()
            if run.reinit_seed is not None
        }
    )


def mask_path(plan: Plan, chain: Chain, level: int) -> str:
    return f"{folder(plan, chain.key)}/{artifacts.level_mask(level)}"


def mask_paths(plan: Plan) -> list[str]:
    """Every mask a run of the plan trains with (an IMP chain's levels below the last included), and
    the masks whose per-layer counts a random mask copies."""
    used = [(run.chain, run.level) for run in plan.sparse.values()]
    used += [(chain.like, level) for chain, level in used if chain.like]
    return sorted({mask_path(plan, chain, level) for chain, level in used})


def snapshot(plan: Plan, sparse_key: str, epoch: int) -> str:
    """A sparse run's weights after `epoch`, a file of its own (rule snapshot), like a rewind point."""
    return f"{folder(plan, sparse_key)}/{artifacts.snapshot(epoch)}"


def weights(plan: Plan, key: str, epoch: int) -> str:
    """The weights of run `key` after `epoch`: final.pt, a dense rewind point or a sparse snapshot."""
    if epoch == plan.epoch_range(key)[1]:
        return final_weights(plan, key)
    return rewind_point(plan, key, epoch) if key in plan.dense else snapshot(plan, key, epoch)


def snapshots(plan: Plan) -> list[str]:
    return sorted(
        {
            weights(plan, job.run, job.epoch)
            for job in plan.analyses.values()
            if job.run in plan.sparse and job.epoch < plan.epoch_range(job.run)[1]
        }
    )


def kept_epochs(plan: Plan, key: str) -> list[int]:
    """Epochs run `key` keeps as by-products (epoch<k>.pt): its rewind points and snapshots.
    Not declared outputs, so asking for more later never makes a finished run look incomplete."""
    epochs = set(plan.rewind.get(key, ()))
    last = plan.epoch_range(key)[1]
    epochs |= {job.epoch for job in plan.analyses.values() if job.run == key and job.epoch < last}
    return sorted(epochs)


def run_folders(plan: Plan) -> list[str]:
    """Every run folder the experiment's summary.csv reads."""
    return sorted({row.run for row in plan.rows})


def collected(plan: Plan) -> dict[str, str]:
    """Analysis name -> the collected CSV, for the analyses this experiment asks for."""
    folder = plan.results / plan.config["experiment"] / "analysis"
    return {job.analysis.name: str(folder / job.analysis.collected) for job in plan.analyses.values()}
