"""Packaging agrees with itself: environment.yml's dependencies and lower bounds are pyproject.toml's, the
Snakefile's min_version is pyproject's Snakemake bound, and the licence pyproject names is shipped."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# What environment.yml installs: the dependencies, the SLURM plugin and pytest (the `slurm` and `test`
# extras), not the linters (`make lint`).
EXTRAS = ("slurm", "test")
# Conda's own packages: the interpreter (pyproject's requires-python) and pip, which installs the rest.
CONDA_ONLY = {"python", "pip"}


def requirements(specs: list[str]) -> dict[str, Requirement]:
    found = {}
    for spec in specs:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name not in found, f"{name} is listed twice"
        found[name] = requirement
    return found


def pyproject_requirements() -> dict[str, Requirement]:
    specs = list(PYPROJECT["project"]["dependencies"])
    for extra in EXTRAS:
        specs += PYPROJECT["project"]["optional-dependencies"][extra]
    return {name: r for name, r in requirements(specs).items() if name != "lth"}  # lth[slurm]: itself


def environment_requirements() -> dict[str, Requirement]:
    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    specs = []
    for entry in environment["dependencies"]:
        if isinstance(entry, dict):
            specs += [spec for spec in entry["pip"] if not spec.startswith("-e")]
        elif re.split(r"[=<>!\s]", entry, maxsplit=1)[0] not in CONDA_ONLY:
            specs.append(entry)
    return requirements(specs)


def lower_bound(requirement: Requirement) -> Version | None:
    bounds = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
    assert len(bounds) <= 1, requirement
    return bounds[0] if bounds else None


def pin(requirement: Requirement) -> Version | None:
    pins = [Version(s.version) for s in requirement.specifier if s.operator == "=="]
    return pins[0] if pins else None


def test_environment_yml_lists_pyprojects_dependencies_with_its_lower_bounds():
    ours, theirs = pyproject_requirements(), environment_requirements()
    assert sorted(theirs) == sorted(ours)
    for name, requirement in ours.items():
        bound, conda = lower_bound(requirement), theirs[name]
        if pin(conda) is not None:  # torch and torchvision: pinned to the Makefile's wheels
            assert requirement.specifier.contains(pin(conda)), (name, str(conda), str(requirement))
        else:
            assert lower_bound(conda) == bound, (name, str(conda), str(requirement))
            assert conda.specifier == requirement.specifier, (name, str(conda), str(requirement))


def test_environment_yml_needs_no_channel_but_conda_forge():
    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    assert environment["channels"] == ["conda-forge"]


def test_the_snakefiles_min_version_is_pyprojects_snakemake_bound():
    # The Snakefile is not Python (rule and include directives): find the call by its line.
    calls = re.findall(r"^min_version\(\"([^\"]+)\"\)$", (REPO / "Snakefile").read_text(), flags=re.MULTILINE)
    assert len(calls) == 1, calls
    declared = Version(calls[0])
    assert declared == lower_bound(pyproject_requirements()["snakemake"])


def test_the_licence_is_shipped_and_named():
    project = PYPROJECT["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c) 2026 the lth authors" in text
