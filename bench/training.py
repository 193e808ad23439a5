"""Training-pass benchmarks (issue: benchmarks, items 1-4 and 7).

  python bench/training.py ceiling --widths 16 64      # our epoch vs the fixed-batch compute ceiling; eval cost
  python bench/training.py peer --widths 8 16 64       # our epoch vs a PIL DataLoader peer loop
  python bench/training.py mfu                         # model FLOP utilisation vs measured fp32 GEMM peak (w64)
  python bench/training.py masking                     # mask enforcement overhead at 90% sparsity
  python bench/training.py gradinit                    # a GradInit iteration vs a training step

`ceiling` and `peer` also take --device cuda --precision bf16 --batch-size 512 (item 7, on a GPU).
`ceiling`, `peer` and `masking` time cifar10-mini's images (`--data DIR`, by default
`$LTH_SHARED_DATA/cifar10-mini`). Every figure is a median with min-max over --repeats
interleaved repeats, in one process. "Ours" is the product's own epoch, `lth.train.train_epoch`,
on `lth.data.Batches`.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from pathlib import Path
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from PIL import Image
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ratio_stats, summarise, time_interleaved  # noqa: E402

import lth.gradinit  # noqa: E402
from lth import models  # noqa: E402
from lth.data import Data, Split  # noqa: E402
from lth.data.batches import Batches  # noqa: E402
from lth.gradinit import gradinit  # noqa: E402
from lth.hparams import GradinitHparams, PruneHparams, TrainHparams  # noqa: E402
from lth.losses import make_loss  # noqa: E402
from lth.masks import MaskEnforcer, dense_mask, prunable_names, prune  # noqa: E402
from lth.train import RunOptions, evaluate, train_epoch  # noqa: E402

# The benchmarks' images: cifar10-mini (10k train / 2k test CIFAR-10 images as .npz), where the
# project's machines keep it, unless --data names another folder in the npz source's layout.
DEFAULT_DATA = Path(
    os.environ.get("LTH_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data", "cifar10-mini"
)
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
# CIFAR's split in the paper's recipe: 45k training images (after the 9:1 validation split), and
# every epoch evaluates the 5k validation and 10k test images.
CIFAR_TRAIN, CIFAR_EVAL = 45_000, 15_000


def add_data_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        metavar="DIR",
        help="folder with train.npz and test.npz: images uint8 (N, 32, 32, 3) and labels "
        "(default: $LTH_SHARED_DATA/cifar10-mini, else ../shared/data/cifar10-mini beside "
        "the repository)",
    )


def npz_images(folder: Path, images: int, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """The first `images` images (NHWC uint8) and labels of `folder/<split>.npz`."""
    path = folder / f"{split}.npz"
    if not path.is_file():
        sys.exit(
            f"--data {folder}: {path.name} not found; give a folder with train.npz and test.npz "
            "(images uint8 (N, 32, 32, 3), labels), such as cifar10-mini"
        )
    with np.load(path) as archive:
        if len(archive["labels"]) < images:
            sys.exit(f"--images {images}: {path} has only {len(archive['labels'])}")
        return archive["images"][:images], archive["labels"][:images].astype(np.int64)


def setup(width: int, device: torch.device, sparsity_rounds: int = 0):
    """ResNet-18 in channels_last, as `lth train` runs it, its (dense or pruned) mask and optimizer."""
    torch.manual_seed(0)
    model = models.build("resnet18", 10, width).to(device=device, memory_format=torch.channels_last)
    mask = dense_mask(model.state_dict(), prunable_names(model))
    if sparsity_rounds:
        mask = prune(model.state_dict(), mask, PruneHparams(rate=0.9), rounds=sparsity_rounds)
    return model, mask, sgd(model)


def sgd(model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=2e-4)


def twin(model: torch.nn.Module, memory_format: torch.memory_format = torch.channels_last):
    """A copy of `model` (same weights) in `memory_format`, with its own optimizer: a second
    candidate that trains beside the first without either steering the other's speed."""
    copied = copy.deepcopy(model).to(memory_format=memory_format)
    return copied, sgd(copied)


def autocast_for(args) -> Callable:
    if args.precision == "fp32":
        return nullcontext
    return lambda: torch.autocast(args.device.type, dtype=torch.bfloat16)


def our_batches(images: np.ndarray, labels: np.ndarray, args, train: bool = True) -> Batches:
    split = Split(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels))
    if not train:  # as `lth train` evaluates
        return Batches(split, RunOptions().eval_batch_size, MEAN, STD, args.device)
    return Batches(
        split,
        args.batch_size,
        MEAN,
        STD,
        args.device,
        generator=torch.Generator().manual_seed(0),
        flip=True,
        crop_padding=4,
    )


class FixedBatch:
    """The compute ceiling's data: one pre-made batch handed out again and again (cut to size for
    a last, partial batch), so an epoch runs the same steps with no data path at all."""

    def __init__(self, inputs: torch.Tensor, labels: torch.Tensor, sizes: list[int]) -> None:
        self.inputs, self.labels, self.sizes = inputs, labels, sizes
        self.device, self.num_images = inputs.device, sum(sizes)

    @classmethod
    def like(cls, batches: Batches) -> FixedBatch:
        inputs, labels = next(iter(batches))
        full, last = divmod(batches.num_images, batches.batch_size)
        return cls(inputs, labels, [batches.batch_size] * full + [last] * (last > 0))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for size in self.sizes:
            yield self.inputs[:size], self.labels[:size]


def epoch_runner(model, optimizer, enforcer, batches, autocast) -> Callable[[], None]:
    loss_fn = make_loss(TrainHparams())  # the product's default loss: cross-entropy
    return lambda: train_epoch(model, batches, optimizer, enforcer, loss_fn, autocast)  # syncs: reads the loss


class CifarStyle(Dataset):
    """A torchvision CIFAR-style dataset: per-sample PIL transforms (at module level, so loader
    workers started by spawn can unpickle it)."""

    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[index])), int(self.labels[index])


def peer_loader(images: np.ndarray, labels: np.ndarray, args, workers: int) -> DataLoader:
    return DataLoader(
        CifarStyle(images, labels),
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=args.device.type == "cuda",
    )


def peer_runner(model, optimizer, mask, loader, args) -> Callable[[], None]:
    """The loop common LTH codebases use: `peer_loader`'s batches, the default (NCHW) memory
    format, and the mask multiplied into param.data before every forward (open_lth's PrunedModel)."""
    params = dict(model.named_parameters())
    autocast = autocast_for(args)

    def run() -> None:
        model.train()
        for inputs, targets in loader:
            inputs, targets = inputs.to(args.device, non_blocking=True), targets.to(args.device, non_blocking=True)
            with torch.no_grad():
                for name, keep in mask.items():
                    params[name].data *= keep
            with autocast():
                loss = F.cross_entropy(model(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return synchronised(run, args.device)


def synchronised(run: Callable[[], object], device: torch.device) -> Callable[[], None]:
    """`run`, then wait for the GPU: a timing must include the work it queued."""

    def timed() -> None:
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return timed


def images_per_s(count: int, times: list[float]) -> str:
    return summarise([count / t for t in times])


def bench_ceiling(args) -> None:
    images, labels = npz_images(args.data, args.images)
    test_images, test_labels = npz_images(args.data, args.eval_images, "test")
    autocast = autocast_for(args)
    for width in args.widths:
        model, mask, optimizer = setup(width, args.device)
        enforcer = MaskEnforcer(model, mask)
        batches = our_batches(images, labels, args)
        eval_batches = our_batches(test_images, test_labels, args, train=False)
        ceiling = FixedBatch.like(batches)
        times = time_interleaved(
            {
                "ours": epoch_runner(model, optimizer, enforcer, batches, autocast),
                "ceiling": epoch_runner(model, optimizer, enforcer, ceiling, autocast),
                "eval": lambda: evaluate(model, eval_batches, autocast),
            },
            args.repeats,
        )
        print(
            f"width {width}: ours {images_per_s(len(labels), times['ours'])} img/s, ceiling "
            f"{images_per_s(len(labels), times['ceiling'])} img/s, ours/ceiling "
            f"{summarise(ratio_stats(times['ceiling'], times['ours']))}"
        )
        # Evaluation is its own cost: per image, then scaled to CIFAR's 45k-train / 15k-eval epoch.
        eval_share = [
            (e / len(test_labels) * CIFAR_EVAL) / (t / len(labels) * CIFAR_TRAIN)
            for e, t in zip(times["eval"], times["ours"])
        ]
        print(
            f"width {width}: evaluation {images_per_s(len(test_labels), times['eval'])} img/s; on CIFAR (15k "
            f"eval / 45k train images) it adds {summarise([100 * s for s in eval_share])} % to the training pass"
        )


def bench_peer(args) -> None:
    images, labels = npz_images(args.data, args.images)
    for width in args.widths:
        model, mask, optimizer = setup(width, args.device)
        candidates = {
            "ours": epoch_runner(
                model, optimizer, MaskEnforcer(model, mask), our_batches(images, labels, args), autocast_for(args)
            )
        }
        for workers in args.peer_workers:
            # The peer trains its own copy from the same start, in the default memory format.
            peer_model, peer_optimizer = twin(model, torch.contiguous_format)
            candidates[f"peer{workers}"] = peer_runner(
                peer_model, peer_optimizer, mask, peer_loader(images, labels, args, workers), args
            )
        times = time_interleaved(candidates, args.repeats)
        print(f"width {width}: ours {images_per_s(len(labels), times['ours'])} img/s")
        for workers in args.peer_workers:
            print(
                f"width {width}: peer ({workers} workers) {images_per_s(len(labels), times[f'peer{workers}'])} "
                f"img/s; peer time / ours {summarise(ratio_stats(times[f'peer{workers}'], times['ours']))}"
            )
    # The data paths alone, with no training: where the difference comes from.
    batches = our_batches(images, labels, args)
    loader = peer_loader(images, labels, args, 0)
    data_times = time_interleaved(
        {
            "ours": synchronised(lambda: [None for _ in batches], args.device),
            "peer": synchronised(lambda: [x.to(args.device) for x, _ in loader], args.device),
        },
        args.repeats,
    )
    print(
        f"data path alone, {len(labels)} images: ours {summarise(data_times['ours'])} s, "
        f"peer (0 workers) {summarise(data_times['peer'])} s"
    )


def gemm_candidates() -> tuple[dict[str, Callable[[], object]], dict[str, int]]:
    """fp32 GEMMs of several shapes, and their FLOPs; the fastest of them is the peak.

    A single square product is not the peak (oneDNN's convolutions beat a 2048^2 MKL GEMM here),
    so the shapes go through MKL (`torch.mm`) and through oneDNN (a 1x1 convolution is a GEMM too),
    including (pixels x in-channels) @ (in-channels x out-channels) shapes of the model's layers.
    """
    shapes = {f"mm {n}^3": (n, n, n) for n in (1024, 2048, 4096)}
    shapes.update({f"mm {m}x{k}x{n}": (m, k, n) for m, k, n in ((8192, 576, 64), (2048, 4608, 512))})
    candidates, flops = {}, {}
    for name, (m, k, n) in shapes.items():
        a, b = torch.randn(m, k), torch.randn(k, n)
        candidates[name], flops[name] = (lambda a=a, b=b: a @ b), 2 * m * k * n
    for channels in (256, 512, 1024):
        x = torch.randn(128, channels, 16, 16).contiguous(memory_format=torch.channels_last)
        w = torch.randn(channels, channels, 1, 1).contiguous(memory_format=torch.channels_last)
        name = f"1x1 conv {channels} ch (oneDNN)"
        candidates[name], flops[name] = (lambda x=x, w=w: F.conv2d(x, w)), 2 * 128 * 16 * 16 * channels**2
    return candidates, flops


def alternative_steps(model, mask, inputs: torch.Tensor, labels: torch.Tensor) -> dict[str, Callable[[], None]]:
    """The same train step done other ways, each on its own copy of the model: the routes a
    faster CPU step could take. The product trains channels_last, on oneDNN, in eager mode."""

    def variant(memory_format=torch.channels_last, compile_model: bool = False, context=nullcontext):
        copied, optimizer = twin(model, memory_format)
        batch = FixedBatch(inputs.contiguous(memory_format=memory_format), labels, [len(labels)])
        run = epoch_runner(
            torch.compile(copied) if compile_model else copied,
            optimizer,
            MaskEnforcer(copied, mask),
            batch,
            nullcontext,
        )

        def step() -> None:
            with context():
                run()

        return step

    compiled = "torch.compile'd (inductor fuses batch norm, ReLU, adds)"
    steps = {
        "in NCHW": variant(torch.contiguous_format),
        "with oneDNN off (im2col + MKL GEMM)": variant(context=lambda: torch.backends.mkldnn.flags(enabled=False)),
        compiled: variant(compile_model=True),
    }
    started = time.perf_counter()
    steps[compiled]()  # compiles now, outside the timed repeats
    print(f"torch.compile of the train step: {time.perf_counter() - started:.0f} s")
    return steps


def bench_mfu(args) -> None:
    for width in args.widths:
        mfu_at(width, args)


def mfu_at(width: int, args) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    model, mask, optimizer = setup(width, torch.device("cpu"))
    inputs = torch.randn(128, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (128,))
    alternatives = alternative_steps(model, mask, inputs, labels) if args.alternatives else {}
    one_batch = FixedBatch(inputs, labels, [len(labels)])
    step = epoch_runner(model, optimizer, MaskEnforcer(model, mask), one_batch, nullcontext)
    with FlopCounterMode(display=False) as counter:
        step()
    step_flops = counter.get_total_flops()  # counts 2 FLOPs per multiply-add
    # The GEMMs and the step interleave, and MFU is taken per repeat against that repeat's peak:
    # this shared machine's speed drifts by tens of percent within minutes.
    gemms, gemm_flops = gemm_candidates()
    times = time_interleaved({**gemms, "step": step, **alternatives}, args.repeats)
    rates = {name: [gemm_flops[name] / t for t in times[name]] for name in gemms}
    peak = [max(rates[name][r] for name in gemms) for r in range(args.repeats)]
    best = max(gemms, key=lambda name: statistics.median(rates[name]))

    def mfu(name: str) -> str:
        return summarise([100 * step_flops / t / p for t, p in zip(times[name], peak)])

    print(
        f"fp32 GEMM peak {summarise([p / 1e9 for p in peak])} GFLOP/s (fastest shape most often: {best}); "
        f"ResNet-18 w{width} train step {step_flops / 1e9:.1f} GFLOP at "
        f"{summarise([step_flops / t / 1e9 for t in times['step']])} GFLOP/s; MFU {mfu('step')} %"
    )
    # The best of eight noisy timings reads high; against one shape's median the peak is unbiased.
    print(
        f"  MFU against the fastest shape's median ({statistics.median(rates[best]) / 1e9:.1f} GFLOP/s): "
        f"{100 * step_flops / statistics.median(times['step']) / statistics.median(rates[best]):.1f} %"
    )
    for name in gemms:
        print(f"  {name}: {summarise([r / 1e9 for r in rates[name]])} GFLOP/s")
    for name in alternatives:
        print(
            f"  step {name}: MFU {mfu(name)} %; its time / the product's step "
            f"{summarise(ratio_stats(times[name], times['step']))}"
        )
    # Where the step's time goes: the convolutions' own rates, and the share of everything else.
    by_op = counter.get_flop_counts()["Global"]
    conv_flops = {"forward": by_op[torch.ops.aten.convolution], "backward": by_op[torch.ops.aten.convolution_backward]}
    # One profile of --repeats steps: a breakdown, not a timing (the profiler adds its own cost).
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        for _ in range(args.repeats):
            step()
    seconds = {event.key: event.self_cpu_time_total / 1e6 / args.repeats for event in profiler.key_averages()}
    conv_seconds = {"forward": seconds["aten::mkldnn_convolution"], "backward": seconds["aten::convolution_backward"]}
    total = sum(seconds.values())
    for part in ("forward", "backward"):
        print(
            f"  conv {part}: {conv_flops[part] / 1e9:.1f} GFLOP in {conv_seconds[part]:.2f} s = "
            f"{conv_flops[part] / conv_seconds[part] / 1e9:.0f} GFLOP/s, "
            f"{conv_seconds[part] / total:.0%} of the step"
        )
    print(
        f"  everything else (batch norm, ReLU, residual adds, loss, optimizer): "
        f"{1 - sum(conv_seconds.values()) / total:.0%} of the step"
    )


def bench_masking(args) -> None:
    cpu = torch.device("cpu")
    model, mask, optimizer = setup(args.widths[0], cpu, sparsity_rounds=1)  # rate 0.9 once: 90% sparse
    enforcer = MaskEnforcer(model, mask)
    # 10 steps of one batch by default
    batches = FixedBatch.like(our_batches(*npz_images(args.data, args.images), args))
    dense, dense_optimizer = twin(model)
    calls = 200
    times = time_interleaved(
        {
            "masked": epoch_runner(model, optimizer, enforcer, batches, nullcontext),
            "unmasked": epoch_runner(dense, dense_optimizer, MaskEnforcer(dense, {}), batches, nullcontext),
            # The two enforcement calls alone, `calls` times: the difference of two whole-step
            # timings is dominated by a shared machine's noise.
            "enforce": lambda: [(enforcer.apply_to_grads(), enforcer.apply_to_weights()) for _ in range(calls)],
        },
        args.repeats,
    )
    steps = len(batches.sizes)
    share = [(e / calls) / (u / steps) for e, u in zip(times["enforce"], times["unmasked"])]
    print(
        f"width {args.widths[0]}, 90% sparse: enforcement {summarise([1e6 * t / calls for t in times['enforce']])} "
        f"us per step = {summarise([100 * x for x in share])} % of an unmasked step "
        f"({summarise([1e3 * t / steps for t in times['unmasked']])} ms)"
    )
    overhead = [m / u - 1 for m, u in zip(times["masked"], times["unmasked"])]
    print(f"whole steps, masked/unmasked - 1: {summarise([100 * o for o in overhead])} %")


def bench_gradinit(args) -> None:
    """One GradInit iteration (S0 u S1 of --batch-size images) against one training step on batches
    of the same size, each kind of step apart: a constraint step differentiates the gradient norm
    (a double backward), an objective step takes a look-ahead forward and backward. `autograd` is
    the same constraint step with autograd's own second derivatives (no lth.second_derivatives)."""
    cpu = torch.device("cpu")
    model, _, optimizer = setup(args.widths[0], cpu)
    images, labels = npz_images(args.data, args.images)
    batches = our_batches(images, labels, args)
    split = Split(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels))
    data = Data(split, split, split, 10, MEAN, STD, flip=True, crop_padding=4)
    iterations = max(1, args.images // args.batch_size)  # as many iterations as the epoch has steps

    def gradinit_run(gamma: float, fast: bool = True) -> Callable[[], None]:
        copy_of = copy.deepcopy(model)  # GradInit rescales in place: every call starts from the same weights
        hparams = GradinitHparams(enabled=True, batch_size=args.batch_size, iterations=iterations, gamma=gamma)

        def run() -> None:
            work = copy.deepcopy(copy_of)
            with (
                nullcontext()
                if fast
                else mock.patch.object(lth.gradinit, "native_second_derivatives", lambda _model: nullcontext())
            ):
                result = gradinit(work, data, None, hparams, cpu, seed=0)
            assert {row["step"] for row in result.history} == {"constraint" if gamma < 1 else "objective"}

        return run

    times = time_interleaved(
        {
            "train step": epoch_runner(model, optimizer, MaskEnforcer(model, {}), batches, nullcontext),
            "constraint": gradinit_run(1e-12),
            "objective": gradinit_run(math.inf),
            "constraint (autograd)": gradinit_run(1e-12, fast=False),
        },
        args.repeats,
    )
    steps = math.ceil(args.images / args.batch_size)
    step = [t / steps for t in times["train step"]]
    print(f"width {args.widths[0]}, batch {args.batch_size}: train step {summarise([1e3 * t for t in step])} ms")
    for name in ("constraint", "objective", "constraint (autograd)"):
        per_iteration = [t / iterations for t in times[name]]
        print(
            f"gradinit {name} iteration {summarise([1e3 * t for t in per_iteration])} ms = "
            f"{summarise(ratio_stats(per_iteration, step))} x a train step"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("ceiling", "peer", "mfu", "masking", "gradinit"))
    parser.add_argument("--widths", type=int, nargs="+", help="default: 64 for mfu, 16 otherwise")
    parser.add_argument("--images", type=int, default=1280, help="training images per timed epoch")
    parser.add_argument("--eval-images", type=int, default=1000, help="test images per timed evaluation (ceiling)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", type=torch.device, default=torch.device("cpu"))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="bf16: autocast")
    parser.add_argument(
        "--alternatives",
        action="store_true",
        help="mfu: also time the step in NCHW, with oneDNN off, and torch.compile'd",
    )
    parser.add_argument("--peer-workers", type=int, nargs="+", default=[0, 2], help="peer DataLoader workers")
    add_data_option(parser)
    args = parser.parse_args()
    args.widths = args.widths or ([64] if args.what == "mfu" else [16])
    if args.what in ("mfu", "masking", "gradinit") and (args.device.type != "cpu" or args.precision != "fp32"):
        parser.error(f"{args.what} measures the fp32 CPU step; --device and --precision are for ceiling and peer")
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs, device {args.device}"
        + (f" ({torch.cuda.get_device_name(args.device)})" if args.device.type == "cuda" else "")
    )
    {
        "ceiling": bench_ceiling,
        "peer": bench_peer,
        "mfu": bench_mfu,
        "masking": bench_masking,
        "gradinit": bench_gradinit,
    }[args.what](args)


if __name__ == "__main__":
    main()
