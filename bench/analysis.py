"""Analysis benchmarks (issue: benchmarks, the analyses' costs), ResNet-18 CIFAR on the CPU.

  python bench/analysis.py hvp --widths 16 64         # one Hessian-vector product vs one training step, batch 128
  python bench/analysis.py track --widths 16          # `lth train --track hessian` per epoch, as a share of an epoch
  python bench/analysis.py landscape --widths 16      # landscape grid points per second vs plain evaluation passes

The networks are masked at 90% sparsity (one magnitude-pruning round at rate 0.9); the images are
cifar10-mini's (`--data DIR`, by default `$LTH_SHARED_DATA/cifar10-mini`). Every figure is a
median with min-max over --repeats interleaved repeats, in one process; ratios are taken per
repeat. The product's code is timed as the product runs it: the training step is
`lth.train.train_epoch` on one batch, channels_last as `lth train` trains; the Hessian runs as
`lth.analysis.hessian.top_eigen` runs it (on a channels_last copy in eval mode), the landscape on
the NCHW model in eval mode that `lth analyze` loads.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, jvp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ratio_stats, summarise, time_interleaved  # noqa: E402
from training import (
    CIFAR_TRAIN,
    MEAN,
    STD,
    FixedBatch,
    add_data_option,
    epoch_runner,  # noqa: E402
    npz_images,
    setup,
    twin,
)

from lth.analysis.hessian import HessianTracker, _hvp_fn, _masked, _trainable, _working_copy  # noqa: E402
from lth.analysis.landscape import FixedBatches, landscape_directions, weight_landscape  # noqa: E402
from lth.data import Data, Split  # noqa: E402
from lth.data.batches import Batches  # noqa: E402
from lth.masks import MaskEnforcer  # noqa: E402
from lth.train import EpochContext, evaluate  # noqa: E402

CPU = torch.device("cpu")
BATCH = 128


def mini_data(folder: Path, images: int) -> Data:
    """The first `images` training images of `folder` (--data) as a `Data` (its test split unused)."""
    array, labels = npz_images(folder, images)
    split = Split(torch.from_numpy(array).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels))
    return Data(split, split, split, 10, MEAN, STD, flip=True, crop_padding=4)


def normalised(data: Data, images: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `images` training images, normalised as training does, in NCHW."""
    split = Split(data.train.images[:images], data.train.labels[:images])
    return next(iter(Batches(split, images, MEAN, STD, CPU, channels_last=False)))


def masked_resnet(width: int):
    """(the training model, channels_last, with its optimizer; an NCHW eval-mode copy; the mask)."""
    model, mask, optimizer = setup(width, CPU, sparsity_rounds=1)  # rate 0.9 once: 90% sparse
    MaskEnforcer(model, mask).apply_to_weights()
    analysed = copy.deepcopy(model).to(memory_format=torch.contiguous_format).eval()
    return model, optimizer, analysed, mask


def one_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, mask, inputs: torch.Tensor, labels: torch.Tensor
) -> Callable[[], object]:
    """One training step of the product (`train_epoch` over one batch), channels_last."""
    batch = FixedBatch(inputs.contiguous(memory_format=torch.channels_last), labels, [len(labels)])
    return epoch_runner(model, optimizer, MaskEnforcer(model, mask), batch, nullcontext)


def hvp_candidates(model: nn.Module, mask, inputs: torch.Tensor, labels: torch.Tensor) -> dict[str, Callable[[], list]]:
    """One masked Hessian-vector product on one batch, computed several ways; `model` is in eval mode."""
    (working, [(working_inputs, _)]) = _working_copy(model, [(inputs, labels)])  # as top_eigen runs it
    names, params, keeps = _trainable(working, mask)
    generator = torch.Generator().manual_seed(0)
    v = _masked([torch.randn(p.shape, generator=generator) for p in params], keeps)
    kept = _hvp_fn(working, params, [(working_inputs, labels)], keeps)
    nchw_model = copy.deepcopy(working).to(memory_format=torch.contiguous_format)
    _, nchw_params, _ = _trainable(nchw_model, mask)
    nchw_kept = _hvp_fn(nchw_model, nchw_params, [(inputs, labels)], keeps)

    def first_product() -> list[torch.Tensor]:  # a fresh graph: what the first iteration pays
        return _hvp_fn(working, params, [(working_inputs, labels)], keeps)(v)

    def autograd_double_backward() -> list[torch.Tensor]:
        # The product before it took native second derivatives, kept graphs and channels_last:
        # autograd's own double backward of <grad L, v> on the NCHW model `lth analyze` loads.
        model_params = list(model.parameters())
        grads = torch.autograd.grad(F.cross_entropy(model(inputs), labels), model_params, create_graph=True)
        products = torch.autograd.grad(sum(torch.sum(g * x) for g, x in zip(grads, v)), model_params)
        return _masked(list(products), keeps)

    buffers = dict(working.named_buffers())

    def loss(weights: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(functional_call(working, (weights, buffers), (working_inputs,)), labels)

    primals = {name: p.detach() for name, p in zip(names, params)}
    tangents = dict(zip(names, v))

    def forward_over_reverse() -> list[torch.Tensor]:  # torch.func, BatchNorm in eval mode
        return _masked(list(jvp(grad(loss), (primals,), (tangents,))[1].values()), keeps)

    return {
        "product, graph kept (iterations 2 and on)": lambda: kept(v),
        "product, first iteration (graph built)": first_product,
        "product in NCHW, graph kept": lambda: nchw_kept(v),
        "autograd double backward, NCHW (before)": autograd_double_backward,
        "forward-over-reverse (torch.func jvp of grad)": forward_over_reverse,
    }


def bench_hvp(args) -> None:
    data = mini_data(args.data, BATCH)
    inputs, labels = normalised(data, BATCH)
    for width in args.widths:
        model, optimizer, analysed, mask = masked_resnet(width)
        print(f"width {width}, 90% sparse, batch {BATCH}:")
        step = one_step(model, optimizer, mask, inputs, labels)
        hvps = hvp_candidates(analysed, mask, inputs, labels)
        # Each candidate once, untimed (warm-up): the same product, up to float rounding.
        step()
        results = {name: run() for name, run in hvps.items()}
        reference = results[next(iter(hvps))]
        scale = max(float(x.abs().max()) for x in reference)
        for name, result in results.items():
            error = max(float((x - y).abs().max()) for x, y in zip(result, reference)) / scale
            print(f"  {name}: max |difference| to the first {error:.1e} of the largest entry")
        times = time_interleaved({"step": step, **hvps}, args.repeats, warmup=0)
        print(f"  training step (train_epoch on one batch, channels_last) {summarise(times['step'])} s")
        for name in hvps:
            print(
                f"  HVP, {name}: {summarise(times[name])} s = {summarise(ratio_stats(times[name], times['step']))} "
                "training steps"
            )


def bench_track(args) -> None:
    data = mini_data(args.data, args.images)
    inputs, labels = normalised(data, BATCH)
    steps_per_epoch = CIFAR_TRAIN / BATCH
    for width in args.widths:
        model, optimizer, _, mask = masked_resnet(width)
        # A few steps first, so that the weights and BatchNorm statistics are not those at init.
        warm = Split(data.train.images[: args.warmup_steps * BATCH], data.train.labels[: args.warmup_steps * BATCH])
        epoch_runner(
            model,
            optimizer,
            MaskEnforcer(model, mask),
            Batches(warm, BATCH, MEAN, STD, CPU, generator=torch.Generator().manual_seed(0), flip=True, crop_padding=4),
            nullcontext,
        )()
        # The step trains a twin, so that the tracked model stays the same in every repeat.
        stepped, stepped_optimizer = twin(model)
        tracker = HessianTracker(data, mask, sample=args.sample, sample_seed=0, tol=args.tol, max_iter=args.max_iter)
        columns: list[dict[str, float]] = []
        step = one_step(stepped, stepped_optimizer, mask, inputs, labels)
        step()  # warm-up; the tracker's own iterations warm it up (a warm-up call would cost minutes)
        times = time_interleaved(
            {
                "step": step,
                "tracker": lambda: columns.append(tracker(EpochContext(1, model, data, CPU, {}))),
            },
            args.repeats,
            warmup=0,
        )
        iterations = [row["hessian_iterations"] for row in columns]
        print(
            f"width {width}, 90% sparse, {args.warmup_steps} warm-up steps; tracker at sample {args.sample}, tol "
            f"{args.tol}, max {args.max_iter} iterations: eigenvalue {columns[-1]['hessian_eigenvalue']:.4g}, "
            f"{iterations[-1]} iterations (converged: {bool(columns[-1]['hessian_converged'])})"
        )
        seconds_per_iteration = [t / n for t, n in zip(times["tracker"], iterations)]
        print(
            f"  tracker {summarise(times['tracker'])} s, {summarise(seconds_per_iteration)} s per iteration (the "
            f"first, which builds the graph, included); training step (batch {BATCH}) {summarise(times['step'])} s"
        )
        # An epoch's training pass is CIFAR_TRAIN / BATCH such steps (evaluation not counted).
        share = [t / (s * steps_per_epoch) for t, s in zip(times["tracker"], times["step"])]
        per_iteration = [t / n / (s * steps_per_epoch) for t, n, s in zip(times["tracker"], iterations, times["step"])]
        print(
            f"  per epoch of {CIFAR_TRAIN} images ({steps_per_epoch:.1f} steps): "
            f"{summarise([100 * x for x in share])} % at {iterations[-1]} iterations; "
            f"{summarise([100 * x for x in per_iteration])} % per iteration, so "
            f"{summarise([100 * args.max_iter * x for x in per_iteration])} % at the budget of {args.max_iter}"
        )


def bench_landscape(args) -> None:
    data = mini_data(args.data, args.images)
    for width in args.widths:
        _, _, analysed, mask = masked_resnet(width)
        batches = FixedBatches(Batches(data.train, 500, MEAN, STD, CPU, channels_last=False))
        directions = landscape_directions(analysed, mask, seed=0)
        points = args.points**2
        times = time_interleaved(
            {
                "landscape": lambda: weight_landscape(analysed, batches, directions, points=args.points),
                "evaluate": lambda: [evaluate(analysed, batches) for _ in range(points)],
            },
            args.repeats,
        )
        print(
            f"width {width}, 90% sparse, {args.images} images, {points} grid points: landscape "
            f"{summarise([points / t for t in times['landscape']])} points/s, plain evaluation "
            f"{summarise([points / t for t in times['evaluate']])} passes/s; landscape / evaluation "
            f"{summarise(ratio_stats(times['evaluate'], times['landscape']))}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("hvp", "track", "landscape"))
    parser.add_argument("--widths", type=int, nargs="+", default=[16])
    parser.add_argument(
        "--images",
        type=int,
        default=2000,
        help="track: training images the sample is drawn from; landscape: images evaluated",
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--sample", type=int, default=200, help="track: the Hessian's sample (the paper's: 200)")
    parser.add_argument("--tol", type=float, default=1e-3, help="track: power-iteration tolerance")
    parser.add_argument("--max-iter", type=int, default=100, help="track: power-iteration budget")
    parser.add_argument("--warmup-steps", type=int, default=10, help="track: training steps before measuring")
    parser.add_argument("--points", type=int, default=3, help="landscape: grid points per axis")
    add_data_option(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs")
    {"hvp": bench_hvp, "track": bench_track, "landscape": bench_landscape}[args.what](args)


if __name__ == "__main__":
    main()
