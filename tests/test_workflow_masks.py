"""End to end: a tiny experiment spends lth, at+trt and reinit on magnitude, random, SNIP and a user's masks."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from workflow_helpers import REPO, dry_run_commands, planned_jobs, snakemake, write_config

from lth.checkpoints import load_checkpoint
from lth.masks import load_mask

pytestmark = pytest.mark.workflow

SOURCES = ["magnitude", "random_like", "snip", "file"]
VARIANTS = ["lth", "at+trt", "reinit"]
KEPT = 0.4  # prune.rate 0.6, level 1


def any_mask_config(**changes) -> dict:
    return {
        "experiment": "any",
        "seeds": [0],
        "threads": 1,
        "device": "cpu",
        "model": {"name": "resnet18", "width": 4},
        "data": {"name": "digits", "subset_per_class": 20},
        "train": {"epochs": 2, "batch_size": 32},
        "gradinit": {"iterations": 3, "batch_size": 32},
        "prune": {"method": "imp", "levels": [1], "rate": 0.6},
        "masks": [
            "magnitude",
            {"source": "random", "like": "magnitude", "label": "random_like"},
            "snip",
            {"source": "file", "path": "masks/level{level}.npz"},
        ],  # relative to the config file
        "variants": VARIANTS,
        "resources": {"train": {"mem_mb": 1000}},
        **changes,
    }


def write_user_masks(folder, seed: int) -> dict[str, np.ndarray]:
    """A user's mask for level 1: each prunable tensor of the network keeps a random 30%."""
    from lth import data
    from lth.checkpoints import build_model
    from lth.hparams import DataHparams, ModelHparams
    from lth.masks import prunable_names

    model = build_model(ModelHparams(name="resnet18", width=4), data.num_classes(DataHparams(name="digits")))
    params = dict(model.named_parameters())
    rng = np.random.default_rng(seed)
    masks = {name: rng.random(tuple(params[name].shape)) < 0.3 for name in prunable_names(model, False)}
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "level1.npz", **masks)
    return masks


@pytest.fixture(scope="module")
def spent(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("any_mask")
    user = write_user_masks(workdir / "masks", seed=0)
    config = write_config(workdir, "any", any_mask_config())
    snakemake(workdir, config)
    table = pd.read_csv(workdir / "results" / "any" / "summary.csv", dtype={"mask_source": str})
    return workdir, config, table, user


def run_of(workdir, table: pd.DataFrame, source: str, variant: str):
    rows = table[(table["mask_source"] == source) & (table["variant"] == variant)]
    return workdir / rows["run"].item()


def record(run) -> dict:
    return yaml.safe_load((run / "hparams.yaml").read_text())


def mask_of(workdir, run) -> dict[str, torch.Tensor]:
    """The mask run `run` trained with, from its own record."""
    return load_mask(workdir / record(run)["mask"]["path"])


def test_every_variant_is_spent_on_every_source(spent):
    workdir, _, table, _ = spent
    sparse = table[table["variant"] != "dense"]
    assert sorted(zip(sparse["mask_source"], sparse["variant"])) == sorted(
        (source, variant) for source in SOURCES for variant in VARIANTS
    )
    assert table.loc[table["variant"] == "dense", "mask_source"].isna().all()
    for source in ("magnitude", "random_like", "snip"):  # IMP level 1's count, whatever drew the mask
        plain = sparse[(sparse["mask_source"] == source) & (sparse["variant"] != "at+trt")]
        assert plain["sparsity_pct"].to_numpy() == pytest.approx(100 * (1 - KEPT), abs=1e-2)
    assert (workdir / "results" / "any" / "figures" / "any_mask.png").stat().st_size > 0
    tickets = pd.read_csv(workdir / "results" / "any" / "tickets.csv", dtype={"mask_source": str})
    assert set(tickets.loc[tickets["statistic"] == "gain", "mask_source"]) == set(SOURCES)


def test_the_masks_are_the_sources_own(spent):
    workdir, _, table, user = spent
    masks = {source: mask_of(workdir, run_of(workdir, table, source, "lth")) for source in SOURCES}
    assert {name: bool(keep.equal(torch.from_numpy(user[name]))) for name, keep in masks["file"].items()} == {
        name: True for name in user
    }
    assert {name: int(keep.sum()) for name, keep in masks["random_like"].items()} == {
        name: int(keep.sum()) for name, keep in masks["magnitude"].items()
    }  # the random-pruning control
    assert not all(masks["random_like"][name].equal(masks["magnitude"][name]) for name in masks["magnitude"])
    assert not all(masks["snip"][name].equal(masks["magnitude"][name]) for name in masks["magnitude"])
    for source in SOURCES:  # every variant trains with the same mask, and keeps it exactly
        for variant in VARIANTS:
            run = run_of(workdir, table, source, variant)
            weights = load_checkpoint(run / "final.pt")["state_dict"]
            for name, keep in masks[source].items():
                assert mask_of(workdir, run)[name].equal(keep)
                assert not weights[name][~keep].any(), (source, variant, name)


def test_reinit_starts_from_another_seeds_weights(spent):
    workdir, _, table, _ = spent
    lth, reinit = (run_of(workdir, table, "file", variant) for variant in ("lth", "reinit"))
    (dense,) = table.loc[table["variant"] == "dense", "run"]
    assert record(reinit)["init"]["path"] == f"{dense}/reinit/seed1000.pt"  # seed 0 + reinit_seed_offset
    assert record(lth)["init"]["path"] == f"{dense}/init.pt"
    assert {key: value for key, value in record(reinit).items() if key != "init"} == {
        key: value for key, value in record(lth).items() if key != "init"
    }
    theta0 = load_checkpoint(workdir / dense / "init.pt")["state_dict"]
    fresh = load_checkpoint(workdir / dense / "reinit" / "seed1000.pt")["state_dict"]
    assert set(theta0) == set(fresh) and not theta0["conv1.weight"].equal(fresh["conv1.weight"])


def test_the_cache_reruns_only_the_source_that_changed(spent, tmp_path):
    workdir, config, _, _ = spent
    os.utime(workdir / "masks" / "level1.npz")  # touched, same bytes: nothing to do
    assert planned_jobs(workdir, config) == {}
    shutil.copytree(workdir / "masks", workdir / "moved")  # the same bytes elsewhere: nothing to do either
    moved = write_config(
        workdir,
        "moved",
        any_mask_config(masks=[*any_mask_config()["masks"][:3], {"source": "file", "path": "moved/level{level}.npz"}]),
    )
    assert planned_jobs(workdir, moved) == {}
    changed = {
        "masks": [
            "magnitude",
            {"source": "random", "like": "magnitude", "label": "random_like"},
            {"source": "snip", "batches": 2},
            {"source": "file", "path": "masks/level{level}.npz"},
        ]
    }
    tables = {"aggregate": 1, "tickets": 1, "plot_accuracy_vs_sparsity": 1, "plot_paper_figure": 2, "all": 1}
    edited = write_config(workdir, "snip2", any_mask_config(**changed))
    assert planned_jobs(workdir, edited) == {"prune": 1, "train_sparse": len(VARIANTS), **tables}
    write_user_masks(workdir / "masks2", seed=1)  # another user's file: only its runs are new
    other = write_config(
        workdir,
        "file2",
        any_mask_config(masks=[*any_mask_config()["masks"][:3], {"source": "file", "path": "masks2/level{level}.npz"}]),
    )
    assert planned_jobs(workdir, other) == {"prune": 1, "train_sparse": len(VARIANTS), **tables}


def test_a_second_config_file_adds_your_masks_to_a_shipped_config(tmp_path):
    """The README's way: `--configfile configs/any-mask.yaml mine.yaml` from the repository root, the
    file's path relative to mine.yaml."""
    write_user_masks(tmp_path / "my_masks", seed=0)
    (tmp_path / "my_masks" / "level1.npz").rename(tmp_path / "my_masks" / "level2.npz")
    write_user_masks(tmp_path / "my_masks", seed=1)
    mine = tmp_path / "mine.yaml"
    mine.write_text('masks:\n  - magnitude\n  - {source: file, path: "my_masks/level{level}.npz"}\n')
    commands, _ = dry_run_commands(REPO, "--configfile", "configs/any-mask.yaml", str(mine))
    reads = sorted(command.split("--file ", 1)[1].split()[0] for command in commands if "--method file" in command)
    assert reads == [str(tmp_path / "my_masks" / f"level{level}.npz") for level in (1, 2)]
    assert (
        sum("lth train" in command and "--mask " in command for command in commands) == 2 * 3 * 2
    )  # sources x variants x levels
