"""What the landing page of `snakemake --report` says (workflow/report/workflow.rst renders it).

Snakemake renders the page's template with nothing but the workflow's config, so the Snakefile puts
this context into the config under `lth_report`: the config files, the code that writes the report,
and for each experiment its settings after the schema's defaults, in words and as YAML. Plain
strings, lists and dicts only. Torch-free: the Snakefile calls it on every parse, and it costs a
few milliseconds (two git calls and a digest of lth's source files).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

import lth
from lth.provenance import git_commit, source_digest
from lth.report.recipe import recipe_text

KEY = "lth_report"  # where the Snakefile puts the context in the config


def _file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    except OSError:
        return "unreadable"


def _masks(config: Mapping[str, Any]) -> str:
    """The mask sources and levels in words, e.g. `IMP at rate 0.2, random; 16 levels` (the magnitude
    chain by its method, any other source by its label)."""
    prune, levels = config["prune"], config["prune"]["levels"]
    levels = (
        f"levels {', '.join(map(str, levels))}"
        if isinstance(levels, list)
        else f"{levels} level{'s' if levels != 1 else ''}"
    )
    words = []
    for entry in config["masks"]:
        source = entry if isinstance(entry, str) else entry["source"]  # lth/mask_registry.py checked it
        label = source if isinstance(entry, str) else entry.get("label", source)
        words.append(f"{prune['method'].upper()} at rate {prune['rate']:g}" if source == "magnitude" else label)
    return f"{', '.join(words)}; {levels}"


def experiment_summary(config: Mapping[str, Any]) -> str:
    """One line of what an experiment (a validated config) trains and compares."""
    model, data = config["model"], config["data"]
    baselines = f"; dense baselines {', '.join(config['dense_variants'])}" if config["dense_variants"] else ""
    analyses = f"; analyses {', '.join(config['analysis'])}" if config["analysis"] else ""
    return (
        f"{model['name']} (width {model['width']}) on {data['name']}, seeds "
        f"{', '.join(map(str, config['seeds']))}; masks {_masks(config)}; variants "
        f"{', '.join(config['variants'])}{baselines}{analyses}."
    )


def settings_yaml(config: Mapping[str, Any]) -> str:
    """The config as YAML, keys in the schema's order, short lists on one line."""
    return yaml.safe_dump(dict(config), sort_keys=False, default_flow_style=None, width=100).rstrip()


def landing_context(configs: Mapping[str, Mapping[str, Any]], config_files: Sequence[str | Path]) -> dict[str, Any]:
    """The landing page's context: `configs` maps each experiment to its validated config (defaults
    filled in), `config_files` are the files the workflow read."""
    commit = git_commit()
    return {
        "config_files": [{"path": str(path), "sha256": _file_digest(Path(path))} for path in config_files],
        "lth_version": lth.__version__,
        "git_commit": commit if commit != "unknown" else "",
        "source_sha256": source_digest(),
        "experiments": {
            name: {
                "summary": experiment_summary(config),
                "recipe": recipe_text(config),
                "settings": settings_yaml(config),
            }
            for name, config in configs.items()
        },
    }
