"""`lth init`, `lth train`, `lth snapshot`: a network's starting weights, its training, and its
weights after an epoch."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from lth import store, trackers
from lth.cli.options import add_command, add_config, add_device, add_run_options, add_store_flags
from lth.errors import UsageError
from lth.hparams import DataHparams, GradinitHparams, ModelHparams, TrainHparams
from lth.inputs import load_config
from lth.sparse.settings import ALGORITHMS
from lth.train_setup import check_same_run, model_hparams, prepare_training, set_threads, snapshot_writer

log = logging.getLogger("lth")


def add_commands(commands: Any) -> None:
    init = add_command(commands, "init", cmd_init, "write the initial weights theta0 of a model for a seed")
    init.add_argument("--out", required=True, help="checkpoint to write (.pt)")
    init.add_argument("--seed", type=int, required=True)
    add_store_flags(init)
    add_config(init)
    add_run_options(init)
    ModelHparams.add_arguments(init)
    DataHparams.add_arguments(init)
    _add_train(commands)
    _add_snapshot(commands)


def _add_train(commands: Any) -> None:
    train = add_command(
        commands, "train", cmd_train, "train dense or masked from given weights; resumes if interrupted"
    )
    train.add_argument(
        "--init",
        required=True,
        help="starting weights: theta0, or a dense epoch-k checkpoint to rewind to (its epoch becomes the start epoch)",
    )
    train.add_argument("--out-dir", required=True, help="run folder to write")
    train.add_argument("--seed", type=int, required=True, help="data split, batch order and augmentation")
    train.add_argument("--mask", help="mask file from `lth prune`; omit for dense training")
    train.add_argument(
        "--teacher",
        help="checkpoint to distil from (the dense network's final.pt); required exactly when train.kd_alpha > 0",
    )
    train.add_argument(
        "--start-epoch",
        type=int,
        default=None,
        help="override the start epoch (default: the --init checkpoint's epoch)",
    )
    train.add_argument(
        "--save-epochs",
        type=int,
        nargs="*",
        default=[],
        help="also keep the weights after these epochs (rewind points) as epoch{k}.pt",
    )
    _add_training_flags(train, "--out-dir", tracking=True)


def _add_snapshot(commands: Any) -> None:
    snapshot = add_command(
        commands,
        "snapshot",
        cmd_snapshot,
        "the weights of a run after an epoch (a dense rewind point, or "
        "a sparse run's epoch to analyse): the finished run's own copy, else re-trained up to it",
    )
    snapshot.add_argument("--epoch", type=int, required=True, help="epoch whose weights to write")
    snapshot.add_argument("--out", required=True, help="checkpoint to write (.pt)")
    snapshot.add_argument("--run", help="the finished run; its epoch<k>.pt is used when it kept one")
    snapshot.add_argument("--init", required=True, help="the run's starting weights, to re-train from")
    snapshot.add_argument("--mask", help="the run's mask (a sparse run)")
    snapshot.add_argument("--teacher", help="the run's distillation teacher, when train.kd_alpha > 0")
    snapshot.add_argument(
        "--start-epoch", type=int, default=None, help="the run's start epoch (default: the --init checkpoint's epoch)"
    )
    snapshot.add_argument("--seed", type=int, required=True, help="the run's seed")
    _add_training_flags(snapshot, "--out", tracking=False)
    snapshot.set_defaults(track=[])  # it re-trains through prepare_training, and a snapshot tracks nothing


def _add_training_flags(parser: argparse.ArgumentParser, output: str, tracking: bool) -> None:
    add_device(parser)
    parser.add_argument("--no-channels-last", action="store_true", help="keep NCHW memory format")
    add_store_flags(parser, output)
    if tracking:
        _add_tracking(parser)
    add_config(parser)
    add_run_options(parser)
    for hparams in (ModelHparams, DataHparams, TrainHparams, GradinitHparams):
        hparams.add_arguments(parser)
    parser.add_argument(
        "--sparse-training",
        choices=ALGORITHMS,
        help="train sparse with a mask that changes (no --mask): gmp (Zhu & Gupta 2017), set (Mocanu et al. "
        "2018) or rigl (Evci et al. 2020), with that algorithm's --NAME.* settings (lth/sparse)",
    )
    for hparams in ALGORITHMS.values():
        hparams.add_arguments(parser)


def _add_tracking(parser: argparse.ArgumentParser) -> None:
    """--track and each tracker's settings, from the registry (lth/trackers.py)."""
    parser.add_argument(
        "--track",
        nargs="+",
        action="extend",
        default=[],
        choices=tuple(trackers.TRACKERS),
        metavar="NAME",
        help="measure after every epoch, as extra metrics.csv columns: "
        + "; ".join(f"{name}: {tracker.help}" for name, tracker in trackers.TRACKERS.items()),
    )
    for name, tracker in trackers.TRACKERS.items():
        group = parser.add_argument_group(f"--track {name}")
        for setting, (default, help) in tracker.settings.items():
            group.add_argument(
                trackers.flag(name, setting),
                dest=f"{name}_{setting}",
                type=type(default),
                default=None,
                metavar=setting.upper(),
                help=f"{help} (default: {default})",
            )


def cmd_init(args: argparse.Namespace) -> None:
    from lth import data
    from lth.checkpoints import init_model, load_checkpoint, save_checkpoint

    config = load_config(args.config)
    model_hp = model_hparams(args, config, None)
    data_hp = DataHparams.from_sources(config, args)
    set_threads(args.threads)
    num_classes = data.num_classes(data_hp)
    model = init_model(model_hp, num_classes, args.seed)

    def intact(path: Path) -> None:
        import torch

        kept = load_checkpoint(path)  # damaged: an IntegrityError
        same = (
            kept["model"] == model_hp.to_dict()
            and kept["num_classes"] == num_classes
            and kept["epoch"] == 0
            and kept["state_dict"].keys() == model.state_dict().keys()
            and all(torch.equal(kept["state_dict"][k], v) for k, v in model.state_dict().items())
        )
        if not same:
            raise UsageError(
                f"--out: {path} holds other weights than theta0 of these settings and seed {args.seed}; "
                "delete it or choose another path"
            )

    def save() -> None:
        save_checkpoint(args.out, model, model_hp, num_classes, epoch=0)
        log.info("wrote theta0 of %s (%d classes, seed %d) to %s", model_hp.name, num_classes, args.seed, args.out)

    store.produce(args.out, "--out", reuse=args.reuse, force=args.force, intact=intact, prepare=lambda: save)


def cmd_train(args: argparse.Namespace) -> None:
    """Build the settings, open the run folder (kept when finished), train, publish."""
    config = load_config(args.config)
    store.produce(
        args.out_dir,
        "--out-dir",
        reuse=args.reuse,
        force=args.force,
        intact=lambda run: check_same_run(run, args, config, "--out-dir"),
        prepare=lambda: prepare_training(args, config),
        folder=True,
    )


def cmd_snapshot(args: argparse.Namespace) -> None:
    """The weights of a run after --epoch: the finished --run's own epoch<k>.pt when it kept one (the
    same trajectory), else the same training re-run from --init up to that epoch. A dense run's
    snapshot is a rewind point; a sparse run's (with --mask) is what an analysis of epoch k reads."""
    from lth.checkpoints import load_checkpoint

    config = load_config(args.config)
    train_hp = TrainHparams.from_sources(config, args)
    if not 0 < args.epoch < train_hp.epochs:
        raise UsageError(f"--epoch: {args.epoch} is not allowed; must be in [1, train.epochs={train_hp.epochs})")

    def intact(path: Path) -> None:
        if load_checkpoint(path)["epoch"] != args.epoch:
            raise UsageError(
                f"--out: {path} holds the weights of another epoch than {args.epoch}; delete it or choose another path"
            )

    def prepare() -> Any:
        return snapshot_writer(args, config, Path(args.out))

    store.produce(args.out, "--out", reuse=args.reuse, force=args.force, intact=intact, prepare=prepare)
