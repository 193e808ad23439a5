"""Every registry's names agree with the schema, the command line and the workflow.

Each extension point is one registry (README, "Extending lth"); the schema that validates a config,
the `lth` flags and the workflow rules must offer exactly the names it holds, or a new entry would be
refused by one of them, or an old name accepted by one after its entry is gone.
"""

from __future__ import annotations

import argparse
import dataclasses

import pytest
import yaml
from workflow_helpers import REPO

from lth.cli import build_parser
from lth.hparams import SECTIONS, DataHparams, ModelHparams

SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
PROPERTIES = SCHEMA["properties"]


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    return dict(action.choices)


def option(parser: argparse.ArgumentParser, dest: str) -> argparse.Action:
    (action,) = [action for action in parser._actions if action.dest == dest]
    return action


def field_choices(hparams: type, name: str) -> list[str]:
    (field,) = [field for field in dataclasses.fields(hparams) if field.name == name]
    choices = field.metadata["choices"]
    return sorted(choices() if callable(choices) else choices)


COMMANDS = subcommands(build_parser())


def test_models_activations_and_skip_forms():
    import lth.models as models
    from lth.models.activations import ACTIVATIONS
    from lth.models.skip import jump_factory

    assert sorted(models.names()) == field_choices(ModelHparams, "name")
    assert sorted(ACTIVATIONS) == field_choices(ModelHparams, "activation")
    assert [form for form in field_choices(ModelHparams, "skip") if jump_factory(form)] == ["conv1x1", "identity"]
    model = PROPERTIES["model"]["properties"]
    for name in ("name", "activation", "skip"):
        assert sorted(model[name]["enum"]) == field_choices(ModelHparams, name), name


def test_datasets():
    from lth.data.identity import CANONICAL, FINGERPRINTED
    from lth.data.sources import SOURCES

    assert sorted(SOURCES) == field_choices(DataHparams, "name")
    assert sorted(PROPERTIES["data"]["properties"]["name"]["enum"]) == sorted(SOURCES)
    assert set(SOURCES) == CANONICAL | FINGERPRINTED


def test_variant_parts_set_settings_that_exist():
    from lth.variants import ALIASES, PARTS

    sections = {hparams.section: hparams for hparams in SECTIONS}
    for part, settings in PARTS.items():
        for key, value in settings.items():
            if key == "start":
                assert value in ("rewind", "reinit"), part
                continue
            section, _, name = key.partition(".")
            sections[section].from_dict({name: value})  # an unknown key or a value not allowed raises
    assert all(set(parts) <= set(PARTS) for parts in ALIASES.values())
    assert not set(PARTS) & set(ALIASES)


def test_mask_sources():
    from lth.errors import LthError
    from lth.mask_registry import MASK_SOURCES, parse_masks, source_flags

    described = " ".join(PROPERTIES["masks"]["description"].split())
    assert f"A source name ({', '.join(MASK_SOURCES)})" in described
    options = {name: action for action in COMMANDS["prune"]._actions for name in action.option_strings}
    assert tuple(options["--method"].choices) == tuple(MASK_SOURCES)
    for name, source in MASK_SOURCES.items():
        if source.algorithm:  # a sparse training: its settings are its hparams (lth/sparse/settings.py)
            assert source.algorithm == name and name in described
            with pytest.raises(LthError, match=f"unknown key; allowed keys in '{name}'"):
                parse_masks([{"source": name, "unknown_setting": 1}])
            continue
        settings = {s.name: "x{level}" if s.required else s.default for s in source.settings}
        (spec,) = parse_masks([{"source": name, **settings}])
        assert set(spec.settings) == {setting.name for setting in source.settings}
        for setting in source.settings:
            flag = options[f"--{setting.flag}"]
            assert name in flag.help.split(":")[0].split(", ") and flag.default == setting.default
            if setting.default is not None:
                assert f"{setting.name}: {setting.default}" in described, (name, setting.name)
        with pytest.raises(LthError, match="not a setting of source"):
            parse_masks([{"source": name, "unknown_setting": 1}])
    flags = [setting.flag for setting, _ in source_flags().values()]
    assert flags == ["like", "file", "batches", "batch-size", "synflow-rounds", "nm-n", "nm-m", "nm-indivisible"]
    assert all(source.draw() is not None for name, source in MASK_SOURCES.items() if name != "magnitude")


def test_trackers():
    from lth.analysis.registry import ANALYSES
    from lth.trackers import TRACKERS

    assert sorted(option(COMMANDS["train"], "track").choices) == sorted(TRACKERS)
    tracked = {analysis.tracker for analysis in ANALYSES.values() if analysis.tracker}
    assert tracked and tracked <= set(TRACKERS)  # the workflow's track_<tracker> rules


def test_figures():
    from lth.analysis.registry import ANALYSES
    from lth.report.registry import ANALYSIS_FIGURES, FIGURES

    assert sorted(option(COMMANDS["figure"], "name").choices) == sorted(FIGURES)
    drawn = [analysis.figure for analysis in ANALYSES.values()]
    assert sorted(drawn) == sorted(ANALYSIS_FIGURES)  # each analysis figure belongs to one analysis


def test_analyses():
    from lth.analysis.registry import ANALYSES
    from lth.report.collect import READERS

    assert sorted(PROPERTIES["analysis"]["propertyNames"]["enum"]) == sorted(ANALYSES)
    assert sorted(PROPERTIES["analysis"]["properties"]) == sorted(ANALYSES)
    assert sorted(READERS) == sorted(ANALYSES)
    analyze = subcommands(COMMANDS["analyze"])
    commands = {analysis.command for analysis in ANALYSES.values() if analysis.command}
    assert set(analyze) - {"collect", "merge"} == commands
    for name, analysis in ANALYSES.items():  # the settings that draw an analysis' samples exist
        fields = {field.name for field in dataclasses.fields(analysis.settings)}
        assert {analysis.train_sample, analysis.test_sample} - {None} <= fields, name


@pytest.mark.parametrize("config", sorted((REPO / "configs").glob("*.yaml")), ids=lambda path: path.name)
def test_shipped_configs_use_registered_names_only(config):
    """A shipped config names only what the registries hold (the schema would refuse it otherwise,
    but only when a user runs it)."""
    from lth.analysis.registry import ANALYSES
    from lth.variants import ALIASES, PARTS

    text = yaml.safe_load(config.read_text())
    sections = [text, *(text.get("experiments") or {}).values()]
    for section in sections:
        for variant in (section or {}).get("variants", []):
            assert set(variant.split("+")) <= set(PARTS) | set(ALIASES), variant
        assert set((section or {}).get("analysis") or {}) <= set(ANALYSES)
