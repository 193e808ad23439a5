"""Every shipped config plans exactly the run folders and artifacts it planned when they were pinned.

A run folder is named by a hash of what it computes, so a refactor that changes a hash (a new setting
entering it, a renamed key, another order) silently orphans every finished run of every user. The pinned
lists in tests/data/planned_runs.json were recorded from the code before the registries and the planning
split (issue #26); `python tests/test_planned_runs.py` rewrites them, for a change that means to rename runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from snakemake.utils import validate

from lth.experiments import experiment_configs
from lth.yamlio import read_yaml

REPO = Path(__file__).resolve().parents[1]
PINNED = REPO / "tests" / "data" / "planned_runs.json"
SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")
CONFIGS = ["config.yaml", *sorted(str(path.relative_to(REPO)) for path in (REPO / "configs").glob("*.yaml"))]


def planned(config_file: str) -> dict[str, list[str]]:
    """What the workflow plans for `config_file` as the Snakefile reads it (run from the repository
    root): every artifact path under results/, by kind, and every summary row."""
    from lth.plan import paths
    from lth.plan.config import resolve_data_root
    from lth.plan.graph import Plan

    path = REPO / config_file
    configs = experiment_configs(read_yaml(path))
    plans = {}
    for name, config in configs.items():
        validate(config, SCHEMA)
        resolve_data_root(config, [path])
        plans[name] = Plan.from_config(config)
    merged = Plan.merge(list(plans.values()))
    return {
        "dense": sorted(paths.folder(merged, key) for key in merged.dense),
        "chains": sorted(paths.folder(merged, key) for key in merged.chains),
        "sparse": sorted(paths.folder(merged, key) for key in merged.sparse),
        "masks": paths.mask_paths(merged),
        "rewind_points": sorted(paths.rewind_points(merged)),
        "reinit_points": paths.reinit_points(merged),
        "snapshots": paths.snapshots(merged),
        "analyses": sorted(merged.analyses),
        "rows": [
            f"{name}:{row.seed}:{row.variant}:{row.level}:{row.mask_source}:{row.run}"
            for name, plan in plans.items()
            for row in plan.rows
        ],
    }


@pytest.fixture(autouse=True)
def from_repository_root(monkeypatch, tmp_path):
    monkeypatch.chdir(REPO)  # relative data roots resolve as the README's commands see them
    monkeypatch.setenv("LTH_CACHE_DIR", str(tmp_path / "cache"))


@pytest.mark.parametrize("config_file", CONFIGS)
def test_shipped_configs_plan_the_pinned_run_folders(config_file):
    pinned = json.loads(PINNED.read_text())
    assert config_file in pinned, f"{config_file} is not pinned: run python tests/test_planned_runs.py"
    now = planned(config_file)
    for kind, paths in pinned[config_file].items():
        assert now[kind] == paths, f"{config_file}: the planned {kind} changed"
    assert sum(map(len, now.values())) > 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    PINNED.parent.mkdir(exist_ok=True)
    PINNED.write_text(json.dumps({name: planned(name) for name in CONFIGS}, indent=0) + "\n")
    print(f"wrote {PINNED}")
