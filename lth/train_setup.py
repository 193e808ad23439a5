"""What `lth train` and `lth snapshot` do around the training loop (lth/train.py): read and check
every input before anything is written, record the run's settings, and tell whether a finished run
is the one asked for. Heavy modules (torch, data) are imported when a training is set up."""

from __future__ import annotations

import argparse
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lth import store, trackers
from lth.artifacts import HPARAMS, kept_epoch
from lth.errors import LthError, UsageError
from lth.hparams import DataHparams, GradinitHparams, ModelHparams, TrainHparams
from lth.inputs import read_input, require_file
from lth.sparse.settings import ALGORITHMS, SparseTrainingHparams
from lth.yamlio import read_yaml

log = logging.getLogger("lth")


def model_hparams(args: argparse.Namespace, config: dict[str, Any], base: dict[str, Any] | None) -> ModelHparams:
    """The checkpoint's architecture, then the config's `model` section, then flags."""
    merged = {**(base or {}), **(config.get("model") or {})}
    return ModelHparams.from_sources({"model": merged}, args)


def set_threads(threads: int | None) -> None:
    """torch's CPU threads, when --threads asks for a number."""
    import torch

    if threads:
        torch.set_num_threads(threads)


def sparse_training_hparams(args: argparse.Namespace, config: dict[str, Any]) -> SparseTrainingHparams | None:
    """--sparse-training's algorithm with its --NAME.* settings; another algorithm's settings are refused."""
    chosen = getattr(args, "sparse_training", None)
    for name, hparams in ALGORITHMS.items():
        given = sorted(key for key in vars(args) if key.startswith(f"{name}."))
        if given and name != chosen:
            raise UsageError(f"--{given[0]}: only read with --sparse-training {name}, not {chosen or 'without it'}")
    return ALGORITHMS[chosen].from_sources(config, args) if chosen else None


def _check_teacher(train_hp: TrainHparams, teacher_path: Path | None) -> None:
    if train_hp.kd_alpha > 0 and teacher_path is None:
        raise UsageError(
            f"train.kd_alpha: {train_hp.kd_alpha} distils from a teacher; pass --teacher "
            "(the dense network's final weights)"
        )
    if train_hp.kd_alpha == 0 and teacher_path is not None:
        raise UsageError("--teacher: only used for distillation; set train.kd_alpha > 0 or drop --teacher")


def _student(
    checkpoint: dict[str, Any], model_hp: ModelHparams, num_classes: int, init: Path, mask_path: Path | None
) -> tuple[Any, Any]:
    """The network to train, its starting weights loaded, and its mask (checked to fit it)."""
    from lth.checkpoints import build_model, load_ticket_weights
    from lth.masks import MaskEnforcer, load_mask

    model = build_model(model_hp, num_classes)
    try:
        load_ticket_weights(model, checkpoint["state_dict"])  # only the skip tweak's jump branches start fresh
    except LthError as error:
        raise UsageError(f"--init: {init}: {error}") from None
    mask = read_input("--mask", mask_path, load_mask) if mask_path else None
    if mask:
        try:
            MaskEnforcer(model, mask)  # validates names and shapes against this architecture
        except LthError as error:
            raise UsageError(
                f"--mask: {mask_path} does not fit this model ({error}); use a mask drawn from "
                "the same architecture and width"
            ) from None
    return model, mask


def _teacher(checkpoint: dict[str, Any] | None, num_classes: int) -> Any:
    """The network distilled from; it keeps its own architecture: a tweaked student distils from the
    plain dense network."""
    from lth.checkpoints import build_model

    if checkpoint is None:
        return None
    teacher = build_model(ModelHparams.from_dict(checkpoint["model"]), num_classes)
    teacher.load_state_dict(checkpoint["state_dict"])
    return teacher


def prepare_training(args: argparse.Namespace, config: dict[str, Any]) -> Callable[[], None]:
    """Check every input of a training (files, settings, their fit) without writing anything, and
    return the training itself: it checks --out-dir, loads the data and trains."""
    from lth import data
    from lth.checkpoints import load_checkpoint
    from lth.devices import assign_device
    from lth.masks import mask_hash
    from lth.train import RunOptions, check_settings

    init_path = require_file(args.init, "--init")
    mask_path = require_file(args.mask, "--mask")
    teacher_path = require_file(args.teacher, "--teacher")
    checkpoint = read_input("--init", init_path, load_checkpoint)
    model_hp = model_hparams(args, config, checkpoint["model"])
    data_hp = DataHparams.from_sources(config, args)
    train_hp = TrainHparams.from_sources(config, args)
    gradinit_hp = GradinitHparams.from_sources(config, args)
    sparse_hp = sparse_training_hparams(args, config)
    if sparse_hp and mask_path:
        raise UsageError(
            f"--mask: not with --sparse-training {sparse_hp.section}, which draws and changes its own mask"
        )
    _check_teacher(train_hp, teacher_path)
    tracking = trackers.chosen(args)
    teacher_checkpoint = read_input("--teacher", teacher_path, load_checkpoint) if teacher_path else None
    start_epoch = checkpoint["epoch"] if args.start_epoch is None else args.start_epoch
    num_classes = data.num_classes(data_hp)
    for flag, path, loaded in (("--init", init_path, checkpoint), ("--teacher", teacher_path, teacher_checkpoint)):
        if loaded is not None and loaded["num_classes"] != num_classes:
            raise UsageError(
                f"{flag}: {path} has {loaded['num_classes']} classes, data '{data_hp.name}' has {num_classes}"
            )
    options = RunOptions(
        device=assign_device(args.device, args.jobs_per_gpu),
        threads=args.threads,
        channels_last=not args.no_channels_last,
        force=args.force,
    )
    device = check_settings(train_hp, start_epoch, args.save_epochs, options)
    set_threads(args.threads)
    model, mask = _student(checkpoint, model_hp, num_classes, init_path, mask_path)
    teacher = _teacher(teacher_checkpoint, num_classes)
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
    if sparse_hp:  # only then: the records, so the resume states, of other runs stay as they were
        record["sparse_training"] = sparse_hp.record()
    if tracking:  # only then: the records, so the resume states, of untracked runs stay as they were
        record["track"] = tracking
    if teacher is not None:
        teacher.to(device)

    def training() -> None:
        from lth.losses import make_loss
        from lth.train import check_run, train

        check_run(Path(args.out_dir), train_hp, start_epoch, args.save_epochs, options)  # the folder, under the lock
        dataset = data.load(data_hp, args.seed)  # after every cheap check: this is the first slow step
        options.callbacks = trackers.callbacks(tracking, dataset, mask)
        log.info(
            "training %s on %s: %d train / %d val / %d test images, %s",
            model_hp.name,
            data_hp.name,
            len(dataset.train.labels),
            len(dataset.val.labels),
            len(dataset.test.labels),
            f"mask {mask_path}" if mask else f"sparse training: {sparse_hp.section}" if sparse_hp else "dense",
        )
        train(
            model,
            dataset,
            train_hp,
            args.out_dir,
            seed=args.seed,
            model_hparams=model_hp,
            record=record,
            mask=mask,
            start_epoch=start_epoch,
            save_epochs=args.save_epochs,
            loss_fn=make_loss(train_hp, teacher),
            gradinit_hparams=gradinit_hp if gradinit_hp.enabled else None,
            options=options,
            stop_epoch=getattr(args, "stop_epoch", None),
            sparse_training=sparse_hp,
        )

    return training


def snapshot_writer(args: argparse.Namespace, config: dict[str, Any], out: Path) -> Callable[[], None]:
    """How `lth snapshot`'s --out is made, its inputs checked: the run's kept epoch<k>.pt published as
    is, or the re-training up to epoch k (resumable in a scratch folder beside --out)."""
    from lth.checkpoints import load_checkpoint
    from lth.io import atomic_link

    kept = Path(args.run) / kept_epoch(args.epoch) if args.run else None
    if kept is not None and kept.is_file():
        check_same_run(Path(args.run), args, config)
        if load_checkpoint(kept)["epoch"] != args.epoch:
            raise UsageError(f"{kept} does not hold epoch {args.epoch}; delete it to have it re-trained")

        def publish_kept() -> None:
            atomic_link(kept, out)
            log.info("published %s (kept by the run) as %s", kept, out)

        return publish_kept
    scratch = out.parent / f".{out.stem}.run"  # resumable: a killed job continues from its last epoch
    trained = scratch / kept_epoch(args.epoch)
    args.out_dir, args.save_epochs, args.stop_epoch = str(scratch), [args.epoch], args.epoch
    training = prepare_training(args, config)

    def retrain() -> None:
        # Without a resume state, a scratch epoch file is a finished re-training killed while publishing.
        if not (trained.is_file() and not store.resume_dir(scratch).exists()):
            log.info(
                "%s holds no epoch %d: re-training from %s up to that epoch",
                args.run or "no --run",
                args.epoch,
                args.init,
            )
            training()  # this process holds --out, so the scratch folder is its own
        load_checkpoint(trained)  # verifies its digest before publishing it
        atomic_link(trained, out)
        shutil.rmtree(scratch)

    return retrain


def _mask_digest(args: argparse.Namespace, record: dict[str, Any]) -> str | None:
    """The digest of the mask --mask names: the recorded one when the run trained with that very file
    (the plan names masks by content), else read from it."""
    recorded_mask = record.get("mask") or {}
    if args.mask and Path(str(recorded_mask.get("path"))).resolve() == Path(args.mask).resolve():
        return recorded_mask.get("sha256")
    from lth.masks import load_mask, mask_hash

    mask = read_input("--mask", require_file(args.mask, "--mask"), load_mask) if args.mask else None
    return mask_hash(mask) if mask else None


def check_same_run(run: Path, args: argparse.Namespace, config: dict[str, Any], flag: str = "--run") -> None:
    """The finished run in `run` (`flag`) must be the training these arguments ask for: same seed,
    settings and mask. Its files are verified first."""
    from lth.manifest import verify_run

    verify_run(run, files=True)  # every file the run published, the kept epoch included, is intact
    record = read_yaml(run / HPARAMS)
    # Where the data lives does not change the run, nor does how it ran (torch.compile).
    what_data, what_training = DataHparams.what_it_computes, TrainHparams.what_it_computes
    mask_digest = _mask_digest(args, record)
    sparse_hp = sparse_training_hparams(args, config)
    wanted = {
        "seed": args.seed,
        "model": model_hparams(args, config, record.get("model")).to_dict(),
        "train": what_training(TrainHparams.from_sources(config, args).to_dict()),
        "data": what_data(DataHparams.from_sources(config, args).to_dict()),
        "gradinit": GradinitHparams.from_sources(config, args).to_dict(),
        "mask": mask_digest,
        "sparse_training": sparse_hp.record() if sparse_hp else None,
    }
    recorded = {
        **{key: record.get(key) for key in ("seed", "model", "gradinit")},
        "train": what_training(record.get("train") or {}),
        "data": what_data(record.get("data") or {}),
        "mask": (record.get("mask") or {}).get("sha256"),
        "sparse_training": record.get("sparse_training"),
    }
    if args.start_epoch is not None:
        wanted["start_epoch"], recorded["start_epoch"] = args.start_epoch, record.get("start_epoch")
    different = [key for key in wanted if wanted[key] != recorded[key]]
    if different:
        fix = (
            "pass the run trained from --init with the same seed, mask and hparams"
            if flag == "--run"
            else "delete it or choose another folder"
        )
        raise UsageError(f"{flag}: {run} holds a run of other settings ({', '.join(different)} differ); {fix}")
