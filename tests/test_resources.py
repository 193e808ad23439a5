"""Job resource estimates (lth/resources.py): torch-free numbers that must agree with lth.flops and
grow with the work a job does and with Snakemake's attempt."""

from __future__ import annotations

import pytest

from lth import models
from lth.flops import forward_flops
from lth.resources import MIN_RELATIVE_COST, MODEL_GFLOPS, Work, memory_mb, relative_cost, runtime_minutes

SETTINGS = {"runtime_base": 10, "runtime_per_epoch": 1.0, "mem_mb": 4000}
REFERENCE = Work("resnet18", 64, 32 * 32, 50_000, 1)


@pytest.mark.parametrize("name", sorted(MODEL_GFLOPS))
def test_model_costs_are_the_flops_lth_counts(name):
    counted = forward_flops(models.build(name, 10, 64), (3, 32, 32))["forward_flops"] / 1e9
    assert MODEL_GFLOPS[name] == pytest.approx(counted, rel=0.01)


def test_the_reference_job_costs_its_calibrated_minutes():
    assert relative_cost(REFERENCE) == 1
    assert runtime_minutes(Work("resnet18", 64, 1024, 50_000, 180), SETTINGS) == 10 + 180


def test_estimates_grow_with_epochs_model_width_images_and_attempt():
    base = Work("resnet18", 64, 1024, 45_000, 100)
    bigger = [
        Work("resnet18", 64, 1024, 45_000, 200),
        Work("resnet34", 64, 1024, 45_000, 100),
        Work("resnet18", 128, 1024, 45_000, 100),
        Work("resnet18", 64, 4096, 45_000, 100),
        Work("resnet18", 64, 1024, 90_000, 100),
    ]
    assert all(runtime_minutes(work, SETTINGS) > runtime_minutes(base, SETTINGS) for work in bigger)
    assert runtime_minutes(base, SETTINGS, attempt=2) == 2 * runtime_minutes(base, SETTINGS)
    assert memory_mb(base, SETTINGS, attempt=3) >= 3 * memory_mb(base, SETTINGS) - 2
    assert memory_mb(Work("resnet18", 64, 4096, 100_000, 1), SETTINGS) > memory_mb(base, SETTINGS) > 4000


def test_narrow_models_are_not_estimated_below_the_overhead_floor():
    assert relative_cost(Work("mobilenet", 4, 1024, 500, 10)) == MIN_RELATIVE_COST


def test_every_model_has_a_cost():
    """The workflow estimates every job's walltime from this table: a model missing here fails there."""
    from lth.names import MODELS

    assert set(MODEL_GFLOPS) == set(MODELS)
