"""The workflow's JSON schema and lth's hparams dataclasses describe the same settings."""

from __future__ import annotations

import dataclasses

import pytest
import yaml
from workflow_helpers import REPO

from lth.experiments import experiment_configs
from lth.hparams import SECTIONS, Hparams
from lth.plan import CHAIN_KEYS, Plan, resolve_data_root

SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())


@pytest.mark.parametrize("hparams", SECTIONS, ids=lambda cls: cls.section)
def test_schema_section_matches_dataclass(hparams: type[Hparams]):
    properties = SCHEMA["properties"][hparams.section]["properties"]
    workflow_only = set(CHAIN_KEYS) if hparams.section == "prune" else set()
    fields = {field.name: field for field in dataclasses.fields(hparams)}
    assert set(properties) - workflow_only == set(fields)
    for name, field in fields.items():
        default = list(field.default) if isinstance(field.default, tuple) else field.default
        assert properties[name]["default"] == default, name
        choices = field.metadata["choices"]
        if choices is not None and "enum" in properties[name]:
            assert sorted(properties[name]["enum"]) == sorted(choices() if callable(choices) else choices), name


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
