"""`lth` command line: one subcommand per workflow stage, explicit input and output paths.

Heavy modules (torch, data sources, plotting) are imported inside each command, so a call pays
only for what it uses.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from lth.errors import LthError
from lth.hparams import DataHparams, GradinitHparams, ModelHparams, PruneHparams, TrainHparams
from lth.plots import X_AXES

log = logging.getLogger("lth")


class UsageError(LthError):
    """Bad input that the user can fix; printed without a traceback."""


def _load_config(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        config = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise UsageError(f"--config: {path} does not exist") from None
    if not isinstance(config, dict):
        raise UsageError(f"--config: {path} must hold a mapping with sections model/data/train/prune")
    return config


def _require_file(path: str | None, flag: str) -> Path | None:
    if path is not None and not Path(path).is_file():
        raise UsageError(f"{flag}: {path} does not exist")
    return Path(path) if path is not None else None


def _model_hparams(args: argparse.Namespace, config: dict[str, Any], base: dict[str, Any] | None) -> ModelHparams:
    """The checkpoint's architecture, then the config's `model` section, then flags."""
    merged = {**(base or {}), **(config.get("model") or {})}
    return ModelHparams.from_sources({"model": merged}, args)


def _setup_torch(args: argparse.Namespace) -> None:
    import torch

    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)


def cmd_init(args: argparse.Namespace) -> None:
    from lth import data
    from lth.checkpoints import init_model, save_checkpoint

    config = _load_config(args.config)
    model_hp = _model_hparams(args, config, None)
    data_hp = DataHparams.from_sources(config, args)
    _setup_torch(args)
    num_classes = data.num_classes(data_hp)
    model = init_model(model_hp, num_classes, args.seed)
    save_checkpoint(args.out, model, model_hp, num_classes, epoch=0)
    log.info("wrote theta0 of %s (%d classes, seed %d) to %s", model_hp.name, num_classes, args.seed, args.out)


def cmd_train(args: argparse.Namespace) -> None:
    from lth import data
    from lth.checkpoints import build_model, load_checkpoint, load_ticket_weights
    from lth.losses import make_loss
    from lth.masks import MaskEnforcer, load_mask, mask_hash
    from lth.train import RunOptions, check_run, train

    config = _load_config(args.config)
    init_path = _require_file(args.init, "--init")
    mask_path = _require_file(args.mask, "--mask")
    teacher_path = _require_file(args.teacher, "--teacher")
    checkpoint = load_checkpoint(init_path)
    model_hp = _model_hparams(args, config, checkpoint["model"])
    data_hp = DataHparams.from_sources(config, args)
    train_hp = TrainHparams.from_sources(config, args)
    gradinit_hp = GradinitHparams.from_sources(config, args)
    if train_hp.kd_alpha > 0 and teacher_path is None:
        raise UsageError(f"train.kd_alpha: {train_hp.kd_alpha} distils from a teacher; pass --teacher "
                         "(the dense network's final weights)")
    if train_hp.kd_alpha == 0 and teacher_path is not None:
        raise UsageError("--teacher: only used for distillation; set train.kd_alpha > 0 or drop --teacher")
    teacher_checkpoint = load_checkpoint(teacher_path) if teacher_path else None
    start_epoch = checkpoint["epoch"] if args.start_epoch is None else args.start_epoch
    num_classes = data.num_classes(data_hp)
    for flag, path, loaded in (("--init", init_path, checkpoint), ("--teacher", teacher_path, teacher_checkpoint)):
        if loaded is not None and loaded["num_classes"] != num_classes:
            raise UsageError(f"{flag}: {path} has {loaded['num_classes']} classes, data '{data_hp.name}' has "
                             f"{num_classes}")
    options = RunOptions(device=args.device, threads=args.threads, channels_last=not args.no_channels_last,
                         force=args.force)
    device = check_run(Path(args.out_dir), train_hp, start_epoch, args.save_epochs, options)
    _setup_torch(args)
    model = build_model(model_hp, num_classes)
    try:
        load_ticket_weights(model, checkpoint["state_dict"])  # only the skip tweak's jump branches start fresh
    except LthError as error:
        raise UsageError(f"--init: {init_path}: {error}") from None
    mask = load_mask(mask_path) if mask_path else None
    if mask:
        MaskEnforcer(model, mask)  # validates names and shapes against this architecture
    teacher = None
    if teacher_checkpoint:
        # The teacher keeps its own architecture: a tweaked student distils from the plain dense network.
        teacher = build_model(ModelHparams.from_dict(teacher_checkpoint["model"]), num_classes)
        teacher.load_state_dict(teacher_checkpoint["state_dict"])
        teacher.to(device)
    record = {
        "lth": "train",
        "seed": args.seed,
        "model": model_hp.to_dict(),
        "data": data_hp.to_dict(),
        "train": train_hp.to_dict(),
        "init": {"path": str(init_path), "epoch": checkpoint["epoch"]},
        "mask": {"path": str(mask_path), "sha256": mask_hash(mask)} if mask else None,
        "teacher": {"path": str(teacher_path), "epoch": teacher_checkpoint["epoch"]} if teacher_checkpoint else None,
        "gradinit": gradinit_hp.to_dict(),
        "start_epoch": start_epoch,
        "save_epochs": sorted(args.save_epochs),
    }
    dataset = data.load(data_hp, args.seed)  # after every cheap check: this is the first slow step
    log.info("training %s on %s: %d train / %d val / %d test images, %s", model_hp.name, data_hp.name,
             len(dataset.train.labels), len(dataset.val.labels), len(dataset.test.labels),
             f"mask {mask_path}" if mask else "dense")
    train(model, dataset, train_hp, args.out_dir, seed=args.seed, model_hparams=model_hp, record=record,
          mask=mask, start_epoch=start_epoch, save_epochs=args.save_epochs, loss_fn=make_loss(train_hp, teacher),
          gradinit_hparams=gradinit_hp if gradinit_hp.enabled else None, options=options)


def cmd_prune(args: argparse.Namespace) -> None:
    from lth.checkpoints import build_model, load_checkpoint
    from lth.masks import dense_mask, load_mask, prunable_names, prune, save_mask

    config = _load_config(args.config)
    weights_path = _require_file(args.weights, "--weights")
    mask_path = _require_file(args.mask, "--mask")
    prune_hp = PruneHparams.from_sources(config, args)
    if args.rounds < 1:
        raise UsageError(f"--rounds: {args.rounds} is not allowed; must be >= 1")
    checkpoint = load_checkpoint(weights_path)
    weights = checkpoint["state_dict"]
    if mask_path:
        mask = load_mask(mask_path)  # an existing mask fixes which tensors are prunable
    else:
        model = build_model(ModelHparams.from_dict(checkpoint["model"]), checkpoint["num_classes"])
        mask = dense_mask(weights, prunable_names(model, prune_hp.include_linear))
    new_mask = prune(weights, mask, prune_hp, rounds=args.rounds)
    provenance = {"weights": str(weights_path), "mask": str(mask_path) if mask_path else None,
                  "rounds": args.rounds, **prune_hp.to_dict()}
    info = save_mask(args.out, new_mask, provenance)
    log.info("wrote %s: sparsity %.2f%% (%d of %d weights kept)", args.out, 100 * info["sparsity"], info["kept"],
             info["total"])


def cmd_info(args: argparse.Namespace) -> None:
    from lth.info import describe_path

    info = describe_path(Path(args.path))
    print(json.dumps(info, indent=2) if args.json else yaml.safe_dump(info, sort_keys=False), end="")


def cmd_aggregate(args: argparse.Namespace) -> None:
    from lth.aggregate import aggregate

    aggregate(args.rows, Path(args.out))


def cmd_plot(args: argparse.Namespace) -> None:
    from lth.plots import plot_accuracy_vs_sparsity

    plot_accuracy_vs_sparsity(Path(args.summary), [Path(p) for p in args.out], x=args.x, title=args.title)


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file with sections model/data/train/prune/gradinit "
                                         "(flags override it)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lth", description=__doc__.splitlines()[0])
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Callable[[argparse.Namespace], None], help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(func=func)
        return sub

    init = command("init", cmd_init, "write the initial weights theta0 of a model for a seed")
    init.add_argument("--out", required=True, help="checkpoint to write (.pt)")
    init.add_argument("--seed", type=int, required=True)
    _add_config(init)
    _add_run_options(init)
    ModelHparams.add_arguments(init)
    DataHparams.add_arguments(init)

    train = command("train", cmd_train, "train dense or masked from given weights; resumes if interrupted")
    train.add_argument("--init", required=True, help="starting weights: theta0, or a dense epoch-k checkpoint "
                                                     "to rewind to (its epoch becomes the start epoch)")
    train.add_argument("--out-dir", required=True, help="run folder to write")
    train.add_argument("--seed", type=int, required=True, help="data split, batch order and augmentation")
    train.add_argument("--mask", help="mask file from `lth prune`; omit for dense training")
    train.add_argument("--teacher", help="checkpoint to distil from (the dense network's final.pt); "
                                         "required exactly when train.kd_alpha > 0")
    train.add_argument("--start-epoch", type=int, default=None,
                       help="override the start epoch (default: the --init checkpoint's epoch)")
    train.add_argument("--save-epochs", type=int, nargs="*", default=[],
                       help="also keep the weights after these epochs (rewind points) as epoch{k}.pt")
    train.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    train.add_argument("--no-channels-last", action="store_true", help="keep NCHW memory format")
    train.add_argument("--force", action="store_true", help="retrain even if --out-dir holds a finished run")
    _add_config(train)
    _add_run_options(train)
    ModelHparams.add_arguments(train)
    DataHparams.add_arguments(train)
    TrainHparams.add_arguments(train)
    GradinitHparams.add_arguments(train)

    prune = command("prune", cmd_prune, "magnitude-prune trained weights, given the current mask, to a new mask")
    prune.add_argument("--weights", required=True, help="trained checkpoint whose magnitudes rank the weights")
    prune.add_argument("--mask", help="current mask (omit to start from dense)")
    prune.add_argument("--out", required=True, help="mask to write (.pt, with a .json sidecar)")
    prune.add_argument("--rounds", type=int, default=1,
                       help="rounds' worth of pruning at once: 1 for an IMP step, k for one-shot (OMP) level k")
    _add_config(prune)
    PruneHparams.add_arguments(prune)

    info = command("info", cmd_info, "describe a checkpoint, a mask, or a run folder")
    info.add_argument("path")
    info.add_argument("--json", action="store_true", help="JSON instead of YAML")

    aggregate = command("aggregate", cmd_aggregate, "collect finished runs into one summary.csv")
    aggregate.add_argument("--out", required=True, help="summary.csv to write")
    aggregate.add_argument("rows", nargs="+", metavar="SEED:VARIANT:LEVEL:RUN_FOLDER",
                           help="one per row; each run folder must hold a finished run")

    plot = command("plot", cmd_plot, "draw accuracy vs sparsity from a summary.csv")
    plot.add_argument("--summary", required=True)
    plot.add_argument("--out", required=True, nargs="+", help="figure files (.png, .pdf)")
    plot.add_argument("--x", default="sparsity", choices=tuple(X_AXES))
    plot.add_argument("--title", default=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    try:
        args.func(args)
    except LthError as error:
        print(f"lth {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
