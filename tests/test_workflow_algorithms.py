"""End to end: a tiny experiment draws tickets by GMP, SET and RigL (lth/sparse) and a 2:4 mask,
spends each with `lth` and `at+trt`, and keeps each algorithm's own runs (vanilla and with the tweaks)
as rows."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from test_workflow_masks import any_mask_config
from workflow_helpers import planned_jobs, snakemake, write_config

from lth.checkpoints import load_checkpoint
from lth.masks import load_mask

pytestmark = pytest.mark.workflow

ALGORITHMS = ["gmp", "set", "rigl"]
VARIANTS = ["lth", "at+trt"]


def algorithms_config(**changes) -> dict:
    """The any-mask test's tiny experiment, with the sparse trainings and a 2:4 mask as its sources."""
    masks = [
        *({"source": name, "update_every": 2} for name in ALGORITHMS),
        {"source": "nm", "n": 2, "m": 4, "indivisible": "dense"},
    ]
    return any_mask_config(**{"experiment": "algorithms", "masks": masks, "variants": VARIANTS, **changes})


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("algorithms")
    config = write_config(workdir, "algorithms", algorithms_config())
    snakemake(workdir, config)
    table = pd.read_csv(workdir / "results" / "algorithms" / "summary.csv", dtype={"mask_source": str})
    return workdir, config, table


def run_of(workdir, table: pd.DataFrame, source: str, variant: str):
    rows = table[(table["mask_source"] == source) & (table["variant"] == variant)]
    return workdir / rows["run"].item()


def record(run) -> dict:
    return yaml.safe_load((run / "hparams.yaml").read_text())


def test_every_ticket_and_every_own_run_is_a_row(drawn):
    workdir, _, table = drawn
    sparse = table[table["variant"] != "dense"]
    sources = [*ALGORITHMS, "nm", *(f"{name}_run" for name in ALGORITHMS)]
    assert sorted(zip(sparse["mask_source"], sparse["variant"], sparse["level"])) == sorted(
        (source, variant, 1) for source in sources for variant in VARIANTS
    )
    assert (sparse["train_flops"] > 0).all()
    assert (workdir / "results" / "algorithms" / "figures" / "any_mask.png").stat().st_size > 0
    tickets = pd.read_csv(workdir / "results" / "algorithms" / "tickets.csv", dtype={"mask_source": str})
    assert set(tickets["mask_source"].dropna()) == set(sources)


def test_each_ticket_is_its_algorithms_final_mask(drawn):
    """Both variants spend the mask the vanilla own run ended with, and keep it exactly."""
    workdir, _, table = drawn
    for name in ALGORITHMS:
        own = run_of(workdir, table, f"{name}_run", "lth")
        final = load_checkpoint(own / "final.pt")
        assert not any(final["state_dict"][layer][~keep].any() for layer, keep in final["mask"].items())
        kept = sum(int(keep.sum()) for keep in final["mask"].values())
        total = sum(keep.numel() for keep in final["mask"].values())
        assert abs(kept - round(0.4 * total)) <= len(final["mask"]), name  # level 1 at rate 0.6, rounded per layer
        for variant in VARIANTS:
            ticket = run_of(workdir, table, name, variant)
            mask = load_mask(workdir / record(ticket)["mask"]["path"])
            assert all(mask[layer].equal(keep) for layer, keep in final["mask"].items()), (name, variant)
            weights = load_checkpoint(ticket / "final.pt")["state_dict"]
            assert not any(weights[layer][~keep].any() for layer, keep in mask.items())


def test_own_runs_follow_their_schedules_with_the_tweaks(drawn):
    workdir, _, table = drawn
    updates = {}
    for name in ALGORITHMS:
        for variant in VARIANTS:
            run = run_of(workdir, table, f"{name}_run", variant)
            summary = json.loads((run / "summary.json").read_text())
            assert summary["sparse_training"]["algorithm"] == name
            assert summary["sparse_training"]["sparsity"] == pytest.approx(0.6)
            updates[name, variant] = [update["step"] for update in summary["mask_updates"]]
            assert "mask" not in record(run) or record(run)["mask"] is None
        tweaked = record(run_of(workdir, table, f"{name}_run", "at+trt"))
        assert (tweaked["model"]["activation"], tweaked["gradinit"]["enabled"]) == ("swish", True)
        assert tweaked["train"]["label_smoothing"] > 0
    # 180 training images in batches of 32: 6 steps an epoch, T = 12 steps in all
    assert updates["gmp", "lth"] == [2, 4, 6, 8]  # t0 = round(0.2 T) = 2, last <= round(0.75 T) = 9, dt 2
    assert updates["set", "lth"] == updates["rigl", "lth"] == [2, 4, 6, 8]  # t < T_end = round(0.75 T) = 9


def test_a_changed_algorithm_setting_replans_only_its_own_runs(drawn, tmp_path):
    workdir, config, _ = drawn
    assert planned_jobs(workdir, config) == {}
    changed = algorithms_config(
        masks=[
            {"source": "gmp", "update_every": 2},
            {"source": "set", "update_every": 2},
            {"source": "rigl", "update_every": 3},
            {"source": "nm", "n": 2, "m": 4, "indivisible": "dense"},
        ]
    )
    jobs = planned_jobs(workdir, write_config(tmp_path, "changed", changed))
    # rigl's two own runs, its mask, its two tickets; then the tables and figures
    assert {rule: jobs.get(rule) for rule in ("train_sparse", "prune", "train_dense", "init")} == {
        "train_sparse": 4,
        "prune": 1,
        "train_dense": None,
        "init": None,
    }


def test_the_two_four_ticket_keeps_two_of_every_four(drawn):
    """In every layer whose input channels split into fours, each group of 4 consecutive input
    channels at each (output channel, kernel position) keeps exactly 2; the stem (3 input channels) is
    kept dense, as `indivisible: dense` asks."""
    workdir, _, table = drawn
    for variant in VARIANTS:
        mask = load_mask(workdir / record(run_of(workdir, table, "nm", variant))["mask"]["path"])
        for name, keep in mask.items():
            if keep.shape[1] % 4:
                assert keep.all(), name
                continue
            groups = keep.movedim(1, -1).reshape(-1, 4)
            assert (groups.sum(1) == 2).all(), name
