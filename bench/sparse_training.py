"""Sparse training's cost (issue: SET, RigL and N:M): a SET or RigL epoch against a static-mask epoch,
and the time to compute a 2:4 mask.

  python bench/sparse_training.py --threads 2          # ResNet-18 w8, 300 steps of 32 images per epoch

1. Epochs. Three copies of one ResNet-18 (same weights, same ERK mask at --sparsity, the first conv
   dense: SET's first mask) train epochs of the same batches with the product's own loop,
   `lth.train.train_epoch`, in channels_last as `lth train` runs it: `static` (the mask never
   changes, dynamic=None), `set` and `rigl` (a `lth.sparse.updaters.DynamicMask` updating every
   --update-every steps). The step counter runs on across the timed epochs and T_end lies past the
   last of them, so every epoch makes --steps / --update-every updates; the script prints the count.
   The updates alone (RigL's with its dense-gradient copy), each on its own copy of the model, are
   timed in the same interleaved repeats: an update is a few milliseconds against seconds of
   training, so the difference of two whole-epoch timings is mostly the machine's noise.
2. Masks at width --nm-width (64: the paper's network): `lth.sparse.nm.nm_mask` 2:4 over every conv
   weight (the 3-channel stem kept dense), global magnitude pruning (`lth.masks.prune`, rate 0.5: the
   same 50% sparsity), one SET and one RigL update at --sparsity, and one training step on a batch
   of --nm-batch-size for scale.

Every figure is a median with min-max over --repeats interleaved repeats, in one process. The
images are cifar10-mini's (`--data DIR`), or random ones where it is missing (speed does not depend
on the pixels).
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ratio_stats, summarise, time_interleaved  # noqa: E402
from training import DEFAULT_DATA, MEAN, STD, sgd, synchronised  # noqa: E402

from lth import models  # noqa: E402
from lth.data import Split  # noqa: E402
from lth.data.batches import Batches  # noqa: E402
from lth.flops import layer_flops  # noqa: E402
from lth.hparams import PruneHparams, TrainHparams  # noqa: E402
from lth.losses import make_loss  # noqa: E402
from lth.masks import MaskEnforcer, dense_mask, prunable_names, prune, sparsity  # noqa: E402
from lth.sparse.nm import nm_mask  # noqa: E402
from lth.sparse.settings import RiglHparams, SetHparams  # noqa: E402
from lth.sparse.updaters import DynamicMask, make_updater  # noqa: E402
from lth.train import channels_last_is_safe, train_epoch  # noqa: E402

SEED = 0
ALGORITHMS = {"set": SetHparams, "rigl": RiglHparams}


def images_for(args) -> tuple[np.ndarray, np.ndarray, str]:
    """--steps full batches of images (NHWC uint8) and labels: cifar10-mini's, else random."""
    count = args.steps * args.batch_size
    path = args.data / "train.npz"
    if path.is_file():
        with np.load(path) as archive:
            if len(archive["labels"]) >= count:
                return archive["images"][:count], archive["labels"][:count].astype(np.int64), str(path)
    generator = np.random.default_rng(0)
    images = generator.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
    return images, generator.integers(0, 10, count).astype(np.int64), "random images"


def batches_of(images: np.ndarray, labels: np.ndarray, args, channels_last: bool) -> Batches:
    """The training batches as `lth train` makes them; each candidate gets its own, in the same order."""
    split = Split(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels))
    return Batches(
        split,
        args.batch_size,
        MEAN,
        STD,
        args.device,
        generator=torch.Generator().manual_seed(SEED),
        flip=True,
        crop_padding=4,
        channels_last=channels_last,
    )


def build(width: int, device: torch.device) -> tuple[torch.nn.Module, bool]:
    torch.manual_seed(SEED)
    model = models.build("resnet18", 10, width)
    channels_last = channels_last_is_safe(model, device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return model.to(device=device, memory_format=memory_format), channels_last


class Candidate:
    """One copy of the model with its optimizer, enforcer, batches and (SET, RigL) DynamicMask."""

    def __init__(self, base: torch.nn.Module, algorithm: str | None, args, data, total_steps: int, mask=None):
        self.model = copy.deepcopy(base)
        self.optimizer = sgd(self.model)
        names = prunable_names(self.model)
        self.dynamic = None
        if algorithm:
            hparams = ALGORITHMS[algorithm](sparsity=args.sparsity, update_every=args.update_every, end=1.0)
            updater = make_updater(hparams, self.model, names, total_steps, SEED)
            mask = updater.initial_mask(dict(self.model.named_parameters()))
        self.mask = mask
        self.enforcer = MaskEnforcer(self.model, mask)
        self.enforcer.apply_to_weights()
        if algorithm:
            flops = layer_flops(self.model, (3, 32, 32))
            self.dynamic = DynamicMask(updater, self.model, self.enforcer, self.optimizer, mask, flops)
        self.batches = data
        self.loss_fn = make_loss(TrainHparams())  # the product's default loss: cross-entropy
        self.updates: list[int] = []

    def epoch(self) -> None:
        before = len(self.dynamic.updater.history) if self.dynamic else 0
        train_epoch(self.model, self.batches, self.optimizer, self.enforcer, self.loss_fn, dynamic=self.dynamic)
        self.updates.append(len(self.dynamic.updater.history) - before if self.dynamic else 0)

    def warm_up(self, batches: Batches) -> None:
        """A few steps outside the timing (first calls allocate and pick kernels); the mask stays."""
        train_epoch(self.model, batches, self.optimizer, self.enforcer, self.loss_fn)


def update_alone(candidate: Candidate, gradients: dict[str, torch.Tensor], step: int) -> Callable[[], None]:
    """One mask update as `DynamicMask` makes it, on `candidate` (a copy kept for this): RigL's
    dense-gradient copy (from a held gradient), the updater's drop and grow, and `set_mask`."""
    dynamic = candidate.dynamic
    rigl = dynamic.updater.wants_gradients(step)

    def run() -> None:
        grads = {name: g.abs().clone() for name, g in gradients.items()} if rigl else None
        weights = {name: p.detach() for name, p in dynamic.params.items()}
        dynamic.set_mask(dynamic.updater.update(step, weights, dynamic.mask, grads))

    return run


def dense_gradients(candidate: Candidate, inputs: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    candidate.model.train()
    candidate.optimizer.zero_grad(set_to_none=True)
    candidate.loss_fn(candidate.model(inputs), labels, inputs).backward()
    grads = {name: p.grad.detach().clone() for name, p in candidate.dynamic.params.items()}
    candidate.optimizer.zero_grad(set_to_none=True)
    return grads


def bench_epochs(args) -> dict[str, object]:
    images, labels, source = images_for(args)
    base, channels_last = build(args.width, args.device)
    # Every epoch's updates fall before T_end (end=1.0 of these steps), and RigL's cosine drop
    # fraction stays above 0 through the last one.
    total_steps = args.steps * args.repeats + args.update_every
    candidates = {}
    for algorithm in ("set", "rigl"):
        candidates[algorithm] = Candidate(
            base, algorithm, args, batches_of(images, labels, args, channels_last), total_steps
        )
    static_mask = {name: keep.clone() for name, keep in candidates["set"].mask.items()}  # SET's first mask
    candidates = {
        "static": Candidate(base, None, args, batches_of(images, labels, args, channels_last), 0, static_mask),
        **candidates,
    }
    warm = batches_of(images[: 4 * args.batch_size], labels[: 4 * args.batch_size], args, channels_last)
    for candidate in candidates.values():
        candidate.warm_up(warm)
    # The updates alone, each on its own copy, at the first update step (RigL's largest drop fraction).
    inputs, targets = next(iter(warm))
    alone = {}
    for algorithm in ("set", "rigl"):
        twin = Candidate(base, algorithm, args, None, total_steps)
        alone[f"{algorithm} update"] = update_alone(twin, dense_gradients(twin, inputs, targets), args.update_every)
    runs = {name: synchronised(c.epoch, args.device) for name, c in candidates.items()}
    runs.update({name: synchronised(run, args.device) for name, run in alone.items()})
    times = time_interleaved(runs, args.repeats, warmup=0)
    return {
        "source": source,
        "times": times,
        "updates": {name: c.updates for name, c in candidates.items()},
        "sparsity": {name: sparsity(c.dynamic.mask if c.dynamic else c.mask) for name, c in candidates.items()},
        "channels_last": channels_last,
    }


def bench_masks(args) -> dict[str, list[float]]:
    base, channels_last = build(args.nm_width, args.device)
    names = prunable_names(base)
    weights = {name: p.detach() for name, p in base.named_parameters() if name in names}
    total_steps = 100 * args.update_every
    twins = {algorithm: Candidate(base, algorithm, args, None, total_steps) for algorithm in ALGORITHMS}
    inputs = torch.randn(args.nm_batch_size, 3, 32, 32, device=args.device)
    if channels_last:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    targets = torch.randint(0, 10, (args.nm_batch_size,), device=args.device)
    # A training step on its own copy, with SET's first mask (--sparsity) enforced.
    step_model = Candidate(base, None, args, None, 0, {name: k.clone() for name, k in twins["set"].mask.items()})

    def step() -> None:
        step_model.optimizer.zero_grad(set_to_none=True)
        step_model.loss_fn(step_model.model(inputs), targets, inputs).backward()
        step_model.enforcer.apply_to_grads()
        step_model.optimizer.step()
        step_model.enforcer.apply_to_weights()

    runs = {
        "2:4 mask": lambda: nm_mask(weights, 2, 4, indivisible="dense"),
        "global magnitude prune": lambda: prune(weights, dense_mask(weights, names), PruneHparams(rate=0.5)),
        "set update": update_alone(twins["set"], {}, args.update_every),
        "rigl update": update_alone(twins["rigl"], dense_gradients(twins["rigl"], inputs, targets), args.update_every),
        "train step": step,
    }
    mask = nm_mask(weights, 2, 4, indivisible="dense")
    print(
        f"width {args.nm_width}: {len(names)} conv weights, {sum(w.numel() for w in weights.values()):,} "
        f"values; 2:4 mask sparsity {sparsity(mask):.4f} (stem dense)"
    )
    return time_interleaved({name: synchronised(run, args.device) for name, run in runs.items()}, args.repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=8, help="ResNet-18 width of the timed epochs")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps per timed epoch")
    parser.add_argument("--update-every", type=int, default=100, help="dt: steps between mask updates")
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", type=torch.device, default=torch.device("cpu"))
    parser.add_argument("--nm-width", type=int, default=64, help="ResNet-18 width of the mask timings")
    parser.add_argument("--nm-batch-size", type=int, default=128, help="batch of the reference step at --nm-width")
    parser.add_argument("--skip", choices=("epochs", "masks"), action="append", default=[])
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        metavar="DIR",
        help="folder with train.npz (cifar10-mini's layout); random images where it is missing",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs, device {args.device}"
        + (f" ({torch.cuda.get_device_name(args.device)})" if args.device.type == "cuda" else "")
    )
    if "epochs" not in args.skip:
        report_epochs(args, bench_epochs(args))
    if "masks" not in args.skip:
        report_masks(args, bench_masks(args))


def report_epochs(args, result: dict) -> None:
    times, updates = result["times"], result["updates"]
    static = times["static"]
    step_s = [t / args.steps for t in static]
    print(
        f"\nepochs: ResNet-18 w{args.width}, {args.steps} steps of {args.batch_size} ({result['source']}), "
        f"sparsity {args.sparsity}, dt {args.update_every}, channels_last {result['channels_last']}, "
        f"{args.repeats} interleaved repeats"
    )
    print("| epoch | s per epoch | / static | updates per epoch | final sparsity |")
    print("| --- | --- | --- | --- | --- |")
    for name in ("static", "set", "rigl"):
        ratio = "1" if name == "static" else summarise(ratio_stats(times[name], static))
        counts = f"{min(updates[name])}" + (f"-{max(updates[name])}" if max(updates[name]) > min(updates[name]) else "")
        print(f"| {name} | {summarise(times[name])} | {ratio} | {counts} | {result['sparsity'][name]:.4f} |")
    print(f"static step: {summarise([1e3 * s for s in step_s])} ms")
    print(f"rigl: each update takes the place of its step's optimizer step ({sum(updates['rigl'])} skipped in all)")
    for name in ("set update", "rigl update"):
        # The epoch's updates, timed alone, as a share of the static epoch: the overhead without the noise.
        share = [u * n / s for u, n, s in zip(times[name], updates[name.split()[0]], static)]
        print(
            f"{name} alone: {summarise([1e3 * t for t in times[name]])} ms = "
            f"{summarise(ratio_stats(times[name], step_s))} static steps; "
            f"an epoch's updates = {summarise([100 * x for x in share])} % of a static epoch"
        )


def report_masks(args, times: dict[str, list[float]]) -> None:
    step = times["train step"]
    print(f"\nmasks: ResNet-18 w{args.nm_width} conv weights, {args.repeats} interleaved repeats")
    print("| what | s | / train step |")
    print("| --- | --- | --- |")
    for name in times:
        print(f"| {name} | {summarise(times[name])} | {summarise(ratio_stats(times[name], step))} |")
    print(
        f"2:4 / global prune: {summarise(ratio_stats(times['2:4 mask'], times['global magnitude prune']))}; "
        f"median 2:4 {statistics.median(times['2:4 mask']) * 1e3:.1f} ms"
    )


if __name__ == "__main__":
    main()
