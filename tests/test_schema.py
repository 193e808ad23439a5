"""The workflow's JSON schema and lth's hparams and analysis-settings dataclasses describe the same settings."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import pytest
import yaml
from workflow_helpers import REPO

from lth.analysis.registry import ANALYSES
from lth.experiments import experiment_configs
from lth.hparams import SECTIONS, Hparams
from lth.plan.config import CHAIN_KEYS, resolve_data_root
from lth.plan.graph import Plan

SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
JSON_TYPES = {int: "integer", float: "number", bool: "boolean", str: "string"}
BOUNDS = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")


def expected_property(hint: Any, field: dataclasses.Field) -> dict[str, Any]:
    """What the schema must say of a dataclass field: its type, default, allowed values and bounds
    (a list's bounds are its items')."""
    bounds, choices = field.metadata["bounds"], field.metadata["choices"]
    if typing.get_origin(hint) is tuple:
        items = {"type": JSON_TYPES[typing.get_args(hint)[0]], **bounds}
        return {"type": "array", "items": items, "default": list(field.default)}
    inner = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    kind = [JSON_TYPES[inner[0]], "null"] if inner else JSON_TYPES[hint]
    enum = {"enum": sorted(choices() if callable(choices) else choices)} if choices is not None else {}
    return {"type": kind, "default": field.default, **bounds, **enum}


def schema_property(prop: dict[str, Any]) -> dict[str, Any]:
    """The same words of a schema property (enum sorted, items reduced to their type and bounds)."""
    said = {key: prop[key] for key in ("type", "default", *BOUNDS) if key in prop}
    if "enum" in prop:
        said["enum"] = sorted(prop["enum"])
    if "items" in prop:
        said["items"] = {key: prop["items"][key] for key in ("type", *BOUNDS) if key in prop["items"]}
    return said


def planning_keys(name: str) -> set[str]:
    """The keys of an analysis' schema section that choose its jobs (lth/plan/analyses.py), not its settings."""
    analysis = ANALYSES[name]
    old = {"threshold"} if name == "activations" else set()  # refused by name (registry.check_activations)
    return (
        {"variants", "levels"}
        | ({"epochs"} if analysis.epochs else set())
        | ({"jobs"} if analysis.grid else set())
        | old
    )


SECTIONS_AND_ANALYSES = [
    *(
        pytest.param(
            SCHEMA["properties"][cls.section], cls, set(CHAIN_KEYS) if cls.section == "prune" else set(), id=cls.section
        )
        for cls in SECTIONS
    ),
    *(
        pytest.param(SCHEMA["properties"]["analysis"]["properties"][name], a.settings, planning_keys(name), id=name)
        for name, a in ANALYSES.items()
    ),
]


@pytest.mark.parametrize("schema, hparams, workflow_only", SECTIONS_AND_ANALYSES)
def test_schema_section_matches_dataclass(schema, hparams: type[Hparams], workflow_only):
    """Field by field: the same names, types, defaults, allowed values and bounds."""
    properties = schema["properties"]
    hints = typing.get_type_hints(hparams)
    fields = {field.name: field for field in dataclasses.fields(hparams)}
    assert set(properties) - workflow_only == set(fields)
    assert workflow_only <= set(properties)
    for name, field in fields.items():
        assert schema_property(properties[name]) == expected_property(hints[name], field), f"{hparams.section}.{name}"


def validated(path):
    """A config as the Snakefile sees it: checked against the schema, defaults filled."""
    from snakemake.utils import validate

    config = yaml.safe_load(path.read_text())
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    resolve_data_root(config, [path])
    return config


def test_every_config_validates():
    from snakemake.utils import validate

    for path in [REPO / "config.yaml", *sorted((REPO / "configs").glob("*.yaml"))]:
        for name, config in experiment_configs(yaml.safe_load(path.read_text())).items():
            validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
            resolve_data_root(config, [path])
            assert Plan.from_config(config).rows, (path, name)


def test_settings_of_an_unused_loss_term_do_not_split_the_cache():
    config = {**validated(REPO / "configs" / "quickstart.yaml"), "analysis": {}, "variants": ["lth"]}
    plain = Plan.from_config(config)
    config["train"] = {**config["train"], "kd_reduction": "mean", "label_smoothing_form": "pytorch"}
    assert set(Plan.from_config(config).sparse) == set(plain.sparse)  # kd and ls are off: same runs
    config["variants"] = ["ls"]
    smoothed = Plan.from_config(config)
    config["train"]["label_smoothing_form"] = "official"
    assert set(Plan.from_config(config).sparse) - set(smoothed.sparse)  # now the form matters


def test_how_a_job_runs_does_not_split_the_cache():
    """torch.compile changes how training runs, not what it computes. The quickstart's dense hash is
    pinned: a change to it would retrain every cached run."""
    config = validated(REPO / "configs" / "quickstart.yaml")
    plain = Plan.from_config(config)
    assert set(plain.dense) == {"dense-546dd78683"}
    config["train"] = {**config["train"], "compile": True}
    compiled = Plan.from_config(config)
    assert (set(compiled.dense), set(compiled.sparse)) == (set(plain.dense), set(plain.sparse))
