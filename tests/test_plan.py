"""The run plan: what keys a run's folder, what a config may set, which rewind points it keeps."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from snakemake.utils import validate
from workflow_helpers import REPO

from lth.errors import LthError
from lth.experiments import experiment_configs
from lth.hparams import TrainHparams, hp
from lth.plan import graph
from lth.plan.arguments import job_count, training_inputs
from lth.plan.config import PlanError, resolve_data_root
from lth.plan.graph import Plan
from lth.plan.paths import folder, kept_epochs, mask_paths, rewind_points

SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")


def plan(config: dict) -> Plan:
    """A config as the Snakefile sees it: checked against the schema, defaults filled, planned."""
    config = yaml.safe_load(yaml.safe_dump(config))  # a deep copy
    validate(config, SCHEMA)
    return Plan.from_config(config)


def npz_folder(folder: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for split, n in (("train", 20), ("test", 10)):
        np.savez(
            folder / f"{split}.npz", images=rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8), labels=np.arange(n) % 2
        )
    return folder


def npz_config(root: Path, **changes) -> dict:
    return {
        "experiment": "x",
        "data": {"name": "npz", "root": str(root)},
        "train": {"epochs": 3},
        "prune": {"levels": 2},
        **changes,
    }


@pytest.fixture(autouse=True)
def fingerprint_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LTH_CACHE_DIR", str(tmp_path / "cache"))


def test_data_is_keyed_by_content_not_by_location(tmp_path):
    original = npz_folder(tmp_path / "a", seed=0)
    moved = tmp_path / "elsewhere" / "a"
    shutil.copytree(original, moved)
    other = npz_folder(tmp_path / "b", seed=1)
    assert set(plan(npz_config(original)).dense) == set(plan(npz_config(moved)).dense)
    assert set(plan(npz_config(original)).dense).isdisjoint(plan(npz_config(other)).dense)


def test_canonical_datasets_are_keyed_by_name_wherever_their_root_is():
    first = plan({"experiment": "x", "data": {"name": "cifar100", "root": "/nowhere/a"}})
    second = plan({"experiment": "x", "data": {"name": "cifar100", "root": "/nowhere/b", "download": True}})
    assert set(first.dense) == set(second.dense)


def test_missing_user_data_fails_when_planning(tmp_path):
    with pytest.raises(LthError, match="train.npz"):
        plan(npz_config(tmp_path / "missing"))


def test_relative_data_root_is_relative_to_the_config_file(tmp_path, monkeypatch):
    folder = tmp_path / "experiments"
    folder.mkdir()
    config_file = folder / "exp.yaml"
    config_file.write_text(yaml.safe_dump({"experiment": "x", "data": {"name": "npz", "root": "../data"}}))
    monkeypatch.chdir(REPO)  # any working directory
    config = yaml.safe_load(config_file.read_text())
    resolve_data_root(config, [config_file])
    assert config["data"]["root"] == str(tmp_path / "data")


def test_an_experiments_relative_data_root_is_relative_to_its_config_file(tmp_path, monkeypatch):
    config_file = tmp_path / "configs" / "grid.yaml"
    config_file.parent.mkdir()
    config_file.write_text(
        yaml.safe_dump(
            {
                "data": {"name": "npz"},
                "experiments": {"a": {"data": {"root": "../data/a"}}, "b": {"data": {"root": "/elsewhere/b"}}},
            }
        )
    )
    monkeypatch.chdir(REPO)
    configs = experiment_configs(yaml.safe_load(config_file.read_text()))
    for config in configs.values():
        resolve_data_root(config, [config_file])
    assert [c["data"]["root"] for c in configs.values()] == [str(tmp_path / "data" / "a"), "/elsewhere/b"]


@pytest.mark.parametrize(
    "section, key, value, part",
    [
        ("gradinit", "enabled", True, "gradinit"),
        ("train", "label_smoothing", 0.1, "ls"),
        ("train", "kd_alpha", 0.5, "kd"),
        ("model", "activation", "swish", "swish"),
        ("model", "skip", "conv1x1", "skip"),
    ],
)
def test_a_tweak_in_a_base_section_is_rejected(section, key, value, part):
    """Base sections train the dense network and draw the ticket: a tweak there would leak into both."""
    config = {"experiment": "x", "data": {"name": "digits"}, section: {key: value}}
    with pytest.raises(PlanError, match=rf"{section}\.{key}.*`{part}` part"):
        plan(config)


def test_settings_of_a_tweak_stay_configurable():
    config = {
        "experiment": "x",
        "data": {"name": "digits"},
        "gradinit": {"iterations": 5, "batch_size": 256},
        "train": {"label_smoothing_form": "pytorch", "kd_reduction": "mean"},
        "variants": ["trt", "kd"],
    }
    assert plan(config).sparse


def test_rewind_points_come_from_the_variants_and_the_chain():
    base = {"experiment": "x", "data": {"name": "digits"}, "train": {"epochs": 10}, "prune": {"levels": 1}}
    assert rewind_points(plan(base)) == []
    with_rewind = plan({**base, "variants": ["lth", "rewind"], "rewind_epoch": 3, "save_epochs": [5]})
    (dense,) = with_rewind.dense
    assert with_rewind.rewind_epochs == {3, 5}
    chain = plan({**base, "prune": {"levels": 1, "rewind_epoch": 2}})
    assert rewind_points(chain) == [f"results/runs/{dense}/rewind/epoch2.pt"]  # the same dense run
    with pytest.raises(PlanError, match="rewind_epoch: 10"):
        plan({**base, "variants": ["rewind"], "rewind_epoch": 10})


def test_rewind_points_do_not_change_any_run_key():
    base = {
        "experiment": "x",
        "data": {"name": "digits"},
        "train": {"epochs": 10},
        "prune": {"levels": 2},
        "variants": ["lth", "rewind"],
        "rewind_epoch": 3,
    }
    first, later = plan(base), plan({**base, "save_epochs": [4, 6]})
    assert (set(first.dense), set(first.chains), set(first.sparse)) == (
        set(later.dense),
        set(later.chains),
        set(later.sparse),
    )


def digits_config(**changes) -> dict:
    return {
        "experiment": "x",
        "data": {"name": "digits"},
        "train": {"epochs": 3},
        "prune": {"levels": 3},
        "variants": ["lth"],
        **changes,
    }


def test_explicit_levels_skip_rows_but_not_the_chain():
    counted = plan(digits_config())
    listed = plan(digits_config(prune={"levels": [1, 3]}))
    assert sorted({row.level for row in listed.rows}) == [0, 1, 3]
    rows = {row.level: row.run for row in counted.rows if row.variant == "lth"}
    assert {row.level: row.run for row in listed.rows if row.variant == "lth"} == {1: rows[1], 3: rows[3]}
    assert len(mask_paths(listed)) == 3  # IMP trains level 2 to draw level 3
    one_shot = plan(digits_config(prune={"method": "omp", "levels": [2, 4]}))
    assert [Path(path).parent.name for path in mask_paths(one_shot)] == ["level2", "level4"]


def test_dense_variants_train_from_theta0_and_never_feed_a_mask():
    base = plan(digits_config())
    with_baselines = plan(digits_config(dense_variants=["skip", "trt"]))
    assert set(base.dense) < set(with_baselines.dense)
    assert set(base.chains) == set(with_baselines.chains) and set(base.sparse) == set(with_baselines.sparse)
    (dense,) = base.dense
    baselines = {
        row.variant: row.run.rsplit("/", 1)[1]
        for row in with_baselines.rows
        if row.variant != "dense" and row.level == 0
    }
    assert set(baselines) == {"dense+skip", "dense+trt"}
    skip, trt = (with_baselines.dense[baselines[name]] for name in ("dense+skip", "dense+trt"))
    assert skip.model.skip == "conv1x1" and trt.gradinit.enabled and trt.train.label_smoothing == 0.1
    assert training_inputs(with_baselines, skip.key) == {"init": f"{folder(with_baselines, dense)}/init.pt"}
    assert kept_epochs(with_baselines, skip.key) == [] and job_count(with_baselines)["init"] == 1


@pytest.mark.parametrize(
    ("name", "message"),
    [("lth", "no tweak"), ("rewind+skip", "theta0"), ("kd", "teacher"), ("skip+bogus", "unknown part 'bogus'")],
)
def test_bad_dense_variants_are_named(name, message):
    with pytest.raises(LthError, match=rf"dense_variants: '{re.escape(name)}'.*{message}"):
        plan(digits_config(dense_variants=[name]))


def test_experiments_share_the_runs_their_settings_agree_on():
    config = {
        "seeds": [0],
        "data": {"name": "digits"},
        "train": {"epochs": 3},
        "prune": {"levels": 2},
        "variants": ["lth"],
        "experiments": {"plain": None, "tweaked": {"variants": ["lth", "skip"]}, "wider": {"model": {"width": 32}}},
    }
    configs = experiment_configs(config)
    assert list(configs) == ["plain", "tweaked", "wider"] and configs["tweaked"]["experiment"] == "tweaked"
    plans = {name: plan(experiment) for name, experiment in configs.items()}
    assert set(plans["plain"].sparse) < set(plans["tweaked"].sparse)
    assert set(plans["plain"].dense).isdisjoint(plans["wider"].dense)
    merged = Plan.merge(list(plans.values()))
    assert set(merged.sparse) == set().union(*(p.sparse for p in plans.values()))
    assert len(merged.rewind) == 2


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"experiments": []}, "experiments: \\[\\] is not allowed"),
        ({"experiments": {"a": {"threads": 4}}}, "experiments.a.threads: not allowed"),
        ({"experiments": {"a b": {}}}, "the name 'a b' is not allowed"),
        ({"experiments": {"runs": {}}}, "the name 'runs' is not allowed"),
        ({"experiment": "x", "experiments": {"a": {}}}, "experiment: 'x' is not allowed beside"),
        ({"experiments": {"a": [1]}}, "experiments.a: \\[1\\] is not allowed"),
    ],
)
def test_bad_experiments_sections_are_named(config, message):
    with pytest.raises(LthError, match=message):
        experiment_configs(config)


@dataclasses.dataclass(frozen=True)
class TrainWithNewSetting(TrainHparams):
    """A training setting added after the run names were pinned, as lth/hparams.py asks for one."""

    new_setting: float = hp(0.0, "a setting added later", hashed="unless_default")


def test_a_new_setting_at_its_default_renames_no_run(monkeypatch):
    config = yaml.safe_load(yaml.safe_dump(digits_config(variants=["lth", "ls"], dense_variants=["skip"])))
    validate(config, SCHEMA)
    before = plan_folders(Plan.from_config(config))
    monkeypatch.setattr(graph, "TrainHparams", TrainWithNewSetting)
    assert plan_folders(Plan.from_config(config)) == before
    config["train"] = {**config["train"], "new_setting": 0.5}
    changed = plan_folders(Plan.from_config(config))
    assert changed["dense"].isdisjoint(before["dense"]) and changed["sparse"].isdisjoint(before["sparse"])


def plan_folders(planned: Plan) -> dict[str, set[str]]:
    return {"dense": set(planned.dense), "chains": set(planned.chains), "sparse": set(planned.sparse)}
