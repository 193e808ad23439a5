"""`lth` command line: one subcommand per workflow stage, explicit input and output paths.

Heavy modules (torch, data sources, plotting) are imported inside each command, so a call pays
only for what it uses.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lth.errors import LthError
from lth.hparams import SECTIONS, DataHparams, GradinitHparams, ModelHparams, PruneHparams, TrainHparams
from lth.io import WrongKindError, check_output
from lth.mask_config import SETTINGS as SOURCE_SETTINGS
from lth.mask_config import ranks_across_layers
from lth.names import MASK_SOURCES
from lth.plots import MASK_SOURCE_LAYOUTS, X_AXES
from lth.yamlio import DuplicateKeyError, read_yaml

if TYPE_CHECKING:  # they import torch, which a command pays for only when it uses it
    from lth.data import Data
    from lth.masks import Mask
    from lth.train import EpochCallback

log = logging.getLogger("lth")


class UsageError(LthError):
    """Bad input that the user can fix; printed without a traceback."""


def _load_config(path: str | None) -> dict[str, Any]:
    """The --config file: a mapping of known sections, each a mapping (or empty)."""
    if path is None:
        return {}
    sections = [cls.section for cls in SECTIONS]
    try:
        config = read_yaml(path) or {}
    except FileNotFoundError:
        raise UsageError(f"--config: {path} does not exist") from None
    except (OSError, ValueError) as error:  # a folder, no permission, bytes that are not text
        raise UsageError(f"--config: {path} cannot be read ({error}); give a YAML file") from None
    except DuplicateKeyError as error:  # names the file, the key and both lines
        raise UsageError(f"--config: {error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise UsageError(
            f"--config: {path} is not valid YAML ({where}{getattr(error, 'problem', None) or error}); fix the syntax"
        ) from None
    if not isinstance(config, dict):
        raise UsageError(f"--config: {path} must hold a mapping with sections {', '.join(sections)}")
    unknown = [key for key in config if key not in sections]
    if unknown:  # a misspelt section would otherwise be ignored without a word
        raise UsageError(f"--config: {path}: unknown section {unknown[0]!r}; allowed sections: {', '.join(sections)}")
    for section, values in config.items():
        if values is not None and not isinstance(values, dict):
            raise UsageError(
                f"--config: {path}: section {section!r} must be a mapping of keys to values "
                f"(e.g. `{section}: {{key: value}}`), not {values!r}"
            )
    return config


def _require_file(path: str | None, flag: str) -> Path | None:
    if path is not None and not Path(path).is_file():
        raise UsageError(f"{flag}: {path} does not exist or is not a file")
    return Path(path) if path is not None else None


def _output_file(path: str | Path, flag: str, force: bool, folder: bool = False) -> Path:
    """Checked before any work: `path` can be written, and a file is not replaced unless --force."""
    path = Path(path)
    try:
        check_output(path, folder=folder)
    except LthError as error:
        raise UsageError(f"{flag}: {error}") from None
    if path.exists() and not force and not folder:
        raise UsageError(f"{flag}: {path} already exists; pass --force to replace it, or choose another path")
    return path


def _read(flag: str, path: Path, load: Callable[[Path], Any]) -> Any:
    """`load(path)`, with the flag that named the file in front of any error."""
    try:
        return load(path)
    except LthError as error:
        raise UsageError(f"{flag}: {error}") from None


def _produce(
    path: str | Path,
    flag: str,
    args: argparse.Namespace,
    intact: Callable[[Path], Any],
    prepare: Callable[[], Callable[[], None]],
) -> None:
    """Write `path` unless it is already there, as the one process writing it (lth.store.claim).
    An intact `path` is never replaced: it is kept with --reuse (at once, reading files only) and
    refused without. `intact` raises UsageError for a file of other settings (refused) and LthError
    for a damaged one, which only --force replaces. `prepare` checks every input and returns the
    writing itself: a refused command writes nothing, not even its lock."""
    from lth import store

    path = Path(path)
    _output_file(path, flag, force=True)  # writable; an existing file is judged below
    if _keep_existing(path, flag, args, intact, locked=False):  # finished already: no lock needed to read it
        return
    write = prepare()
    with store.claim(path):
        if not _keep_existing(path, flag, args, intact):  # or finished by the process this one waited for
            write()


def _keep_existing(
    path: Path, flag: str, args: argparse.Namespace, intact: Callable[[Path], Any], locked: bool = True
) -> bool:
    """Whether `path` exists, intact, and --reuse keeps it; False when there is nothing (or, with
    --force, only a damaged file) to keep; a UsageError otherwise."""
    if not path.exists():
        return False
    try:
        intact(path)
    except UsageError:
        raise  # intact, but of other settings: never replaced
    except WrongKindError as error:
        raise UsageError(
            f"{flag}: {path} is another kind of file than {error.what}, never replaced; delete it or "
            "choose another path"
        ) from None
    except LthError as damage:
        if not args.force:
            raise UsageError(f"{flag}: {path} exists but is damaged ({damage}); pass --force to replace it") from None
        if locked:  # said once, by the process that replaces it
            log.warning("replacing %s: %s", path, damage)
        return False
    if not args.reuse:
        raise UsageError(f"{flag}: {path} already exists; pass --reuse to keep it, or delete it to write it again")
    log.info("%s is already there and intact: kept as it is", path)
    return True


def _add_store_flags(parser: argparse.ArgumentParser, what: str = "--out") -> None:
    """--reuse and --force of a command whose output may be shared (the workflow's run store)."""
    parser.add_argument(
        "--reuse",
        action="store_true",
        help=f"if {what} already holds an intact result, succeed "
        "without touching it (the workflow's store names outputs by their settings' hash)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help=f"replace {what} if it is damaged or incomplete; an "
        "intact result is never replaced (delete it by hand to redo it)",
    )


def _check_common(args: argparse.Namespace) -> None:
    """Options several commands share; argparse only checks that they are integers."""
    seed, threads = getattr(args, "seed", None), getattr(args, "threads", None)
    if seed is not None and seed < 0:
        raise UsageError(f"--seed: {seed} is not allowed; seeds must be >= 0")
    if threads is not None and threads < 1:
        raise UsageError(f"--threads: {threads} is not allowed; must be >= 1 (omit it for torch's choice)")
    jobs_per_gpu = getattr(args, "jobs_per_gpu", None)
    if jobs_per_gpu is not None and jobs_per_gpu < 1:
        raise UsageError(f"--jobs-per-gpu: {jobs_per_gpu} is not allowed; must be >= 1")


def _model_hparams(args: argparse.Namespace, config: dict[str, Any], base: dict[str, Any] | None) -> ModelHparams:
    """The checkpoint's architecture, then the config's `model` section, then flags."""
    merged = {**(base or {}), **(config.get("model") or {})}
    return ModelHparams.from_sources({"model": merged}, args)


def _setup_torch(args: argparse.Namespace) -> None:
    import torch

    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)


@dataclass(frozen=True)
class Tracker:
    """A measurement `lth train --track NAME` takes at the end of every epoch, as extra metrics.csv
    columns. Each setting is a flag --NAME-SETTING; the chosen settings go into the run's record
    (hparams.yaml), so a resume state written with other tracking is refused."""

    help: str
    settings: dict[str, tuple[int | float, str]]  # setting -> (default, help); the flag's type is the default's
    check: Callable[[dict[str, Any]], None]  # raises UsageError naming the flag; runs before the data load
    build: Callable[[dict[str, Any], Data, Mask | None], EpochCallback]  # after the data load, before training


def _tracker_flag(name: str, setting: str) -> str:
    return f"--{name}-{setting.replace('_', '-')}"


def _check_hessian_tracking(settings: dict[str, Any]) -> None:
    # `lth analyze`'s _check_hessian names its own flags and allows --sample 0 (the whole training
    # split, an epoch's worth of Hessian-vector products per iteration): not a per-epoch setting.
    checks = [
        ("sample", settings["sample"] >= 1, ">= 1, at most the training split's images"),
        ("sample_seed", settings["sample_seed"] >= 0, ">= 0"),
        ("tol", math.isfinite(settings["tol"]) and settings["tol"] > 0, "a finite number > 0"),
        ("max_iter", settings["max_iter"] >= 1, ">= 1"),
    ]
    for setting, ok, allowed in checks:
        if not ok:
            raise UsageError(
                f"{_tracker_flag('hessian', setting)}: {settings[setting]} is not allowed; must be {allowed}"
            )


def _hessian_tracker(settings: dict[str, Any], dataset: Data, mask: Mask | None) -> EpochCallback:
    from lth.analysis.hessian import HessianTracker

    available = len(dataset.train.labels)
    if settings["sample"] > available:  # known only once the data is loaded; still before training
        raise UsageError(
            f"--hessian-sample: {settings['sample']} is not allowed; the training split has only "
            f"{available} images (must be in [1, {available}])"
        )
    return HessianTracker(dataset, mask, **settings)


TRACKERS: dict[str, Tracker] = {
    "hessian": Tracker(
        "the top eigenvalue of the masked Hessian of plain cross-entropy, as `lth analyze hessian` computes it",
        {
            "sample": (200, "training images in the fixed sample"),
            "sample_seed": (0, "seed of the sample"),
            "tol": (1e-3, "relative tolerance of power iteration"),
            "max_iter": (100, "power-iteration budget"),
        },
        _check_hessian_tracking,
        _hessian_tracker,
    ),
}


def _tracking(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The trackers --track asks for and their settings (flags, else defaults), checked. A setting
    of a tracker that is not asked for is an error: it would be silently ignored."""
    tracking = {}
    for name, tracker in TRACKERS.items():
        given = {setting: getattr(args, f"{name}_{setting}", None) for setting in tracker.settings}
        if name not in args.track:
            unused = [setting for setting, value in given.items() if value is not None]
            if unused:
                raise UsageError(
                    f"{_tracker_flag(name, unused[0])}: only used with --track {name}; add "
                    f"--track {name} or drop the flag"
                )
            continue
        settings = {
            setting: default if given[setting] is None else given[setting]
            for setting, (default, _) in tracker.settings.items()
        }
        tracker.check(settings)
        tracking[name] = settings
    return tracking


def _add_tracking(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--track",
        nargs="+",
        action="extend",
        default=[],
        choices=tuple(TRACKERS),
        metavar="NAME",
        help="measure after every epoch, as extra metrics.csv columns: "
        + "; ".join(f"{name}: {tracker.help}" for name, tracker in TRACKERS.items()),
    )
    for name, tracker in TRACKERS.items():
        group = parser.add_argument_group(f"--track {name}")
        for setting, (default, help) in tracker.settings.items():
            group.add_argument(
                _tracker_flag(name, setting),
                dest=f"{name}_{setting}",
                type=type(default),
                default=None,
                metavar=setting.upper(),
                help=f"{help} (default: {default})",
            )


def cmd_data(args: argparse.Namespace) -> None:
    """Fetch a dataset (when data.download is set) and check that it loads, once, before any training
    reads it; writes what it found to --out (JSON)."""
    from lth import data, store
    from lth.io import read_json, write_json

    config = _load_config(args.config)
    data_hp = DataHparams.from_sources(config, args)
    source = data.get_source(data_hp.name)

    def intact(path: Path) -> None:
        try:
            found = read_json(path)
        except (OSError, ValueError) as error:
            raise LthError(f"not a dataset record ({error})") from None
        if not isinstance(found, dict) or found.get("dataset") != data_hp.name or found.get("root") != data_hp.root:
            raise UsageError(f"--out: {path} records another dataset or folder; delete it or choose another path")

    def fetch() -> None:
        root = Path(data.data_root(data_hp))
        # Two workflows fetching into one folder at once would write the same files together.
        downloading = store.claim(root / data_hp.name) if data_hp.download else contextlib.nullcontext()
        log.info("%s %s under %s", "fetching" if data_hp.download else "checking", data_hp.name, data_hp.root)
        with downloading:
            raw = source.load(data.data_root(data_hp), data_hp.download)
        found = {
            "dataset": data_hp.name,
            "root": data_hp.root,
            "num_classes": raw.num_classes,
            "train": len(raw.train.labels),
            "test": len(raw.test.labels),
            "image_shape": list(raw.train.images.shape[1:]),
        }
        write_json(args.out, found)
        log.info(
            "%s: %d train and %d test images of %d classes",
            data_hp.name,
            found["train"],
            found["test"],
            found["num_classes"],
        )

    _produce(args.out, "--out", args, intact, lambda: fetch)


def cmd_init(args: argparse.Namespace) -> None:
    from lth import data
    from lth.checkpoints import init_model, load_checkpoint, save_checkpoint

    config = _load_config(args.config)
    model_hp = _model_hparams(args, config, None)
    data_hp = DataHparams.from_sources(config, args)
    _setup_torch(args)
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

    _produce(args.out, "--out", args, intact, lambda: save)


def cmd_train(args: argparse.Namespace) -> None:
    """Train into --out-dir, holding it (lth.store.claim) from the first look at the folder to the
    last file published; every attempt's log is appended to its train.log."""
    from lth import store

    config = _load_config(args.config)
    out_dir = _output_file(args.out_dir, "--out-dir", True, folder=True)
    if _kept_finished_run(out_dir, args, config, locked=False):  # finished already: reading files only
        return
    training = _prepare_training(args, config)  # every check of the input: a refused run writes nothing
    with store.claim(out_dir, folder=True):
        if _kept_finished_run(out_dir, args, config):  # finished by the process this one waited for
            return
        with store.attempt_log(out_dir / "train.log"):
            training()


def _kept_finished_run(out_dir: Path, args: argparse.Namespace, config: dict[str, Any], locked: bool = True) -> bool:
    """Whether --out-dir already holds this finished run, verified, to keep as it is (--reuse). A
    finished run is never trained over: without --reuse it is an error, and only a damaged one is
    replaced, with --force. Reads files only, so a job that finds its run done ends in a second."""
    from lth.manifest import SUMMARY

    if not (out_dir / SUMMARY).exists():
        return False
    try:
        _check_same_run(out_dir, args, config, "--out-dir")  # verifies every file the run lists, then its settings
    except UsageError:
        raise
    except LthError as damage:
        if not args.force:
            raise UsageError(
                f"--out-dir: {out_dir} holds a damaged run ({damage}); pass --force to train it again"
            ) from None
        if locked:  # said once, by the process that trains it
            log.warning("training %s again: %s", out_dir, damage)
        return False
    if not args.reuse:
        raise UsageError(
            f"--out-dir: {out_dir} already holds this finished run; pass --reuse to keep it, or delete "
            "the folder to train it again"
        )
    log.info("%s already holds this finished run (verified): kept as it is", out_dir)
    return True


def _prepare_training(args: argparse.Namespace, config: dict[str, Any]) -> Callable[[], None]:
    """Check every input of a training (files, settings, their fit) without writing anything, and
    return the training itself: it checks --out-dir, loads the data and trains."""
    from lth import data
    from lth.checkpoints import build_model, load_checkpoint, load_ticket_weights
    from lth.devices import assign_device
    from lth.losses import make_loss
    from lth.masks import MaskEnforcer, load_mask, mask_hash
    from lth.train import RunOptions, check_run, check_settings, train

    init_path = _require_file(args.init, "--init")
    mask_path = _require_file(args.mask, "--mask")
    teacher_path = _require_file(args.teacher, "--teacher")
    checkpoint = _read("--init", init_path, load_checkpoint)
    model_hp = _model_hparams(args, config, checkpoint["model"])
    data_hp = DataHparams.from_sources(config, args)
    train_hp = TrainHparams.from_sources(config, args)
    gradinit_hp = GradinitHparams.from_sources(config, args)
    if train_hp.kd_alpha > 0 and teacher_path is None:
        raise UsageError(
            f"train.kd_alpha: {train_hp.kd_alpha} distils from a teacher; pass --teacher "
            "(the dense network's final weights)"
        )
    if train_hp.kd_alpha == 0 and teacher_path is not None:
        raise UsageError("--teacher: only used for distillation; set train.kd_alpha > 0 or drop --teacher")
    tracking = _tracking(args)
    teacher_checkpoint = _read("--teacher", teacher_path, load_checkpoint) if teacher_path else None
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
    _setup_torch(args)
    model = build_model(model_hp, num_classes)
    try:
        load_ticket_weights(model, checkpoint["state_dict"])  # only the skip tweak's jump branches start fresh
    except LthError as error:
        raise UsageError(f"--init: {init_path}: {error}") from None
    mask = _read("--mask", mask_path, load_mask) if mask_path else None
    if mask:
        try:
            MaskEnforcer(model, mask)  # validates names and shapes against this architecture
        except LthError as error:
            raise UsageError(
                f"--mask: {mask_path} does not fit this model ({error}); use a mask drawn from "
                "the same architecture and width"
            ) from None
    teacher = None
    if teacher_checkpoint:
        # The teacher keeps its own architecture: a tweaked student distils from the plain dense network.
        teacher = build_model(ModelHparams.from_dict(teacher_checkpoint["model"]), num_classes)
        teacher.load_state_dict(teacher_checkpoint["state_dict"])
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
    if tracking:  # only then: the records, so the resume states, of untracked runs stay as they were
        record["track"] = tracking

    if teacher is not None:
        teacher.to(device)

    def training() -> None:
        check_run(Path(args.out_dir), train_hp, start_epoch, args.save_epochs, options)  # the folder, under the lock
        dataset = data.load(data_hp, args.seed)  # after every cheap check: this is the first slow step
        options.callbacks = [TRACKERS[name].build(settings, dataset, mask) for name, settings in tracking.items()]
        log.info(
            "training %s on %s: %d train / %d val / %d test images, %s",
            model_hp.name,
            data_hp.name,
            len(dataset.train.labels),
            len(dataset.val.labels),
            len(dataset.test.labels),
            f"mask {mask_path}" if mask else "dense",
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
        )

    return training


def cmd_snapshot(args: argparse.Namespace) -> None:
    """The weights of a run after --epoch: the finished --run's own epoch<k>.pt when it kept one (the
    same trajectory), else the same training re-run from --init up to that epoch. A dense run's
    snapshot is a rewind point; a sparse run's (with --mask) is what an analysis of epoch k reads."""
    from lth.checkpoints import load_checkpoint

    config = _load_config(args.config)
    train_hp = TrainHparams.from_sources(config, args)
    if not 0 < args.epoch < train_hp.epochs:
        raise UsageError(f"--epoch: {args.epoch} is not allowed; must be in [1, train.epochs={train_hp.epochs})")

    def intact(path: Path) -> None:
        if load_checkpoint(path)["epoch"] != args.epoch:
            raise UsageError(
                f"--out: {path} holds the weights of another epoch than {args.epoch}; delete it or choose another path"
            )

    _produce(args.out, "--out", args, intact, lambda: _snapshot_writer(args, config, Path(args.out)))


def _snapshot_writer(args: argparse.Namespace, config: dict[str, Any], out: Path) -> Callable[[], None]:
    """How --out is made, its inputs checked: the run's kept epoch<k>.pt published as is, or the
    re-training up to epoch k (resumable in a scratch folder beside --out)."""
    import shutil

    from lth.checkpoints import load_checkpoint
    from lth.io import atomic_link
    from lth.train import RESUME_DIR

    kept = Path(args.run) / f"epoch{args.epoch}.pt" if args.run else None
    if kept is not None and kept.is_file():
        _check_same_run(Path(args.run), args, config)
        if load_checkpoint(kept)["epoch"] != args.epoch:
            raise UsageError(f"{kept} does not hold epoch {args.epoch}; delete it to have it re-trained")

        def publish_kept() -> None:
            atomic_link(kept, out)
            log.info("published %s (kept by the run) as %s", kept, out)

        return publish_kept
    scratch = out.parent / f".{out.stem}.run"  # resumable: a killed job continues from its last epoch
    trained = scratch / f"epoch{args.epoch}.pt"
    args.out_dir, args.save_epochs, args.stop_epoch = str(scratch), [args.epoch], args.epoch
    training = _prepare_training(args, config)

    def retrain() -> None:
        # Without a resume state, a scratch epoch file is a finished re-training killed while publishing.
        if not (trained.is_file() and not (scratch / RESUME_DIR).exists()):
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


def _check_same_run(run: Path, args: argparse.Namespace, config: dict[str, Any], flag: str = "--run") -> None:
    """The finished run in `run` (`flag`) must be the training these arguments ask for: same seed,
    settings and mask. Its files are verified first."""
    from lth.data.identity import LOCATION_FIELDS
    from lth.manifest import verify_run

    verify_run(run, files=True)  # every file the run published, the kept epoch included, is intact
    record = read_yaml(run / "hparams.yaml")

    def what_data(settings: dict[str, Any]) -> dict[str, Any]:  # where the data lives does not change the run
        return {key: value for key, value in settings.items() if key not in LOCATION_FIELDS}

    def what_training(settings: dict[str, Any]) -> dict[str, Any]:  # nor does how it ran (torch.compile)
        return TrainHparams.what_it_computes(settings)

    recorded_mask = record.get("mask") or {}
    if args.mask and Path(str(recorded_mask.get("path"))).resolve() == Path(args.mask).resolve():
        mask_digest = recorded_mask.get("sha256")  # the file it trained with (the plan names masks by content)
    else:
        from lth.masks import load_mask, mask_hash

        mask = _read("--mask", _require_file(args.mask, "--mask"), load_mask) if args.mask else None
        mask_digest = mask_hash(mask) if mask else None
    wanted = {
        "seed": args.seed,
        "model": _model_hparams(args, config, record.get("model")).to_dict(),
        "train": what_training(TrainHparams.from_sources(config, args).to_dict()),
        "data": what_data(DataHparams.from_sources(config, args).to_dict()),
        "gradinit": GradinitHparams.from_sources(config, args).to_dict(),
        "mask": mask_digest,
    }
    recorded = {
        **{key: record.get(key) for key in ("seed", "model", "gradinit")},
        "train": what_training(record.get("train") or {}),
        "data": what_data(record.get("data") or {}),
        "mask": (record.get("mask") or {}).get("sha256"),
    }
    if args.start_epoch is not None:
        wanted["start_epoch"], recorded["start_epoch"] = args.start_epoch, record.get("start_epoch")
    different = [key for key in wanted if wanted[key] != recorded[key]]
    if different:
        raise UsageError(
            f"{flag}: {run} holds a run of other settings ({', '.join(different)} differ); "
            + (
                "pass the run trained from --init with the same seed, mask and hparams"
                if flag == "--run"
                else "delete it or choose another folder"
            )
        )


def cmd_prune(args: argparse.Namespace) -> None:
    """A mask at the level `--rounds` of magnitude pruning: magnitude pruning itself, or another source
    (lth/mask_sources.py) keeping the same number of weights."""
    from lth.masks import load_mask, read_sidecar, sidecar_path

    config = _load_config(args.config)
    weights_path = _require_file(args.weights, "--weights")
    mask_path = _require_file(args.mask, "--mask")
    prune_hp = PruneHparams.from_sources(config, args)
    if args.rounds < 1:
        raise UsageError(f"--rounds: {args.rounds} is not allowed; must be >= 1")
    _check_mask_source(args, mask_path)
    if prune_hp.scope == "layerwise" and ranks_across_layers(args.method, args.like):
        raise UsageError(
            f"--prune.scope: layerwise is not allowed with --method {args.method}, which ranks weights "
            "across layers as its paper does; use global (or --method random --like MASK for a "
            "mask's per-layer counts)"
        )
    out = Path(args.out)
    if out.suffix == ".json":
        raise UsageError(f"--out: {out} ends in .json, where its sidecar goes; give a .pt path")
    _output_file(sidecar_path(out), "--out (its sidecar)", True)

    def intact(path: Path) -> None:
        load_mask(path)  # and its sidecar: a mask killed before its sidecar was written is damaged
        provenance = read_sidecar(path).get("provenance") or {}
        if (provenance.get("method"), provenance.get("rounds")) != (args.method, args.rounds):
            raise UsageError(
                f"--out: {path} holds a mask of other settings (method {provenance.get('method')}, "
                f"rounds {provenance.get('rounds')}); delete it or choose another path"
            )

    _produce(out, "--out", args, intact, lambda: _mask_writer(args, config, out, prune_hp, weights_path, mask_path))


def _mask_writer(
    args: argparse.Namespace,
    config: dict[str, Any],
    out: Path,
    prune_hp: PruneHparams,
    weights_path: Path,
    mask_path: Path | None,
) -> Callable[[], None]:
    """How the mask is made, its inputs read and checked."""
    from lth.checkpoints import build_model, load_checkpoint, nonfinite
    from lth.masks import dense_mask, load_mask, prunable_names, prune, save_mask

    checkpoint = _read("--weights", weights_path, load_checkpoint)
    weights = checkpoint["state_dict"]
    diverged = nonfinite(weights)
    if diverged:  # magnitudes of NaN or inf weights rank nothing
        raise UsageError(
            f"--weights: {weights_path} holds non-finite values ({', '.join(diverged[:3])}): the run "
            "that wrote it diverged; retrain it with a lower train.lr"
        )
    model = build_model(ModelHparams.from_dict(checkpoint["model"]), checkpoint["num_classes"])
    if mask_path:
        mask = _read("--mask", mask_path, load_mask)  # an existing mask fixes which tensors are prunable
    else:
        mask = dense_mask(weights, prunable_names(model, prune_hp.include_linear))
    provenance = {
        "method": args.method,
        "weights": str(weights_path),
        "mask": str(mask_path) if mask_path else None,
        "rounds": args.rounds,
        **prune_hp.to_dict(),
    }

    new_mask = None
    if args.method == "magnitude":  # quick, and its failure is one of the input: before anything is written
        try:
            new_mask = prune(weights, mask, prune_hp, rounds=args.rounds)
        except LthError as error:
            raise UsageError(f"--mask: {mask_path} does not fit --weights {weights_path}: {error}") from None

    def write() -> None:
        nonlocal new_mask
        if new_mask is None:
            model.load_state_dict(weights)
            new_mask, settings = _mask_from_source(args, config, model, list(mask), prune_hp)
            provenance.update(settings)
        info = save_mask(out, new_mask, provenance)
        log.info(
            "wrote %s (%s): sparsity %.2f%% (%d of %d weights kept)",
            args.out,
            args.method,
            100 * info["sparsity"],
            info["kept"],
            info["total"],
        )

    return write


def _check_mask_source(args: argparse.Namespace, mask_path: Path | None) -> None:
    """The options a mask source needs, and only those, before any work."""
    if args.method != "magnitude" and mask_path:
        raise UsageError(
            f"--mask: only --method magnitude prunes an existing mask; {args.method} draws a mask at "
            "the level --rounds from the dense network"
        )
    if (args.method == "file") != (args.file is not None):
        raise UsageError(
            "--file: the user's mask file, given exactly with --method file"
            if args.file is None
            else f"--file: only read with --method file, not {args.method}"
        )
    if args.like is not None and args.method != "random":
        raise UsageError(f"--like: only read with --method random, not {args.method}")
    if args.batches < 1 or args.batch_size < 1 or args.synflow_rounds < 1:
        raise UsageError("--batches, --batch-size and --synflow-rounds must be >= 1")


def _mask_from_source(
    args: argparse.Namespace, config: dict[str, Any], model: Any, names: list[str], prune_hp: PruneHparams
) -> tuple[Mask, dict[str, Any]]:
    """The mask of `args.method` at IMP level `args.rounds`'s count, from `model` (theta0), and the
    settings it was drawn with, recorded in the sidecar."""
    import time

    import torch

    from lth import mask_sources
    from lth.masks import load_mask

    _setup_torch(args)
    params = dict(model.named_parameters())
    count = mask_sources.kept_count(names, params, prune_hp.rate, args.rounds)
    started = time.perf_counter()
    if args.method == "random":
        like = _read("--like", _require_file(args.like, "--like"), load_mask) if args.like else None
        if like is not None and sum(int(keep.sum()) for keep in like.values()) != count:
            log.warning(
                "--like %s keeps %d weights, level %d keeps %d: its per-layer counts win",
                args.like,
                sum(int(keep.sum()) for keep in like.values()),
                args.rounds,
                count,
            )
        try:
            mask = mask_sources.random_mask({name: params[name].shape for name in names}, count, args.seed, like)
        except LthError as error:
            raise UsageError(f"--like: {args.like}: {error}") from None
        settings: dict[str, Any] = {"seed": args.seed, "like": args.like}
    elif args.method == "file":
        try:
            mask, settings = mask_sources.load_user_mask(
                Path(args.file), {name: params[name].shape for name in names}, params
            )
        except LthError as error:
            raise UsageError(f"--file: {error}") from None
    elif args.method == "synflow":
        from lth.data.sources import SOURCES

        channels = params[names[0]].shape[1]  # the first prunable layer reads the image
        size = SOURCES[DataHparams.from_sources(config, args).name].image_size
        mask = mask_sources.synflow_mask(model, names, count, (channels, size, size), args.synflow_rounds)
        settings = {"synflow_rounds": args.synflow_rounds, "input_shape": [channels, size, size]}
    else:  # snip, grasp: scores on the first training batches of the seed
        from lth import data
        from lth.data.batches import Batches

        data_hp = DataHparams.from_sources(config, args)
        dataset = data.load(data_hp, args.seed)
        batches = Batches(
            dataset.train,
            args.batch_size,
            dataset.mean,
            dataset.std,
            torch.device("cpu"),
            generator=torch.Generator().manual_seed(args.seed),
            flip=dataset.flip,
            crop_padding=dataset.crop_padding,
            channels_last=False,
        )
        sample = [batch for batch, _ in zip(batches, range(args.batches))]
        scores = mask_sources.SCORES[args.method](model, names, sample)
        mask = mask_sources.keep_top(scores, count)
        settings = {"seed": args.seed, "batches": len(sample), "batch_size": args.batch_size, "data": data_hp.to_dict()}
    settings["seconds"] = round(time.perf_counter() - started, 3)
    return mask, settings


def cmd_info(args: argparse.Namespace) -> None:
    from lth.info import describe_path

    info = describe_path(Path(args.path))
    print(json.dumps(info, indent=2) if args.json else yaml.safe_dump(info, sort_keys=False), end="")


def cmd_ls(args: argparse.Namespace) -> None:
    from lth import runs

    folders = runs.scan(Path(args.results))
    print(runs.as_json(folders) if args.json else runs.table(folders))


def cmd_link(args: argparse.Namespace) -> None:
    from lth import store

    try:
        store.link(args.results, args.targets)
    except LthError as error:
        raise UsageError(str(error)) from None


def cmd_gc(args: argparse.Namespace) -> None:
    from lth import runs, store

    results, planned = Path(args.results), set()
    if args.configs:
        results, planned = runs.referenced([Path(path) for path in args.configs])
        if args.results != "results" and Path(args.results).resolve() != results.resolve():
            raise UsageError(f"--results: {args.results} is not the results folder of these configs ({results})")
    recorded = store.references(results)
    unknown = [name for name in args.forget if name not in recorded]
    if unknown:
        raise UsageError(
            f"--forget: {unknown[0]} is not a recorded experiment of {results / 'runs'}; recorded: "
            f"{', '.join(recorded) or 'none'}"
        )
    plan = runs.collection(results, planned, recorded, args.forget)
    print(plan.report())
    if not args.yes:
        if plan.unused or args.forget:
            print("pass --yes to delete" + (f" them and forget {', '.join(args.forget)}" if args.forget else " them"))
        return
    with store.exclusive(results):
        plan = runs.collection(results, planned, store.references(results), args.forget)  # as it is now
        for name in args.forget:
            store.references_file(results, name).unlink(missing_ok=True)
        for folder in plan.unused:
            runs.delete(results, folder)
    print(
        f"deleted {len(plan.unused)} run folders ({runs.human_size(plan.size)})"
        + (f"; forgot {', '.join(args.forget)}" if args.forget else "")
    )


def cmd_aggregate(args: argparse.Namespace) -> None:
    from lth.aggregate import ROW_FORMAT, aggregate, merge_summaries

    if bool(args.rows) == bool(args.experiments):
        raise UsageError(
            f"give either rows {ROW_FORMAT} (one experiment's summary.csv) or "
            "--experiments NAME=SUMMARY_CSV ... (every experiment's rows in one table), not both"
        )
    out = _output_file(args.out, "--out", args.force)
    if args.experiments:
        merge_summaries(args.experiments, out)
    else:
        aggregate(args.rows, out)


def cmd_plot(args: argparse.Namespace) -> None:
    from lth.plots import plot_accuracy_vs_sparsity

    summary = _require_file(args.summary, "--summary")
    outputs = [_output_file(path, "--out", args.force) for path in args.out]
    plot_accuracy_vs_sparsity(summary, outputs, x=args.x, title=args.title, mask_sources=args.mask_sources)


def cmd_figure(args: argparse.Namespace) -> None:
    from lth import figures
    from lth.analysis import figures as analysis_figures
    from lth.plots import check_outputs

    if args.name in analysis_figures.FIGURES:
        if args.x is not None:
            raise UsageError(
                f"--x: {args.name} is an analysis figure and takes no --x; it is for the accuracy "
                f"figures ({', '.join([*figures.SUMMARY_FIGURES, *figures.GRID_FIGURES])})"
            )
        try:  # every cheap check before the CSV is read
            epoch = analysis_figures.parse_epoch(args.name, args.epoch)
        except LthError as error:
            raise UsageError(f"--epoch: {error}") from None
        for path in args.out:
            try:
                analysis_figures.check_output_suffix(args.name, path)
            except LthError as error:
                raise UsageError(f"--out: {error}") from None
        draw = functools.partial(analysis_figures.draw, args.name, epoch=epoch, title=args.title)
    else:
        if args.epoch is not None:
            raise UsageError(f"--epoch: {args.name} draws accuracy from a summary.csv and takes no --epoch")
        try:  # every cheap check before the CSV is read (argparse has checked --x)
            check_outputs(args.name, args.out)
        except LthError as error:
            raise UsageError(f"--out: {error}") from None
        draw = functools.partial(figures.draw, args.name, x=args.x or "sparsity", title=args.title)
    csv = _require_file(args.csv, "--csv")
    outputs = [_output_file(path, "--out", args.force) for path in args.out]
    draw(csv, outputs)
    log.info("wrote %s from %s", ", ".join(map(str, outputs)), csv)


def cmd_tickets(args: argparse.Namespace) -> None:
    from lth.tickets import parse_pair, write_tickets

    try:
        pairs = [parse_pair(text) for text in args.pair]
    except LthError as error:
        raise UsageError(str(error)) from None
    summary = _require_file(args.summary, "--summary")
    out = _output_file(args.out, "--out", args.force)
    statistics = write_tickets(summary, out, pairs)
    log.info("wrote %d statistics to %s", len(statistics), out)


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default="auto",
        help="auto, cpu, cuda or cuda:N; with several GPUs visible, auto and cuda take a free one",
    )
    parser.add_argument(
        "--jobs-per-gpu",
        type=int,
        default=1,
        help="jobs that may share one GPU when auto or cuda picks a card (lth/devices.py)",
    )


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file with sections model/data/train/prune/gradinit (flags override it)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lth", description=__doc__.splitlines()[0])
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Callable[[argparse.Namespace], None], help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(func=func)
        return sub

    fetch = command("data", cmd_data, "fetch a dataset (with --data.download true) and check that it loads")
    fetch.add_argument("--out", required=True, help="JSON file to write: what was found (sizes, classes)")
    _add_store_flags(fetch)
    _add_config(fetch)
    DataHparams.add_arguments(fetch)

    init = command("init", cmd_init, "write the initial weights theta0 of a model for a seed")
    init.add_argument("--out", required=True, help="checkpoint to write (.pt)")
    init.add_argument("--seed", type=int, required=True)
    _add_store_flags(init)
    _add_config(init)
    _add_run_options(init)
    ModelHparams.add_arguments(init)
    DataHparams.add_arguments(init)

    train = command("train", cmd_train, "train dense or masked from given weights; resumes if interrupted")
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
    _add_device(train)
    train.add_argument("--no-channels-last", action="store_true", help="keep NCHW memory format")
    _add_store_flags(train, "--out-dir")
    _add_tracking(train)
    _add_config(train)
    _add_run_options(train)
    ModelHparams.add_arguments(train)
    DataHparams.add_arguments(train)
    TrainHparams.add_arguments(train)
    GradinitHparams.add_arguments(train)

    snapshot = command(
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
    _add_device(snapshot)
    snapshot.add_argument("--no-channels-last", action="store_true", help="keep NCHW memory format")
    _add_store_flags(snapshot)
    snapshot.set_defaults(track=[])  # it re-trains through cmd_train, and a snapshot tracks nothing
    _add_config(snapshot)
    _add_run_options(snapshot)
    ModelHparams.add_arguments(snapshot)
    DataHparams.add_arguments(snapshot)
    TrainHparams.add_arguments(snapshot)
    GradinitHparams.add_arguments(snapshot)

    prune = command(
        "prune",
        cmd_prune,
        "a mask: magnitude pruning of trained weights (given the current mask), or "
        "another source at the same level's count (random, snip, grasp, synflow, a user's file)",
    )
    prune.add_argument(
        "--method",
        default="magnitude",
        choices=MASK_SOURCES,
        help="magnitude (IMP/OMP); random, snip (Lee et al. 2019), grasp (Wang et al. 2020), synflow "
        "(Tanaka et al. 2020): drawn from --weights (theta0) at level --rounds's count; file: "
        "--file, checked against the model (lth/mask_sources.py)",
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
    prune.add_argument("--like", help="random: keep each layer's count of this mask (the random-pruning control)")
    prune.add_argument("--file", help="file: the user's mask (.pt or .npz, parameter name -> boolean array)")
    prune.add_argument(
        "--batches", type=int, default=SOURCE_SETTINGS["snip"]["batches"], help="snip, grasp: training batches scored"
    )
    prune.add_argument(
        "--batch-size", type=int, default=SOURCE_SETTINGS["snip"]["batch_size"], help="snip, grasp: images per batch"
    )
    prune.add_argument(
        "--synflow-rounds",
        type=int,
        default=SOURCE_SETTINGS["synflow"]["rounds"],
        help="synflow: pruning rounds (exponential schedule)",
    )
    _add_store_flags(prune, "--out (with its sidecar)")
    _add_config(prune)
    _add_run_options(prune)
    PruneHparams.add_arguments(prune)
    DataHparams.add_arguments(prune)

    info = command("info", cmd_info, "describe a checkpoint, a mask, or a run folder")
    info.add_argument("path")
    info.add_argument("--json", action="store_true", help="JSON instead of YAML")

    ls = command(
        "ls",
        cmd_ls,
        "list the run folders of a results folder: kind, hash, status, variant (what the "
        "run trained: lth, at+trt, dense, dense+swish, ...), settings, test_acc_pct (test accuracy in "
        "percent at the epoch of best validation accuracy, as summary.csv's column of that name), age, size",
    )
    ls.add_argument("results", nargs="?", default="results", help="the workflow's results folder")
    ls.add_argument(
        "--json",
        action="store_true",
        help="JSON instead of a table (with final_test_acc_pct too: the test accuracy in %% after the last epoch)",
    )

    link = command(
        "link",
        cmd_link,
        "publish finished files of a results folder as links under "
        "RESULTS/published (what the workflow's jobs declare as their outputs; lth/store.py)",
    )
    link.add_argument("--results", required=True, help="the results folder the files are in")
    link.add_argument("targets", nargs="+", metavar="FILE", help="finished files under --results")

    gc = command(
        "gc",
        cmd_gc,
        "list the run folders no experiment uses, and why; delete them with --yes. A "
        "folder is kept while an experiment recorded in the store uses it (each workflow run records "
        "its experiments' runs) or a given config plans it",
    )
    gc.add_argument(
        "configs",
        nargs="*",
        metavar="CONFIG",
        help="configs whose planned runs to keep too, recorded or not (they also name the results folder)",
    )
    gc.add_argument(
        "--results", default="results", help="the results folder, when no config is given (default: results)"
    )
    gc.add_argument(
        "--forget",
        nargs="+",
        default=[],
        metavar="EXPERIMENT",
        help="drop these experiments' records, so that the runs only they used are deleted too",
    )
    gc.add_argument(
        "--yes",
        action="store_true",
        help="delete the folders listed (and forget --forget's "
        "experiments); refused while a workflow is running on the store",
    )

    aggregate = command("aggregate", cmd_aggregate, "collect finished runs into one summary.csv")
    aggregate.add_argument("--out", required=True, help="summary.csv to write")
    aggregate.add_argument("--force", action="store_true", help="replace --out if it exists")
    aggregate.add_argument(
        "--experiments",
        nargs="+",
        metavar="NAME=SUMMARY_CSV",
        default=[],
        help="write every experiment's summary.csv into one table, after a column `experiment`",
    )
    aggregate.add_argument(
        "rows",
        nargs="*",
        metavar="SEED:VARIANT:LEVEL:MASK_SOURCE:RUN_FOLDER",
        help="one per row; each run folder must hold a finished run",
    )

    plot = command("plot", cmd_plot, "draw accuracy vs sparsity from a summary.csv")
    plot.add_argument("--summary", required=True)
    plot.add_argument("--out", required=True, nargs="+", help="figure files (.png, .pdf)")
    plot.add_argument("--x", default="sparsity", choices=tuple(X_AXES))
    plot.add_argument(
        "--title",
        default=None,
        help="put before the title (the workflow gives the experiment); "
        "the title always says the model, data, epochs and seeds",
    )
    plot.add_argument(
        "--mask-sources",
        default="panels",
        choices=MASK_SOURCE_LAYOUTS,
        help="with several mask sources (column mask_source): a panel per source (default), or "
        "one axes with a curve per variant and source, line style by source",
    )
    plot.add_argument("--force", action="store_true", help="replace the --out files if they exist")

    from lth.analysis.figures import FIGURES  # light: pandas and matplotlib load only when drawing
    from lth.figures import GRID_FIGURES, SUMMARY_FIGURES

    accuracy = {name: spec.description for name, spec in {**SUMMARY_FIGURES, **GRID_FIGURES}.items()}
    figure = command(
        "figure",
        cmd_figure,
        "draw a paper figure or table from CSVs: accuracy figures from a "
        "summary.csv (grids from results/summary.csv), analysis figures from their collected CSV",
    )
    figure.add_argument(
        "name",
        choices=(*FIGURES, *accuracy),
        metavar="NAME",
        help="; ".join(
            [
                *(f"{name}: {entry[2]}" for name, entry in FIGURES.items()),
                *(f"{name}: {text}" for name, text in accuracy.items()),
            ]
        ).replace("%", "%%"),
    )
    figure.add_argument(
        "--csv",
        required=True,
        help="summary.csv (accuracy figures), results/summary.csv (grids) or "
        "the collected analysis CSV (results/<experiment>/analysis/*.csv)",
    )
    figure.add_argument("--out", required=True, nargs="+", help="files to write (.png, .pdf, .svg; a table also .csv)")
    figure.add_argument(
        "--x",
        default=None,
        choices=tuple(X_AXES),
        help="accuracy figures: the x axis (default sparsity, levels spaced by log remaining weights)",
    )
    figure.add_argument(
        "--epoch",
        default=None,
        help="analysis figures: the training epoch shown, or `final` (each "
        "run's largest epoch; the default); not for figA12_hessian_per_epoch, which shows every epoch",
    )
    figure.add_argument(
        "--title",
        default=None,
        help="put before the title (the workflow gives the experiment); "
        "the title always says what the figure shows and the model, data, epochs and seeds",
    )
    figure.add_argument("--force", action="store_true", help="replace the --out files if they exist")

    tickets = command(
        "tickets",
        cmd_tickets,
        "ticket statistics of a summary.csv, per mask source: gains over "
        "vanilla, winning-ticket thresholds, critical sparsities (lth/tickets.py)",
    )
    tickets.add_argument("--summary", required=True, help="an experiment's summary.csv")
    tickets.add_argument("--out", required=True, help="tickets.csv to write")
    tickets.add_argument(
        "--pair",
        action="append",
        default=[],
        metavar="A:B",
        help="a variant pair whose critical sparsity to report (repeatable), e.g. at+trt:rewind",
    )
    tickets.add_argument("--force", action="store_true", help="replace --out if it exists")

    from lth.analysis.commands import add_analyze  # it imports this module's helpers

    add_analyze(commands, command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        _check_common(args)
        args.func(args)
    except LthError as error:
        print(f"lth {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
