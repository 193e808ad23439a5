"""The `analysis` config section: which runs get which analysis, and bad input caught when planning."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate
from workflow_helpers import REPO

from lth.analysis.activations import (
    DEFAULT_THRESHOLDS,
    THRESHOLD_MINIMUM,
    THRESHOLD_RULE,
)
from lth.analysis.registry import (
    ANALYSES,
    AnalysisConfigError,
    HessianSettings,
    LandscapeSettings,
    PerturbationSettings,
)
from lth.plan.analyses import resolve_levels
from lth.plan.arguments import analysis_inputs
from lth.plan.graph import Plan
from lth.plan.paths import kept_epochs, snapshot

SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")


def plan(analysis: dict, **changes) -> Plan:
    config = {
        "experiment": "x",
        "data": {"name": "digits"},
        "train": {"epochs": 10},
        "prune": {"levels": 12, "rate": 0.2},
        "variants": ["lth", "swish", "rewind"],
        "rewind_epoch": 3,
        "seeds": [0, 1],
        "analysis": analysis,
        **changes,
    }
    config = yaml.safe_load(yaml.safe_dump(config))
    validate(config, SCHEMA)
    return Plan.from_config(config)


def selected(result: Plan, name: str) -> set[tuple[int, str, int, int]]:
    return {(s.seed, s.variant, s.level, s.epoch) for job in result.analysis_jobs(name) for s in job.subjects}


def test_a_target_sparsity_picks_the_nearest_level_on_the_log_scale():
    levels = list(range(1, 17))
    assert resolve_levels("k", [0.91], levels, 0.2) == [11]  # 1 - 0.8^11 = 91.4%
    assert resolve_levels("k", [0.5, 0, 3], levels, 0.2) == [0, 3]  # 0.5 -> level 3 (48.8%)
    assert resolve_levels("k", "all", [1, 2], 0.2) == [0, 1, 2]
    with pytest.raises(AnalysisConfigError, match=r"k\[0\]: sparsity 0.99 is not allowed.*12 \(93.1%\)"):
        resolve_levels("k", [0.99], levels[:12], 0.2)  # level 12 is 93.1%, level 13 would be 94.5%
    with pytest.raises(AnalysisConfigError, match=r"k\[1\]: level 13 is not allowed.*0, 1, 2, .*, 12 \(0 = dense\)"):
        resolve_levels("k", [1, 13], levels[:12], 0.2)


def test_a_target_sparsity_picks_among_the_listed_levels_only():
    assert resolve_levels("k", [0.89], [1, 4, 7, 10, 12], 0.2) == [10]  # 89.3%
    with pytest.raises(AnalysisConfigError, match=r"sparsity 0.91 is not allowed"):  # level 11 is not run
        resolve_levels("k", [0.91], [1, 4, 7, 10, 12], 0.2)
    assert resolve_levels("k", "all", [2, 5], 0.2) == [0, 2, 5]
    with pytest.raises(AnalysisConfigError, match=r"k\[0\]: level 3 is not allowed; this experiment has levels 0, 2"):
        resolve_levels("k", [3], [2, 5], 0.2)


def test_variants_levels_and_epochs_select_the_runs():
    result = plan(
        {
            "activations": {"variants": ["lth", "swish"]},
            "hessian": {},
            "landscape": {"variants": ["swish"], "levels": [0.91], "epochs": [5, "final"], "sample": 100},
        }
    )
    activations = selected(result, "activations")
    assert {variant for _, variant, _, _ in activations} == {"dense", "lth", "swish"}
    assert len(activations) == 2 * (1 + 2 * 12)  # two seeds: the dense run and every level of two variants
    assert len(selected(result, "hessian")) == 2 * (1 + 3 * 12)  # every run
    assert selected(result, "landscape") == {(seed, "swish", 11, epoch) for seed in (0, 1) for epoch in (5, 10)}
    # Epoch 5 is a snapshot of the sparse run, kept as its by-product; the final one is final.pt.
    (job,) = [job for job in result.analysis_jobs("landscape") if job.epoch == 5 and job.subjects[0].seed == 0]
    assert kept_epochs(result, job.run) == [5]
    assert analysis_inputs(result, job.output)["weights"] == snapshot(result, job.run, 5)


def test_analyses_never_change_a_training_run_and_their_settings_key_their_outputs():
    bare = plan({})
    first = plan({"hessian": {"levels": [0.91]}})
    other = plan({"hessian": {"levels": [0.91], "sample": 100}})
    assert (bare.dense, bare.sparse) == (first.dense, first.sparse)
    assert set(first.analyses).isdisjoint(other.analyses)
    assert [job.run for job in first.analyses.values()] == [job.run for job in other.analyses.values()]


def test_the_dense_run_of_every_variant_is_analysed_once():
    result = plan({"hessian": {"levels": [0]}})
    assert selected(result, "hessian") == {(0, "dense", 0, 10), (1, "dense", 0, 10)}


@pytest.mark.parametrize(
    "analysis, message",
    [
        ({"hessian": {"variants": ["mish"]}}, r"analysis.hessian.variants\[0\]: 'mish' is not allowed.*lth, swish"),
        ({"hessian": {"levels": [14]}}, r"analysis.hessian.levels\[0\]: level 14"),
        (
            {"landscape": {"variants": ["rewind"], "epochs": [2], "sample": 100}},
            r"landscape.epochs\[0\]: epoch 2 is not allowed for "
            r"variant 'rewind', which trains epochs 4 to 10",
        ),
        ({"landscape": {"levels": [0], "epochs": [11], "sample": 100}}, r"epoch 11 is not allowed for the dense run"),
        ({"hessian": {"sample": 5000}}, r"analysis.hessian.sample: 5000 is not allowed; the train split has \d+"),
        ({"input_landscape": {"sample": 400}}, r"input_landscape.sample: 400 is not allowed; the test split has 364"),
        ({"landscape": {"points": 3, "jobs": 10, "sample": 100}}, r"landscape.jobs: 10 is not allowed; the grid has 9"),
        (
            {"activations": {"thresholds": [0, math.nan]}},
            (
                r"analysis.activations.thresholds\[1\]: nan is not allowed; "
                r"each threshold must be a finite number >= 0"
            ),
        ),
        ({"activations": {"thresholds": [math.inf]}}, r"activations.thresholds\[0\]: inf is not allowed"),
        ({"activations": {"thresholds": []}}, r"activations.thresholds: an empty list is not allowed"),
        (
            {"activations": {"thresholds": [0.01, 0, 1e-2]}},
            (
                r"activations.thresholds\[2\]: 0.01 is not allowed; it "
                r"repeats analysis.activations.thresholds\[0\]"
            ),
        ),
        (
            {"activations": {"threshold": 0.001}},
            (
                r"analysis.activations.threshold: 0.001 is not allowed; the key is "
                r"now `thresholds`, a list .*`thresholds: \[0.001\]`.*\[0, 0.001, 0.01\]"
            ),
        ),
    ],
)
def test_bad_analysis_settings_name_the_key_the_value_and_what_is_allowed(analysis, message):
    with pytest.raises(AnalysisConfigError, match=message):
        plan(analysis)


def test_the_schema_defaults_are_the_analysis_modules_defaults():
    section = plan(
        {
            "hessian": {},
            "perturbation": {"test_sample": 100},
            "landscape": {"sample": 100},
            "input_landscape": {"sample": 100},
        }
    ).config["analysis"]
    assert (section["hessian"]["sample"], section["hessian"]["tol"], section["hessian"]["max_iter"]) == (
        HessianSettings.sample,
        HessianSettings.tol,
        HessianSettings.max_iter,
    )
    assert section["perturbation"]["extent"] == PerturbationSettings.extent
    assert (section["landscape"]["points"], section["landscape"]["extent"]) == (
        LandscapeSettings.points,
        LandscapeSettings.extent,
    )
    schema = yaml.safe_load(open(SCHEMA))["properties"]["analysis"]
    assert schema["properties"]["landscape"]["properties"]["sample"]["default"] == LandscapeSettings.sample
    assert schema["propertyNames"]["enum"] == list(schema["properties"]) == list(ANALYSES)


@pytest.mark.parametrize(
    "thresholds, words",
    [
        ([0.01, -1], ["-1 is less than the minimum of 0", "thresholds"]),
        (["0.01"], ["'0.01' is not of type 'number'"]),
        (0.01, ["0.01 is not of type 'array'"]),
    ],
)
def test_the_schema_refuses_what_it_can_naming_the_value(thresholds, words):
    with pytest.raises(WorkflowError) as error:
        plan({"activations": {"thresholds": thresholds}})
    for word in words:
        assert word in "\n".join(map(str, error.value.args)), (word, error.value.args)


def test_thresholds_key_the_output_as_one_setting_and_0_is_allowed():
    default = plan({"activations": {}})
    jobs = default.analysis_jobs("activations")
    assert jobs and all(job.settings == {"thresholds": [0.0, 0.001, 0.01]} for job in jobs)
    assert jobs[0].flags() == "--thresholds 0.0 0.001 0.01"
    # The same list in another order or spelling is the same output: nothing new to compute.
    assert set(plan({"activations": {"thresholds": [1e-2, 0, 0.001]}}).analyses) == set(default.analyses)
    # Another list is another file, never a finished one overwritten; a list may be just 0.
    zero = plan({"activations": {"thresholds": [0]}})
    assert set(zero.analyses).isdisjoint(default.analyses)
    assert zero.analysis_jobs("activations")[0].flags() == "--thresholds 0.0"
    assert set(plan({"activations": {"thresholds": [0, 1e-3]}}).analyses).isdisjoint(default.analyses)


def test_the_schemas_thresholds_are_the_activations_modules():
    """lth/analysis/activations.py declares the default and the bound; the schema's copies agree."""
    assert plan({"activations": {}}).config["analysis"]["activations"]["thresholds"] == list(DEFAULT_THRESHOLDS)
    schema = yaml.safe_load(Path(SCHEMA).read_text())["properties"]["analysis"]["properties"]["activations"]
    schema = schema["properties"]
    assert schema["thresholds"]["default"] == list(DEFAULT_THRESHOLDS)
    assert schema["thresholds"]["items"]["minimum"] == THRESHOLD_MINIMUM
    assert THRESHOLD_RULE in schema["thresholds"]["description"]
    assert "`thresholds`" in schema["threshold"]["description"]  # the old key: only refused, by name
