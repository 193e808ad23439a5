"""The training loop: dense or masked, rewindable, resumable, deterministic on CPU.

A run writes into one folder. While it runs, everything lives in `<out>/.resume/` (the resume
state, the rolling metrics CSV, weights at saved epochs); the declared outputs (final.pt,
epoch{k}.pt, metrics.csv, hparams.yaml, summary.json) appear only when the run has finished,
summary.json last, so a workflow engine never mistakes a half-finished run for a complete one;
summary.json lists the sha256 of the others (`lth.manifest`). A run whose losses or weights turn
non-finite stops with `DivergedError` and publishes nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import platform
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lth import store
from lth.artifacts import FINAL, GRADINIT, RESUME_STATE, kept_epoch
from lth.checkpoints import nonfinite, save_checkpoint
from lth.data import Data
from lth.data.batches import Batches
from lth.errors import LthError
from lth.flops import LayerFlops, forward_flops, layer_flops
from lth.gradinit import gradinit, step_counts
from lth.hparams import GradinitHparams, ModelHparams, TrainHparams
from lth.io import read_json, write_json
from lth.losses import LossFn, loss_summary, make_loss
from lth.masks import Mask, MaskEnforcer, prunable_names, sparsity
from lth.models.skip import jump_params
from lth.provenance import provenance
from lth.sparse.settings import SparseTrainingHparams
from lth.sparse.updaters import DynamicMask, make_updater

log = logging.getLogger(__name__)

METRIC_COLUMNS = [
    "epoch",
    "lr",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "test_loss",
    "test_acc",
    "seconds",
    "images_per_s",
]


class DivergedError(LthError):
    """Training produced a non-finite loss or non-finite weights."""


@dataclass
class EpochContext:
    """What an epoch-end callback sees; it returns extra metric columns (or None)."""

    epoch: int
    model: nn.Module
    data: Data
    device: torch.device
    row: dict[str, float]
    mask: Mask | None = None  # the mask in force where training changes it (sparse training)


EpochCallback = Callable[[EpochContext], "dict[str, float] | None"]


@dataclass
class RunOptions:
    """How to run, not what to compute: not part of any result's identity."""

    device: str = "auto"
    threads: int | None = None
    channels_last: bool = True
    # Evaluation keeps no activations for backward, so its batches can be 8x the paper's training
    # batch: on a GPU, fewer and fuller kernel launches. Only the loss's summation order depends on it.
    eval_batch_size: int = 1024
    force: bool = False
    callbacks: Sequence[EpochCallback] = field(default_factory=tuple)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LthError(f"device: {name!r} is not available here; use 'cpu' or 'auto'")
    return device


def fingerprint(record: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


Autocast = Callable[[], AbstractContextManager[Any]]


def train_epoch(
    model: nn.Module,
    batches: Batches,
    optimizer: torch.optim.Optimizer,
    enforcer: MaskEnforcer,
    loss_fn: LossFn,
    autocast: Autocast = nullcontext,
    dynamic: DynamicMask | None = None,
) -> tuple[float, float]:
    """One pass over `batches` (data path, forward, backward, masked step): mean loss and accuracy.

    The mask is enforced on the gradients before the step and on the weights after it, so pruned
    weights stay exactly zero whatever momentum and weight decay do; `dynamic` (sparse training)
    changes the mask at its steps. Loss and accuracy accumulate on the device and are read once, at
    the end, not every batch.
    """
    loss_sum, correct = train_epoch_sums(model, batches, optimizer, enforcer, loss_fn, autocast, dynamic)
    return _means(loss_sum, correct, batches.num_images)


def train_epoch_sums(
    model: nn.Module,
    batches: Batches,
    optimizer: torch.optim.Optimizer,
    enforcer: MaskEnforcer,
    loss_fn: LossFn,
    autocast: Autocast = nullcontext,
    dynamic: DynamicMask | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`train_epoch` without reading its result: the summed loss and the count of correct
    predictions stay on the device, so on a GPU the epoch queues work without ever waiting for it."""
    model.train()
    loss_sum = torch.zeros((), device=batches.device)
    correct = torch.zeros((), device=batches.device, dtype=torch.long)
    for inputs, labels in batches:
        with autocast():
            outputs = model(inputs)
            loss = loss_fn(outputs, labels, inputs)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        steps = dynamic.after_backward() if dynamic else True  # False where RigL's update replaces the step
        enforcer.apply_to_grads()
        if steps:
            optimizer.step()
            enforcer.apply_to_weights()
        if dynamic:
            dynamic.after_step(len(labels))
        loss_sum += loss.detach() * len(labels)
        correct += (outputs.detach().argmax(1) == labels).sum()
    return loss_sum, correct


def _means(loss_sum: torch.Tensor, correct: torch.Tensor, count: int) -> tuple[float, float]:
    """Mean loss and accuracy, read from the device in one transfer (float64 holds both exactly)."""
    total_loss, total_correct = torch.stack([loss_sum.double(), correct.double()]).tolist()
    return total_loss / count, int(total_correct) / count


def evaluate(model: nn.Module, batches: Batches, autocast: Autocast = nullcontext) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `model` over `batches`, without training it."""
    model.eval()
    loss_sum = torch.zeros((), device=batches.device)
    correct = torch.zeros((), device=batches.device, dtype=torch.long)
    with torch.no_grad(), autocast():
        for inputs, labels in batches:
            outputs = model(inputs)
            loss_sum += F.cross_entropy(outputs.float(), labels, reduction="sum")
            correct += (outputs.argmax(1) == labels).sum()
    return _means(loss_sum, correct, batches.num_images)


def _metrics_csv(rows: list[dict[str, float]]) -> str:
    # Callback columns may first appear at any epoch: take every key seen, in order of appearance.
    extra = dict.fromkeys(key for row in rows for key in row if key not in METRIC_COLUMNS)
    columns = METRIC_COLUMNS + list(extra)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _format_eta(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def channels_last_risks(model: nn.Module) -> list[str]:
    """The convolutions whose channels-last backward kills the process on the CPU in torch 2.14
    (see `channels_last_is_safe`)."""
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Conv2d)
        and module.kernel_size == (1, 1)
        and module.stride != (1, 1)
        and module.in_channels < 8
    ]


def channels_last_is_safe(model: nn.Module, device: torch.device) -> bool:
    """torch 2.14's CPU (oneDNN) backward of a channels-last 1x1 strided conv with fewer than 8 input
    channels kills the process (segfault, or a hang with 2 threads); such models (width < 8) train
    in NCHW on the CPU instead."""
    risky = channels_last_risks(model)
    if device.type == "cpu" and risky:
        log.warning(
            "channels_last off: torch's CPU backward crashes on 1x1 strided convs with < 8 input channels (%s)",
            risky[0],
        )
        return False
    return True


def check_run(
    out_dir: Path, hparams: TrainHparams, start_epoch: int, save_epochs: Sequence[int], options: RunOptions
) -> torch.device:
    """Every check that needs no data, so that bad input fails before the slow steps."""
    store.check_run_folder(out_dir, options.force)
    return check_settings(hparams, start_epoch, save_epochs, options)


def check_settings(
    hparams: TrainHparams, start_epoch: int, save_epochs: Sequence[int], options: RunOptions
) -> torch.device:
    """The checks of `check_run` that need no folder either: the device the run trains on."""
    if not 0 <= start_epoch < hparams.epochs:
        raise LthError(f"start epoch {start_epoch} is not allowed; must be in [0, train.epochs={hparams.epochs})")
    bad_saves = sorted(e for e in save_epochs if not start_epoch <= e <= hparams.epochs)
    if bad_saves:
        raise LthError(f"save epoch {bad_saves[0]} is not allowed; must be in [{start_epoch}, {hparams.epochs}]")
    device = resolve_device(options.device)
    if hparams.precision == "bf16" and device.type != "cuda":
        raise LthError("train.precision: 'bf16' is not allowed on the CPU; use 'fp32' or a CUDA device")
    return device


@dataclass
class _Loop:
    """What the epoch loop works with."""

    model: nn.Module  # evaluated eagerly
    step_model: nn.Module  # trained: `model`, compiled with train.compile
    optimizer: torch.optim.Optimizer
    enforcer: MaskEnforcer
    generator: torch.Generator
    loss_fn: LossFn
    autocast: Autocast
    device: torch.device
    channels_last: bool
    batches: dict[str, Batches]  # train, val, test
    flops: LayerFlops  # forward FLOPs per image, per layer
    dynamic: DynamicMask | None = None  # sparse training: the mask changes


@dataclass
class _Progress:
    """Where a run stands: epochs done, a metrics row per epoch, and the thread-count changes of a
    resumed CPU run. `run_id` guards the resume state against other settings or inputs."""

    run_id: str
    epoch: int
    threads: int
    rows: list[dict[str, float]] = field(default_factory=list)
    thread_changes: list[dict[str, int]] = field(default_factory=list)


def train(
    model: nn.Module,
    data: Data,
    hparams: TrainHparams,
    out_dir: str | Path,
    *,
    seed: int,
    model_hparams: ModelHparams,
    record: dict[str, Any],
    mask: Mask | None = None,
    start_epoch: int = 0,
    save_epochs: Sequence[int] = (),
    loss_fn: LossFn | None = None,
    gradinit_hparams: GradinitHparams | None = None,
    options: RunOptions | None = None,
    stop_epoch: int | None = None,
    sparse_training: SparseTrainingHparams | None = None,
) -> dict[str, Any]:
    """Train `model` from epoch `start_epoch` to `hparams.epochs` and write the run folder.

    `start_epoch` > 0 is rewinding: the weights come from that epoch of a dense run, the optimizer
    starts fresh, and the learning rate follows the schedule from that epoch on. `record` (the
    full settings and inputs) is written as hparams.yaml and guards the resume state: a resume
    state made with other settings is refused rather than silently continued. `gradinit_hparams`
    rescale the starting weights by GradInit once, on a fresh start (a resume state already holds
    rescaled weights); the learned scales are published as gradinit.json, before summary.json.
    `loss_fn` defaults to the loss `hparams` ask for (`lth.losses.make_loss`).

    `stop_epoch` < `hparams.epochs` trains only that far, on the full run's schedule, and
    publishes nothing but the `save_epochs` checkpoints (a rewind point of a dense run); it then
    returns an empty dict. Which epochs are saved is not part of the resume state's identity: a
    resumed run saves the ones still ahead of it.

    `sparse_training` (GMP, SET, RigL: lth/sparse) draws the first mask itself and changes it as
    training goes (no `mask`); the mask in force is saved with every checkpoint and the resume state.
    """
    options = options or RunOptions()
    loss_fn = loss_fn or make_loss(hparams)  # distillation needs a teacher, so only the caller can ask for it
    out_dir = Path(out_dir)
    device = check_run(out_dir, hparams, start_epoch, save_epochs, options)
    updater = None
    if sparse_training:
        if mask:
            raise LthError(f"{sparse_training.section}: sparse training draws its own mask; give no mask")
        names = prunable_names(model, sparse_training.include_linear)
        steps = (hparams.epochs - start_epoch) * -(-len(data.train.labels) // hparams.batch_size)
        updater = make_updater(sparse_training, model, names, steps, seed)
        mask = updater.initial_mask(dict(model.named_parameters()))
    loop = _setup(model, data, hparams, mask, device, seed, options, loss_fn)
    if updater:
        loop.dynamic = DynamicMask(updater, loop.model, loop.enforcer, loop.optimizer, mask, loop.flops)
    progress = _Progress(_run_id(record, start_epoch, seed), start_epoch, torch.get_num_threads())
    if (out_dir / RESUME_STATE).exists():
        _resume(out_dir, progress, loop, hparams.epochs)
    else:
        if options.force:  # the new run replaces the old one whole: none of its files may outlive it
            store.clear_run(out_dir)
        if gradinit_hparams:  # on a fresh start only: a resumed run's weights are already rescaled
            _gradinit(out_dir, loop, data, mask, gradinit_hparams, seed)
    loop.enforcer.apply_to_weights()  # after GradInit, which may rescale the dense weights (gradinit.weights: dense)

    end_epoch = hparams.epochs if stop_epoch is None else stop_epoch
    pending = _pending_saves(out_dir, save_epochs, progress.epoch)

    def keep(epoch: int) -> None:
        if epoch in pending:
            save_checkpoint(pending[epoch], loop.model, model_hparams, data.num_classes, epoch, _changing_mask(loop))

    if progress.epoch == start_epoch:
        keep(start_epoch)
    _run_epochs(loop, progress, hparams, end_epoch, out_dir, data, options.callbacks, keep)
    if end_epoch < hparams.epochs:  # stopped early for a rewind point: the saved epochs are the result
        store.publish_kept(out_dir, [path.name for path in pending.values()])
        log.info("stopped %s after epoch %d of %d", out_dir, end_epoch, hparams.epochs)
        return {}
    summary = _summary(progress.rows, loop, mask, hparams, start_epoch, data)
    gradinit_steps = (
        step_counts(read_json(store.resume_dir(out_dir) / GRADINIT)["history"]) if gradinit_hparams else None
    )
    summary.update(
        loss_summary(hparams),
        gradinit=gradinit_hparams is not None,
        gradinit_steps=gradinit_steps,
        thread_changes=progress.thread_changes,
    )
    save_checkpoint(out_dir / FINAL, loop.model, model_hparams, data.num_classes, hparams.epochs, _changing_mask(loop))
    kept = [path.name for path in pending.values()] + ([GRADINIT] if gradinit_hparams else [])
    summary = store.publish_run(out_dir, summary, record, _metrics_csv(progress.rows), written=[FINAL], kept=kept)
    log.info(
        "finished %s: test acc %.2f%% at best val (epoch %d), final %.2f%%",
        out_dir,
        100 * summary["test_acc_at_best_val"],
        summary["best_val_epoch"],
        100 * summary["final_test_acc"],
    )
    return summary


def _setup(
    model: nn.Module,
    data: Data,
    hparams: TrainHparams,
    mask: Mask | None,
    device: torch.device,
    seed: int,
    options: RunOptions,
    loss_fn: LossFn,
) -> _Loop:
    """The model on its device and in its memory format, its optimizer, the seeded random streams and
    the batches: everything before the first epoch but resuming."""
    if options.threads:
        torch.set_num_threads(options.threads)
    if device.type == "cuda":  # fixed shapes: cuDNN times its algorithms once per shape and keeps the fastest
        torch.backends.cudnn.benchmark = True
    channels_last = options.channels_last and channels_last_is_safe(model, device)
    model = model.to(device=device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    enforcer = MaskEnforcer(model, mask or {})
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=hparams.lr,
        momentum=hparams.momentum,
        weight_decay=hparams.weight_decay,
        nesterov=hparams.nesterov,
    )
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    return _Loop(
        model,
        # Only training steps are compiled: evaluation runs the eager model, which holds the same
        # parameters and buffers, so a second (eval-mode) graph is never compiled.
        # dynamic=False: one static graph per batch shape (full and last partial batch), both kept,
        # rather than a slower shape-generic graph after the first partial batch.
        torch.compile(model, dynamic=False) if hparams.compile else model,
        optimizer,
        enforcer,
        generator,
        loss_fn,
        lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=hparams.precision == "bf16"),
        device,
        channels_last,
        _batches(data, hparams.batch_size, options.eval_batch_size, device, generator, channels_last),
        layer_flops(model, data.train.images.shape[1:]),
    )


def _changing_mask(loop: _Loop) -> Mask | None:
    """The mask in force, saved with the weights, where it changes during training (sparse training)."""
    return loop.dynamic.mask if loop.dynamic else None


def _run_id(record: dict[str, Any], start_epoch: int, seed: int) -> str:
    """What a resume state must have been written by: the run's settings and inputs, not the epochs
    it saves or how it executes (torch.compile)."""
    identity = {key: value for key, value in record.items() if key != "save_epochs"}
    if isinstance(identity.get("train"), dict):
        identity["train"] = TrainHparams.what_it_computes(identity["train"])
    return fingerprint({**identity, "start_epoch": start_epoch, "seed": seed})


def _resume(out_dir: Path, progress: _Progress, loop: _Loop, epochs: int) -> None:
    """Continue from the resume state: weights, optimizer, random streams, metrics so far."""
    state = store.load_resume_state(out_dir)
    if state["fingerprint"] != progress.run_id:
        raise LthError(
            f"{out_dir / RESUME_STATE} was written by a run with other settings or inputs; delete "
            f"{store.resume_dir(out_dir)} to start over"
        )
    loop.model.load_state_dict(state["model"])
    loop.optimizer.load_state_dict(state["optimizer"])
    loop.generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    if loop.dynamic:
        loop.dynamic.load_state_dict(state["sparse_training"])
    progress.rows, progress.epoch, progress.thread_changes = state["rows"], state["epoch"], state["thread_changes"]
    log.info("resuming %s from epoch %d of %d", out_dir, progress.epoch, epochs)
    if state["threads"] != progress.threads:  # CPU results depend on it; warn, as a moved cluster job must go on
        log.warning(
            "resuming with %d threads after %d: on the CPU the result may differ from an "
            "uninterrupted run; summary.json records the change",
            progress.threads,
            state["threads"],
        )
        change = {"epoch": progress.epoch, "from": state["threads"], "to": progress.threads}
        progress.thread_changes = [*progress.thread_changes, change]


def _gradinit(out_dir: Path, loop: _Loop, data: Data, mask: Mask | None, hparams: GradinitHparams, seed: int) -> None:
    """Rescale the starting weights by GradInit; its scales wait in the resume folder to be published."""
    result = gradinit(loop.model, data, mask, hparams, loop.device, seed, loop.channels_last)
    write_json(
        store.resume_dir(out_dir) / GRADINIT,
        {"hparams": hparams.to_dict(), "alphas": result.alphas, "skipped": result.skipped, "history": result.history},
    )


def _pending_saves(out_dir: Path, save_epochs: Sequence[int], epoch: int) -> dict[int, Path]:
    """Where each epoch to keep is saved, but those a resumed run has already passed without saving."""
    pending = {e: store.resume_dir(out_dir) / kept_epoch(e) for e in save_epochs}
    missed = [e for e in pending if e < epoch and not pending[e].exists()]
    if missed:  # asked for after the resume state had passed them: `lth snapshot` re-trains them
        log.warning("epochs %s were not saved before this run was interrupted; they will be missing", missed)
        pending = {e: path for e, path in pending.items() if e not in missed}
    return pending


def _batches(
    data: Data,
    batch_size: int,
    eval_batch_size: int,
    device: torch.device,
    generator: torch.Generator,
    channels_last: bool,
) -> dict[str, Batches]:
    train_batches = Batches(
        data.train,
        batch_size,
        data.mean,
        data.std,
        device,
        generator=generator,
        flip=data.flip,
        crop_padding=data.crop_padding,
        channels_last=channels_last,
    )
    evaluated = {
        split: Batches(getattr(data, split), eval_batch_size, data.mean, data.std, device, channels_last=channels_last)
        for split in ("val", "test")
    }
    return {"train": train_batches, **evaluated}


def _run_epochs(
    loop: _Loop,
    progress: _Progress,
    hparams: TrainHparams,
    end_epoch: int,
    out_dir: Path,
    data: Data,
    callbacks: Sequence[EpochCallback],
    keep: Callable[[int], None],
) -> None:
    """Train epoch by epoch up to `end_epoch`: after each, the callbacks' columns, the epoch's weights
    if kept, the resume state, and a progress line."""
    session_start, session_epochs = time.perf_counter(), 0
    while progress.epoch < end_epoch:
        row = _epoch(loop, hparams.lr_at(progress.epoch), progress.epoch + 1, out_dir)
        progress.epoch += 1
        for callback in callbacks:
            context = EpochContext(progress.epoch, loop.model, data, loop.device, row, _changing_mask(loop))
            row.update(callback(context) or {})
        progress.rows.append(row)
        keep(progress.epoch)
        state = {
            "fingerprint": progress.run_id,
            "model": loop.model.state_dict(),
            "optimizer": loop.optimizer.state_dict(),
            "generator": loop.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "rows": progress.rows,
            "epoch": progress.epoch,
            "threads": progress.threads,
            "thread_changes": progress.thread_changes,
            **({"sparse_training": loop.dynamic.state_dict()} if loop.dynamic else {}),
        }
        store.save_resume_state(out_dir, state, _metrics_csv(progress.rows))
        session_epochs += 1
        eta = (time.perf_counter() - session_start) / session_epochs * (end_epoch - progress.epoch)
        log.info(
            "epoch %d/%d lr %.4g | train loss %.4f acc %.2f%% | val loss %.4f acc %.2f%% | test acc %.2f%% | "
            "%.0f img/s | %.1fs | ETA %s",
            progress.epoch,
            hparams.epochs,
            row["lr"],
            row["train_loss"],
            100 * row["train_acc"],
            row["val_loss"],
            100 * row["val_acc"],
            100 * row["test_acc"],
            row["images_per_s"],
            row["seconds"],
            _format_eta(eta),
        )


def _epoch(loop: _Loop, lr: float, epoch: int, out_dir: Path) -> dict[str, float]:
    """Train one epoch at `lr`, evaluate, and stop a diverged run: the epoch's metrics row."""
    for group in loop.optimizer.param_groups:
        group["lr"] = lr
    started = time.perf_counter()
    batches = loop.batches
    train_loss, train_acc = train_epoch(
        loop.step_model, batches["train"], loop.optimizer, loop.enforcer, loop.loss_fn, loop.autocast, loop.dynamic
    )
    train_seconds = time.perf_counter() - started
    val_loss, val_acc = evaluate(loop.model, batches["val"], loop.autocast)
    test_loss, test_acc = evaluate(loop.model, batches["test"], loop.autocast)
    losses = {"training loss": train_loss, "validation loss": val_loss, "test loss": test_loss}
    _check_finite(out_dir, epoch, lr, loop.model, out_dir / RESUME_STATE, losses)
    return {
        "epoch": epoch,
        "lr": lr,
        "train_loss": train_loss,
        "train_acc": train_acc,
        "val_loss": val_loss,
        "val_acc": val_acc,
        "test_loss": test_loss,
        "test_acc": test_acc,
        "seconds": time.perf_counter() - started,
        "images_per_s": batches["train"].num_images / train_seconds,
    }


def _check_finite(
    out_dir: Path, epoch: int, lr: float, model: nn.Module, state_path: Path, losses: dict[str, float]
) -> None:
    """Stop a diverged run before it publishes anything: NaN or infinite losses or weights."""
    problems = [f"{name} {value}" for name, value in losses.items() if not math.isfinite(value)]
    bad = nonfinite(model.state_dict())
    if bad:
        problems.append(f"non-finite values in {', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}")
    if problems:
        kept = (
            f"the resume state after epoch {epoch - 1} is kept in {state_path.parent} for inspection "
            "(delete that folder to start over)"
            if state_path.exists()
            else "no epoch finished, so there is no resume state"
        )
        raise DivergedError(
            f"training diverged in epoch {epoch} of {out_dir}: {'; '.join(problems)}. The likely "
            f"cause is a learning rate too high for this model and batch size (lr {lr:g} in this "
            f"epoch): lower train.lr. Nothing was published; {kept}"
        )


def _summary(
    rows: list[dict[str, float]],
    loop: _Loop,
    mask: Mask | None,
    hparams: TrainHparams,
    start_epoch: int,
    data: Data,
) -> dict[str, Any]:
    """`sparsity` is the mask's nominal one (sparse training: its final mask's); the parameter and FLOP
    counts are those of the network actually trained, jump branches included, so tweaks that add
    weights are compared fairly. `train_flops` counts the training steps as the RigL paper does: 3x
    the forward FLOPs of the mask in force per image and step (sparse training: lth/sparse/updaters.py)."""
    best = max(rows, key=lambda row: row["val_acc"])  # max() keeps the first of equal values
    model, device = loop.model, loop.device
    images = len(data.train.labels) * (hparams.epochs - start_epoch)
    train_flops = (
        loop.dynamic.train_flops if loop.dynamic else loop.flops.training(images, loop.flops.forward(mask or {}))
    )
    mask = _changing_mask(loop) or mask
    params = list(model.parameters())
    return {
        "best_val_epoch": int(best["epoch"]),
        "best_val_acc": best["val_acc"],
        "test_acc_at_best_val": best["test_acc"],
        "final_test_acc": rows[-1]["test_acc"],
        "final_val_acc": rows[-1]["val_acc"],
        "start_epoch": start_epoch,
        "epochs": hparams.epochs,
        "sparsity": sparsity(mask) if mask else 0.0,
        "total_params": sum(p.numel() for p in params),
        "nonzero_params": sum(int(torch.count_nonzero(p)) for p in params),
        "jump_params": jump_params(model),
        **forward_flops(model, data.train.images.shape[1:], loop.flops),
        "train_flops": round(train_flops),
        **(_sparse_training_summary(loop.dynamic) if loop.dynamic else {}),
        "wall_seconds": sum(row["seconds"] for row in rows),
        "threads": torch.get_num_threads(),
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "precision": hparams.precision,
        "channels_last": loop.channels_last,
        "compile": hparams.compile,
        "torch": torch.__version__,
        "python": platform.python_version(),
        **provenance(),
    }


def _sparse_training_summary(dynamic: DynamicMask) -> dict[str, Any]:
    """What a sparse-training run adds: its algorithm's settings and every mask update it made."""
    return {
        "sparse_training": dynamic.updater.hparams.record(),
        "mask_updates": dynamic.updater.history,
    }
