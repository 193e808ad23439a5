"""GPU training throughput: the product's epoch against the peer loop and the fixed-batch ceiling.

  python bench/gpu.py                                # ResNet-18 w64, batch 128 and 512, 50k images, bf16
  python bench/gpu.py --batch-sizes 512 --repeats 5 --peer-workers 8

ResNet-18 (CIFAR stem, 10 classes, 90% sparse mask) trains on CIFAR-shaped random uint8 images
(50,000 x 32 x 32 x 3 by default; throughput does not depend on the pixels), in bf16 autocast.
Three candidates run interleaved in one process, each a full pass over the images:
- ours: `lth.train.train_epoch` on `lth.data.batches.Batches` (shuffle, random crop, flip and
  normalisation on the GPU), channels_last, the mask enforced after every step, cuDNN autotuning
  on: what `lth train` runs;
- the peer (bench/training.py's): a torchvision-style PIL DataLoader with RandomCrop,
  RandomHorizontalFlip, ToTensor and Normalize, with 2 and 8 workers, NCHW, the mask multiplied
  into the weights before every forward;
- the ceiling: the same model and steps as ours on one pre-made device batch (no data path).
Targets: ours >= 20,000 img/s on an A100/H100-class card, >= 3x the peer, >= 0.9x the ceiling.

Without CUDA it says so and measures nothing (exit 0). `--device cpu --precision fp32` runs the
same code on the CPU, at tiny sizes, to check it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ratio_stats, summarise, time_interleaved  # noqa: E402

TARGET_IMAGES_PER_S, TARGET_PEER, TARGET_CEILING = 20_000, 3.0, 0.9


def bench_batch_size(images: np.ndarray, labels: np.ndarray, args: argparse.Namespace) -> None:
    # Imported here, not at the top: without CUDA the script exits before paying for torchvision.
    from training import (
        FixedBatch,
        autocast_for,
        epoch_runner,
        images_per_s,
        our_batches,
        peer_loader,
        peer_runner,
        setup,
        twin,
    )

    from lth.masks import MaskEnforcer

    model, mask, optimizer = setup(args.width, args.device, sparsity_rounds=1)  # rate 0.9 once: 90% sparse
    mask = {
        name: keep.to(args.device) for name, keep in mask.items()
    }  # prune returns CPU masks; the peer needs them here
    enforcer = MaskEnforcer(model, mask)
    enforcer.apply_to_weights()
    autocast = autocast_for(args)
    batches = our_batches(images, labels, args)
    step_model = torch.compile(model, dynamic=False) if args.compile else model  # as `lth train` compiles
    # train_epoch reads its loss at the end, which waits for the GPU: no extra synchronisation needed.
    candidates = {
        "ours": epoch_runner(step_model, optimizer, enforcer, batches, autocast),
        "ceiling": epoch_runner(step_model, optimizer, enforcer, FixedBatch.like(batches), autocast),
    }
    for workers in args.peer_workers:
        # The peer trains its own copy from the same start, in the default memory format.
        peer_model, peer_optimizer = twin(model, torch.contiguous_format)
        candidates[f"peer{workers}"] = peer_runner(
            peer_model, peer_optimizer, mask, peer_loader(images, labels, args, workers), args
        )
    times = time_interleaved(candidates, args.repeats)  # the warm-up pass autotunes, compiles, starts workers
    count = len(labels)
    print(
        f"batch {args.batch_size}: ours {images_per_s(count, times['ours'])} img/s (target >= {TARGET_IMAGES_PER_S:,})"
    )
    print(
        f"batch {args.batch_size}: ceiling {images_per_s(count, times['ceiling'])} img/s; ours / ceiling "
        f"{summarise(ratio_stats(times['ceiling'], times['ours']))} (target >= {TARGET_CEILING})"
    )
    for workers in args.peer_workers:
        print(
            f"batch {args.batch_size}: peer ({workers} workers) {images_per_s(count, times[f'peer{workers}'])} "
            f"img/s; peer time / ours {summarise(ratio_stats(times[f'peer{workers}'], times['ours']))} "
            f"(target >= {TARGET_PEER:g})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--images", type=int, default=50_000, help="random CIFAR-shaped training images per epoch")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per candidate, after one warm-up")
    parser.add_argument("--peer-workers", type=int, nargs="+", default=[2, 8], help="peer DataLoader workers")
    parser.add_argument("--device", type=torch.device, default=torch.device("cuda"))
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="bf16", help="bf16: autocast")
    parser.add_argument("--compile", action="store_true", help="torch.compile our model (train.compile)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    if args.device.type == "cuda" and not torch.cuda.is_available():
        print("CUDA not available: nothing measured")
        return
    torch.set_num_threads(args.threads)
    if args.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as `lth train` sets it on a GPU
    print(
        f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs, device {args.device}"
        + (f" ({torch.cuda.get_device_name(args.device)})" if args.device.type == "cuda" else "")
        + f"; ResNet-18 w{args.width}, {args.precision}, {args.images} images per epoch, "
        f"median (min, max) of {args.repeats} epochs"
    )
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.images, 32, 32, 3), dtype=np.uint8)  # NHWC, as PIL and CIFAR hold them
    labels = rng.integers(0, 10, args.images).astype(np.int64)
    for batch_size in args.batch_sizes:
        args.batch_size = batch_size  # our_batches and peer_loader read it from args
        bench_batch_size(images, labels, args)


if __name__ == "__main__":
    main()
