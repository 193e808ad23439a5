"""Mask sources and the reinit control in the run plan: every variant spent on every source's masks."""

from __future__ import annotations

import os
import shlex

import numpy as np
import pytest
import yaml
from test_plan import digits_config, plan

from lth.errors import LthError
from lth.experiments import experiment_configs
from lth.mask_registry import parse_masks
from lth.plan.arguments import job_count, prune_inputs, prune_options, prune_rounds, sparse_inputs
from lth.plan.config import resolve_data_root
from lth.plan.paths import folder, mask_path, mask_paths, reinit_points

SOURCES = [
    "magnitude",
    {"source": "random", "like": "magnitude", "label": "random_like"},
    "random",
    "snip",
    {"source": "synflow", "rounds": 10},
]


@pytest.fixture(autouse=True)
def fingerprint_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LTH_CACHE_DIR", str(tmp_path / "cache"))


def user_masks(folder, levels=(1, 2, 3), value=1):
    """Stand-ins for a user's mask files: planning reads only their bytes (lth prune checks them)."""
    folder.mkdir(parents=True, exist_ok=True)
    for level in levels:
        np.savez(folder / f"level{level}.npz", **{"conv1.weight": np.full((4, 3, 3, 3), value, dtype=bool)})
    return folder


def test_the_default_is_the_magnitude_chain_alone():
    default, listed = plan(digits_config()), plan(digits_config(masks=["magnitude"]))
    assert set(default.sparse) == set(listed.sparse) and set(default.chains) == set(listed.chains)
    # The keys runs had before mask sources existed: finished runs stay finished.
    assert set(default.chains) == {"imp-be30d09257"}
    assert {row.run.rsplit("/", 1)[1] for row in default.rows if row.level == 3} == {"sparse-984ffafdd8"}
    assert {row.mask_source for row in default.rows if row.level} == {"magnitude"}
    assert {row.mask_source for row in default.rows if not row.level} == {""}


def test_every_variant_is_spent_on_every_source(tmp_path):
    masks = [*SOURCES, {"source": "file", "path": str(user_masks(tmp_path / "m") / "level{level}.npz")}]
    planned = plan(digits_config(seeds=[0, 1], variants=["lth", "at+trt"], masks=masks))
    labels = ["magnitude", "random_like", "random", "snip", "synflow", "file"]
    for seed in (0, 1):
        rows = [row for row in planned.rows if row.seed == seed and row.level]
        assert list(dict.fromkeys(row.mask_source for row in rows)) == labels  # the config's order
        assert {(row.mask_source, row.variant, row.level) for row in rows} == {
            (label, variant, level) for label in labels for variant in ("lth", "at+trt") for level in (1, 2, 3)
        }
    methods = sorted(chain.method for chain in planned.chains.values())
    # A chain per seed; a user's file one per level.
    assert methods == sorted(["imp", "random", "random", "snip", "synflow", "file", "file", "file"] * 2)
    assert len({row.run for row in planned.rows}) == len(planned.rows)  # no two rows share a run


def test_prune_jobs_read_theta0_and_pass_the_sources_settings(tmp_path):
    masks = [*SOURCES, {"source": "file", "path": str(user_masks(tmp_path / "m") / "level{level}.npz")}]
    planned = plan(digits_config(seeds=[3], masks=masks))
    chains = {
        "random_like" if chain.like else f"file{level}" if chain.files else chain.method: chain
        for chain in planned.chains.values()
        for level in chain.files or [0]
    }
    theta0 = f"{folder(planned, chains['imp'].dense.key)}/init.pt"
    assert prune_inputs(planned, chains["snip"].key, 2) == {"weights": theta0}
    assert prune_inputs(planned, chains["random_like"].key, 2) == {
        "weights": theta0,
        "like": mask_path(planned, chains["imp"], 2),
    }  # the IMP mask of the same level and seed
    assert prune_inputs(planned, chains["file3"].key, 3) == {"weights": theta0}  # the file is no workflow input
    assert f"--file {tmp_path / 'm' / 'level3.npz'} " in prune_options(planned, chains["file3"].key, 3)
    assert prune_inputs(planned, chains["imp"].key, 2)["weights"].endswith("/final.pt")  # IMP is unchanged
    assert [prune_rounds(planned, chains[name].key, 3) for name in ("imp", "snip", "file3")] == [1, 3, 3]
    words = shlex.split(prune_options(planned, chains["snip"].key, 2))
    assert words[:8] == ["--method", "snip", "--seed", "3", "--batches", "1", "--batch-size", "128"]
    assert "--synflow-rounds 10" in prune_options(planned, chains["synflow"].key, 2)
    assert prune_options(planned, chains["imp"].key, 2).startswith("--method magnitude --prune.rate 0.2")


def test_a_random_mask_like_magnitude_draws_the_chain_without_its_rows():
    planned = plan(digits_config(masks=[{"source": "random", "like": "magnitude"}]))
    assert {chain.method for chain in planned.chains.values()} == {"imp", "random"}
    assert {row.mask_source for row in planned.rows if row.level} == {"random"}
    assert len(mask_paths(planned)) == 6  # the IMP levels it copies, and its own


def test_a_file_source_is_keyed_per_level_by_content_not_by_path(tmp_path):
    def runs(folder, **changes):
        config = digits_config(masks=["magnitude", {"source": "file", "path": str(folder / "level{level}.npz")}])
        planned = plan({**config, **changes})
        return {row.level: row.run for row in planned.rows if row.mask_source == "file"}

    first = runs(user_masks(tmp_path / "a"))
    assert runs(user_masks(tmp_path / "copy")) == first  # the same bytes elsewhere
    changed = user_masks(tmp_path / "b")
    user_masks(changed, levels=(3,), value=0)
    assert runs(changed) == {**first, 3: runs(changed)[3]} and runs(changed)[3] != first[3]  # only that level
    fewer = runs(tmp_path / "a", prune={"levels": [1, 3], "rate": 0.5})  # other levels, another rate
    assert fewer == {1: first[1], 3: first[3]}


def test_labels_name_series_and_never_enter_a_hash():
    first = plan(digits_config(masks=["snip"]))
    renamed = plan(digits_config(masks=[{"source": "snip", "label": "snip_one_batch"}]))
    assert set(first.sparse) == set(renamed.sparse)
    assert {row.mask_source for row in renamed.rows if row.level} == {"snip_one_batch"}
    more_batches = plan(digits_config(masks=[{"source": "snip", "batches": 2}]))
    assert set(first.sparse).isdisjoint(more_batches.sparse)


def test_a_relative_file_path_is_relative_to_the_config_that_sets_it(tmp_path, monkeypatch):
    config_file = tmp_path / "configs" / "mine.yaml"
    config_file.parent.mkdir()
    config_file.write_text(yaml.safe_dump({"masks": [{"source": "file", "path": "../masks/level{level}.npz"}]}))
    monkeypatch.chdir(tmp_path.parent)
    config = {**yaml.safe_load(config_file.read_text()), "experiment": "x"}
    resolve_data_root(config, [config_file])
    assert config["masks"][0]["path"] == os.path.join(tmp_path / "configs", "../masks/level{level}.npz")


def test_an_experiments_override_wins_over_a_later_files_base(tmp_path):
    """The experiment's value is its override's, even from an earlier file: the path is relative to that file."""
    first, second = tmp_path / "a" / "grid.yaml", tmp_path / "b" / "more.yaml"
    first.parent.mkdir()
    second.parent.mkdir()
    first.write_text(yaml.safe_dump({"experiments": {"e": {"masks": [{"source": "file", "path": "m{level}.npz"}]}}}))
    second.write_text(yaml.safe_dump({"masks": [{"source": "file", "path": "other{level}.npz"}]}))
    (config,) = experiment_configs({**yaml.safe_load(second.read_text()), **yaml.safe_load(first.read_text())}).values()
    resolve_data_root(config, [first, second])
    assert config["masks"][0]["path"] == str(tmp_path / "a" / "m{level}.npz")


@pytest.mark.parametrize(
    ("masks", "message"),
    [
        (["snip", {"source": "snip"}], "two entries are labelled 'snip'"),
        (["snipp"], r"masks\[0\]: source 'snipp' is not allowed; choose one of magnitude, random, snip"),
        ([{"source": "random", "like": "snip"}], r"masks\[0\].like: 'snip' is not allowed; choose one of magnitude"),
        ([{"source": "snip", "label": "SNIP"}], r"masks\[0\].label: 'SNIP' is not allowed"),
        ([{"source": "snip", "label": "nan"}], r"masks\[0\].label: 'nan' is not allowed.*tables read as empty"),
        ([{"source": "grasp", "batch_size": 0}], r"masks\[0\].batch_size: 0 is not allowed; must be an integer >= 1"),
        (
            [{"source": "synflow", "batches": 2}],
            r"masks\[0\].batches: not a setting of source 'synflow'; its settings: rounds",
        ),
        ([{"source": "file"}], r"masks\[0\]: source 'file' needs `path`"),
        ([{"source": "file", "path": "masks.npz"}], r"masks\[0\].path: 'masks.npz' has no \{level\}"),
        ([{"source": "file", "path": "m/{lvl}.npz"}], r"masks\[0\].path: 'm/\{lvl\}.npz' is not allowed"),
        ([{"source": "rigl", "sparsity": 0.9}], r"masks\[0\].sparsity: not a setting of a `masks` entry: each level"),
        ([{"source": "rigl", "alpha": 0.3}], r"masks\[0\].alpha: unknown key; allowed keys in 'rigl': sparsity"),
        ([{"source": "set", "drop_fraction": 0}], r"masks\[0\].drop_fraction: 0.0 is not allowed; must be > 0.0"),
        ([{"source": "rigl", "dense_layers": "last"}], r"masks\[0\].dense_layers: 'last' is not allowed without"),
        ([{"source": "gmp", "start": 0.8}], r"masks\[0\].end: 0.75 is not allowed; must be > gmp.start=0.8"),
        ([{"source": "gmp", "nm": "4:2"}], r"N:M sparsity 4:2 is not allowed: N and M must be whole numbers"),
        ([{"source": "nm", "n": 4, "m": 4}], r"masks\[0\]: n 4 and m 4 are not allowed; N:M needs 1 <= n < m"),
        ([{"source": "nm", "indivisible": "skip"}], r"masks\[0\].indivisible: 'skip' is not allowed; choose one of"),
        (["rigl", {"source": "snip", "label": "rigl_run"}], r"two entries are labelled 'rigl_run' \(a sparse training"),
    ],
)
def test_bad_mask_entries_are_named(masks, message):
    with pytest.raises(LthError, match=message):
        plan(digits_config(masks=masks))


def test_an_entry_of_another_type_is_named_without_the_schema():
    with pytest.raises(LthError, match=r"masks\[1\]: 3 is not allowed; give a source name"):
        parse_masks(["snip", 3])


def test_a_missing_level_file_fails_when_planning(tmp_path):
    folder = user_masks(tmp_path / "m", levels=(1, 2))
    with pytest.raises(LthError, match=r"masks\[1\].path: .*level3.npz does not exist: the mask of level 3"):
        plan(digits_config(masks=["magnitude", {"source": "file", "path": str(folder / "level{level}.npz")}]))


def test_scored_sources_refuse_a_layerwise_scope():
    with pytest.raises(LthError, match="prune.scope: 'layerwise' is not allowed with the mask sources snip"):
        plan(digits_config(prune={"levels": 2, "scope": "layerwise"}, masks=["magnitude", "snip"]))
    assert plan(
        digits_config(prune={"levels": 2, "scope": "layerwise"}, masks=[{"source": "random", "like": "magnitude"}])
    ).sparse


def test_reinit_differs_from_lth_only_in_its_initial_weights():
    planned = plan(digits_config(seeds=[2], variants=["lth", "reinit"], reinit_seed_offset=500))
    (dense,) = planned.dense
    runs = {row.variant: planned.sparse[row.run.rsplit("/", 1)[1]] for row in planned.rows if row.level == 3}
    lth, reinit = runs["lth"], runs["reinit"]
    assert reinit.key != lth.key and reinit.reinit_seed == 502 and lth.reinit_seed is None
    assert (reinit.chain, reinit.level, reinit.start_epoch, reinit.model, reinit.train, reinit.gradinit) == (
        lth.chain,
        lth.level,
        lth.start_epoch,
        lth.model,
        lth.train,
        lth.gradinit,
    )
    lth_inputs, reinit_inputs = sparse_inputs(planned, lth.key), sparse_inputs(planned, reinit.key)
    assert reinit_inputs == {**lth_inputs, "init": f"{folder(planned, dense)}/reinit/seed502.pt"}
    assert reinit_points(planned) == [f"{folder(planned, dense)}/reinit/seed502.pt"]
    assert job_count(planned)["reinit"] == 1


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (digits_config(variants=["reinit+rewind"]), "combines 'reinit' and 'rewind'"),
        (digits_config(dense_variants=["reinit+skip"]), "not from a reinit start"),
    ],
)
def test_reinit_conflicts_are_named(config, message):
    with pytest.raises(LthError, match=message):
        plan(config)


def test_analyses_read_the_first_sources_tickets():
    config = digits_config(masks=["magnitude", "snip"], analysis={"hessian": {"sample": 10}})
    planned = plan(config)
    runs = {job.run for job in planned.analyses.values()}
    snip_runs = {row.run.rsplit("/", 1)[1] for row in planned.rows if row.mask_source == "snip"}
    assert runs and runs.isdisjoint(snip_runs)
    assert len(runs) == 4  # the dense run and the three magnitude levels


def test_a_sparse_training_draws_each_level_and_its_own_runs_are_rows():
    """Each level's ticket is the final mask of the algorithm's vanilla run to the level's nominal
    sparsity, which every variant spends; each variant also runs the algorithm itself (`rigl_run`)."""
    planned = plan(digits_config(masks=[{"source": "rigl", "update_every": 50}], variants=["lth", "at+trt"]))
    rows = {
        (row.variant, row.level, row.mask_source): planned.sparse[row.run.rsplit("/", 1)[1]]
        for row in planned.rows
        if row.level
    }
    assert sorted(rows) == sorted(
        (v, level, s) for v in ("lth", "at+trt") for level in (1, 2, 3) for s in ("rigl", "rigl_run")
    )
    (chain,) = planned.chains.values()
    for level in (1, 2, 3):
        own = rows["lth", level, "rigl_run"]
        assert own.sparse_training.sparsity == pytest.approx(1 - 0.8**level)
        assert own.sparse_training.update_every == 50 and own.sparse_training.drop_fraction == 0.3
        assert prune_inputs(planned, chain.key, level) == {"weights": f"{folder(planned, own.key)}/final.pt"}
        assert "mask" not in sparse_inputs(planned, own.key)
        for variant in ("lth", "at+trt"):
            ticket = rows[variant, level, "rigl"]
            assert ticket.sparse_training is None and sparse_inputs(planned, ticket.key)["mask"] == mask_path(
                planned, chain, level
            )
        tweaked = rows["at+trt", level, "rigl_run"]
        assert (tweaked.model.activation, tweaked.sparse_training) == ("swish", own.sparse_training)
    assert job_count(planned)["train_sparse"] == 12 and job_count(planned)["prune"] == 3


def test_an_n_m_mask_is_drawn_once_from_the_trained_dense_network():
    planned = plan(digits_config(masks=["magnitude", {"source": "nm", "n": 2, "m": 4, "indivisible": "dense"}]))
    nm_rows = [row for row in planned.rows if row.mask_source == "nm"]
    assert [row.level for row in nm_rows] == [1]
    chain = next(chain for chain in planned.chains.values() if chain.method == "nm")
    (dense,) = planned.dense
    assert prune_inputs(planned, chain.key, 1) == {"weights": f"{folder(planned, dense)}/final.pt"}
    assert "--method nm" in prune_options(planned, chain.key, 1) and "--nm-indivisible dense" in prune_options(
        planned, chain.key, 1
    )


def test_a_new_algorithm_setting_at_its_default_renames_nothing():
    """The run names of a sparse training hold only the settings that differ from a default added
    later (`hashed: unless_default`), like every other run's."""
    base = plan(digits_config(masks=[{"source": "gmp"}]))
    same = plan(digits_config(masks=[{"source": "gmp", "nm": "", "indivisible": "refuse"}]))
    assert set(base.chains) == set(same.chains) and set(base.sparse) == set(same.sparse)


def test_a_sparse_training_draws_its_tickets_without_an_lth_variant():
    """The vanilla own run draws each level's ticket even where no row asks for it."""
    planned = plan(digits_config(masks=["set"], variants=["at+trt"]))
    (chain,) = planned.chains.values()
    drawing = [planned.algorithm_run(chain, level).key for level in (1, 2, 3)]
    assert set(drawing) <= set(planned.sparse) and job_count(planned)["train_sparse"] == 9
    assert not {row.run.rsplit("/", 1)[1] for row in planned.rows} & set(drawing)
