"""Reading an experiment's config and refusing, before any job, what the workflow cannot build."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lth.errors import LthError
from lth.hparams import GradinitHparams, ModelHparams, PruneHparams, TrainHparams
from lth.mask_registry import MaskSpec, ranks_across_layers
from lth.variants import PARTS, Variant, resolve
from lth.yamlio import read_yaml

CHAIN_KEYS = ("method", "levels", "rewind_epoch")  # workflow keys of `prune`; the rest is PruneHparams


class PlanError(LthError):
    """The config asks for something the workflow cannot build."""


def resolve_data_root(config: dict[str, Any], config_files: list[Path]) -> None:
    """Make a relative `data.root`, and the relative paths of `file` mask sources, absolute, relative to
    the config file that sets them (the last one that does, in the experiment's overrides or the base),
    so an experiment reads the same files from any working directory (`snakemake -d`)."""
    root = (config.get("data") or {}).get("root")
    if root is not None and not Path(root).expanduser().is_absolute():
        base = _setting_folder(config, config_files, lambda section: "root" in (section.get("data") or {}))
        config["data"] = {**config["data"], "root": str((base / Path(root).expanduser()).resolve())}
    entries = config.get("masks") or []
    if any(isinstance(entry, dict) and "path" in entry for entry in entries):
        base = _setting_folder(config, config_files, lambda section: "masks" in section)
        config["masks"] = [
            {**entry, "path": str(base / Path(entry["path"]).expanduser())}
            if isinstance(entry, dict) and "path" in entry
            else entry
            for entry in entries
        ]


def _setting_folder(config: dict[str, Any], config_files: list[Path], sets: Callable[[dict[str, Any]], bool]) -> Path:
    """The folder of the config file whose value of a setting the experiment has: the last file that
    `sets` it in the experiment's overrides (they are merged over the base), else the last that sets
    it in its base; the working directory when none does (it came from --config on the command line)."""
    contents = [(path, read_yaml(path) or {}) for path in config_files]
    contents = [(path, content) for path, content in contents if isinstance(content, dict)]
    overrides = [(path, (content.get("experiments") or {}).get(config["experiment"])) for path, content in contents]
    for candidates in (overrides, contents):
        for path, section in reversed(candidates):
            if isinstance(section, dict) and sets(section):
                return Path(path).resolve().parent
    return Path.cwd()


def check_results_path(results: str) -> None:
    """Refuse what a results folder cannot hold: braces, which Snakemake reads as wildcards in every
    rule's file names, and control characters (a newline), which the one-line messages and logs that
    name paths cannot show. Anything else (spaces, unicode, quotes, `$`, `;`) is quoted in every shell
    command (workflow/rules/common.smk)."""
    bad = sorted({char for char in results if char in "{}" or unicodedata.category(char) == "Cc"})
    if bad:
        raise PlanError(
            f"results: {results!r} holds {', '.join(map(repr, bad))}, which a results folder cannot: "
            "Snakemake reads braces as wildcards, and logs cannot show control characters; choose a "
            "folder name without them (spaces, unicode, quotes, $ and ; are fine)"
        )


def check_base_sections(config: dict[str, Any]) -> None:
    """Tweaks apply only in re-training (the paper's protocol): a setting that a variant part
    controls must keep its default in the base sections, or the dense run, every mask and the
    vanilla baseline would carry the tweak too."""
    sections = {"model": ModelHparams, "train": TrainHparams, "gradinit": GradinitHparams}
    for part, settings in PARTS.items():
        for key in settings:
            section, _, name = key.partition(".")
            if section not in sections:
                continue
            value = (config.get(section) or {}).get(name)
            default = getattr(sections[section](), name)
            if value is not None and value != default:
                raise PlanError(
                    f"{key}: {value!r} is not allowed in the config's `{section}` section: it would train "
                    f"the dense network and draw the ticket with a tweak, and tweaks apply only in "
                    f"re-training; leave it at {default!r} and add the `{part}` part to a variant"
                )


def check_scope(prune: PruneHparams, masks: list[MaskSpec]) -> None:
    """A layerwise scope only for the sources that rank weights within each layer."""
    if prune.scope == "layerwise":
        ranked = [spec.label for spec in masks if ranks_across_layers(spec.source, spec.settings.get("like"))]
        if ranked:
            raise PlanError(
                f"prune.scope: 'layerwise' is not allowed with the mask sources {', '.join(ranked)}, "
                "which rank weights across layers as their papers do; use scope global, or "
                "{source: random, like: magnitude} for a random mask with the magnitude mask's "
                "per-layer counts"
            )


def rewind_epochs(
    config: dict[str, Any], train: TrainHparams, chain: dict[str, Any], variants: list[Variant], magnitude: bool
) -> set[int]:
    """The dense epochs (> 0) this experiment keeps as rewind points; `chain`: the CHAIN_KEYS settings."""
    needed = {f"save_epochs[{i}]": epoch for i, epoch in enumerate(config["save_epochs"])}
    if magnitude and chain["method"] == "imp":
        needed["prune.rewind_epoch"] = chain["rewind_epoch"]
    if any(variant.start == "rewind" for variant in variants):
        needed["rewind_epoch"] = config["rewind_epoch"]
    for key, epoch in needed.items():
        if epoch >= train.epochs:
            raise PlanError(f"{key}: {epoch} is not allowed; must be < train.epochs={train.epochs}")
    return {epoch for epoch in needed.values() if epoch > 0}


def dense_variant(name: str) -> Variant:
    """A `dense_variants` entry: tweaks the dense network is trained with from theta0, as a baseline
    for the tweak's effect on sparse networks (the paper's Figure 1 dashed lines)."""
    variant = resolve(name, source="dense_variants")
    why = (
        "it has no tweak: it is the dense network itself"
        if not variant.parts
        else f"the dense network trains from theta0, not from a {variant.start} start"
        if variant.start != "theta0"
        else "distillation's teacher is the dense network itself"
        if variant.section("train").get("kd_alpha")
        else None
    )
    if why:
        allowed = ", ".join(part for part in PARTS if part not in ("rewind", "reinit", "kd"))
        raise PlanError(
            f"dense_variants: {name!r} is not allowed; {why}. Parts allowed here: {allowed} (and the aliases at, trt)"
        )
    return variant


def level_list(levels: int | list[int]) -> list[int]:
    """`prune.levels`: a count (levels 1 to n) or the levels themselves (e.g. OMP at [1, 4, 7])."""
    return list(range(1, levels + 1)) if isinstance(levels, int) else sorted(set(levels))
