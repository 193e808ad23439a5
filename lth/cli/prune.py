"""`lth prune`: a mask, by magnitude pruning or another mask source (lth/mask_sources.py)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lth import store
from lth.cli.options import add_command, add_config, add_run_options, add_store_flags
from lth.errors import UsageError
from lth.hparams import DataHparams, PruneHparams
from lth.inputs import load_config, require_file
from lth.mask_registry import MASK_SOURCES, ranks_across_layers, source_flags


def add_commands(commands: Any) -> None:
    prune = add_command(
        commands,
        "prune",
        cmd_prune,
        "a mask: magnitude pruning of trained weights (given the current mask), or "
        "another source at the same level's count (random, snip, grasp, synflow, a user's file), an N:M "
        "magnitude mask, or a sparse training's final mask (gmp, set, rigl)",
    )
    prune.add_argument(
        "--method",
        default="magnitude",
        choices=MASK_SOURCES,
        help="magnitude (IMP/OMP); random, snip (Lee et al. 2019), grasp (Wang et al. 2020), synflow "
        "(Tanaka et al. 2020): drawn from --weights (theta0) at level --rounds's count; file: "
        "--file, checked against the model; nm: N of every M by magnitude of --weights (the trained dense "
        "network); gmp, set, rigl: the mask saved in --weights, the final.pt of `lth train --sparse-training` "
        "(lth/mask_sources.py)",
    )
    prune.add_argument(
        "--weights",
        required=True,
        help="checkpoint: trained weights to rank by magnitude, or theta0 for the other sources",
    )
    prune.add_argument("--mask", help="current mask (omit to start from dense; magnitude only)")
    prune.add_argument("--out", required=True, help="mask to write (.pt, with a .json sidecar)")
    prune.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="rounds' worth of pruning at once: 1 for an IMP step, k for one-shot (OMP) level k; "
        "the other sources keep level k's count",
    )
    prune.add_argument("--seed", type=int, default=0, help="random: the draw; snip, grasp: the training batches")
    for flag, (setting, sources) in source_flags().items():
        kind = None if setting.default is None else type(setting.default)
        prune.add_argument(
            f"--{flag}", type=kind, default=setting.default, help=f"{', '.join(sources)}: {setting.help}"
        )
    add_store_flags(prune, "--out (with its sidecar)")
    add_config(prune)
    add_run_options(prune)
    PruneHparams.add_arguments(prune)
    DataHparams.add_arguments(prune)


def cmd_prune(args: argparse.Namespace) -> None:
    """A mask at the level `--rounds` of magnitude pruning: magnitude pruning itself, or another source
    (lth/mask_sources.py) keeping the same number of weights."""
    from lth.mask_sources import mask_writer
    from lth.masks import load_mask, read_sidecar, sidecar_path

    config = load_config(args.config)
    weights_path = require_file(args.weights, "--weights")
    mask_path = require_file(args.mask, "--mask")
    prune_hp = PruneHparams.from_sources(config, args)
    if args.rounds < 1:
        raise UsageError(f"--rounds: {args.rounds} is not allowed; must be >= 1")
    check_source_options(args, mask_path)
    if prune_hp.scope == "layerwise" and ranks_across_layers(args.method, args.like):
        raise UsageError(
            f"--prune.scope: layerwise is not allowed with --method {args.method}, which ranks weights "
            "across layers as its paper does; use global (or --method random --like MASK for a "
            "mask's per-layer counts)"
        )
    out = Path(args.out)
    if out.suffix == ".json":
        raise UsageError(f"--out: {out} ends in .json, where its sidecar goes; give a .pt path")
    store.output_path(sidecar_path(out), "--out (its sidecar)", True)

    def intact(path: Path) -> None:
        load_mask(path)  # and its sidecar: a mask killed before its sidecar was written is damaged
        provenance = read_sidecar(path).get("provenance") or {}
        if (provenance.get("method"), provenance.get("rounds")) != (args.method, args.rounds):
            raise UsageError(
                f"--out: {path} holds a mask of other settings (method {provenance.get('method')}, "
                f"rounds {provenance.get('rounds')}); delete it or choose another path"
            )

    def prepare() -> Any:
        return mask_writer(args, config, out, prune_hp, weights_path, mask_path, MASK_SOURCES[args.method].draw())

    store.produce(out, "--out", reuse=args.reuse, force=args.force, intact=intact, prepare=prepare)


def check_source_options(args: argparse.Namespace, mask_path: Path | None) -> None:
    """The options a mask source needs, and only those, before any work."""
    if args.method != "magnitude" and mask_path:
        raise UsageError(
            f"--mask: only --method magnitude prunes an existing mask; {args.method} draws a mask at "
            "the level --rounds from the dense network"
        )
    values = {flag: getattr(args, flag.replace("-", "_")) for flag in source_flags()}
    for flag, (setting, sources) in source_flags().items():
        if setting.required and args.method in sources and values[flag] is None:
            raise UsageError(f"--{flag}: {setting.required}, given exactly with --method {args.method}")
        if setting.default is None and values[flag] is not None and args.method not in sources:
            raise UsageError(f"--{flag}: only read with --method {', '.join(sources)}, not {args.method}")
    counts = [f"--{flag}" for flag, (setting, _) in source_flags().items() if isinstance(setting.default, int)]
    if any(values[flag[2:]] < 1 for flag in counts):
        raise UsageError(f"{', '.join(counts[:-1])} and {counts[-1]} must be >= 1")
