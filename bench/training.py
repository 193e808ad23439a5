"""Training-pass benchmarks on CPU (issue: benchmarks, items 1-4).

  python bench/training.py ceiling --widths 16 64      # our epoch vs the fixed-batch compute ceiling
  python bench/training.py peer --widths 8 16 64       # our epoch vs a PIL DataLoader peer loop
  python bench/training.py mfu                         # model FLOP utilisation vs measured fp32 GEMM peak
  python bench/training.py masking                     # mask enforcement overhead at 90% sparsity

Every figure is a median with min-max over --repeats interleaved repeats, in one process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ratio_stats, summarise, time_interleaved  # noqa: E402

from lth import models  # noqa: E402
from lth.data import Batches, Split  # noqa: E402
from lth.hparams import PruneHparams  # noqa: E402
from lth.masks import MaskEnforcer, dense_mask, prunable_names, prune  # noqa: E402

SHARED = Path(os.environ.get("LTH_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def cifar_mini(images: int) -> tuple[np.ndarray, np.ndarray]:
    with np.load(SHARED / "cifar10-mini" / "train.npz") as archive:
        return archive["images"][:images], archive["labels"][:images].astype(np.int64)


def setup(width: int, sparsity_rounds: int = 0):
    torch.manual_seed(0)
    model = models.build("resnet18", 10, width).to(memory_format=torch.channels_last)
    mask = dense_mask(model.state_dict(), prunable_names(model))
    if sparsity_rounds:
        mask = prune(model.state_dict(), mask, PruneHparams(rate=0.9), rounds=sparsity_rounds)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=2e-4)
    return model, mask, optimizer


def step(model, optimizer, enforcer, inputs, labels) -> None:
    loss = F.cross_entropy(model(inputs), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if enforcer:
        enforcer.apply_to_grads()
    optimizer.step()
    if enforcer:
        enforcer.apply_to_weights()


def ours_epoch(model, optimizer, enforcer, batches: Batches):
    def run() -> None:
        model.train()
        for inputs, labels in batches:
            step(model, optimizer, enforcer, inputs, labels)
    return run


def ceiling_epoch(model, optimizer, enforcer, batches: Batches):
    inputs, labels = next(iter(batches))  # one pre-made batch, reused: no data path at all

    def run() -> None:
        model.train()
        for _ in range(len(batches)):
            step(model, optimizer, enforcer, inputs, labels)
    return run


def peer_epoch(model, optimizer, mask, images, labels, workers: int):
    """The loop common LTH codebases use: per-sample PIL transforms in a DataLoader, and the mask
    multiplied into param.data before every forward (open_lth style)."""
    import torchvision.transforms as T
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset

    class CifarStyle(Dataset):
        transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                               T.Normalize(MEAN, STD)])

        def __len__(self) -> int:
            return len(labels)

        def __getitem__(self, index: int):
            return self.transform(Image.fromarray(images[index])), int(labels[index])

    loader = DataLoader(CifarStyle(), batch_size=128, shuffle=True, num_workers=workers,
                        persistent_workers=workers > 0)
    params = dict(model.named_parameters())

    def run() -> None:
        model.train()
        for inputs, targets in loader:
            with torch.no_grad():
                for name, keep in mask.items():
                    params[name].data *= keep
            step(model, optimizer, None, inputs.contiguous(memory_format=torch.channels_last), targets)
    return run


def our_batches(images: np.ndarray, labels: np.ndarray) -> Batches:
    split = Split(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels))
    return Batches(split, 128, MEAN, STD, torch.device("cpu"), generator=torch.Generator().manual_seed(0),
                   flip=True, crop_padding=4)


def bench_ceiling(args) -> None:
    images, labels = cifar_mini(args.images)
    for width in args.widths:
        model, mask, optimizer = setup(width)
        enforcer = MaskEnforcer(model, mask)
        batches = our_batches(images, labels)
        times = time_interleaved({"ours": ours_epoch(model, optimizer, enforcer, batches),
                                  "ceiling": ceiling_epoch(model, optimizer, enforcer, batches)}, args.repeats)
        ratios = ratio_stats(times["ceiling"], times["ours"])
        print(f"width {width}: ours {summarise([len(labels) / t for t in times['ours']])} img/s, ceiling "
              f"{summarise([len(labels) / t for t in times['ceiling']])} img/s, ours/ceiling {summarise(ratios)}")


def bench_peer(args) -> None:
    images, labels = cifar_mini(args.images)
    for width in args.widths:
        model, mask, optimizer = setup(width)
        candidates = {"ours": ours_epoch(model, optimizer, MaskEnforcer(model, mask), our_batches(images, labels))}
        for workers in (0, 2):
            candidates[f"peer{workers}"] = peer_epoch(model, optimizer, mask, images, labels, workers)
        times = time_interleaved(candidates, args.repeats)
        for workers in (0, 2):
            print(f"width {width}: peer ({workers} workers) time / ours {summarise(ratio_stats(times[f'peer{workers}'], times['ours']))}"
                  f"; ours {summarise([len(labels) / t for t in times['ours']])} img/s")


def bench_mfu(args) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    size = 2048
    a, b = torch.randn(size, size), torch.randn(size, size)
    gemm = time_interleaved({"gemm": lambda: a @ b}, args.repeats)["gemm"]
    peak = [2 * size**3 / t for t in gemm]
    model, mask, optimizer = setup(64)
    inputs = torch.randn(128, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (128,))
    with FlopCounterMode(display=False) as counter:
        step(model, optimizer, None, inputs, labels)
    flops = counter.get_total_flops()  # counts 2 FLOPs per multiply-add
    steps = time_interleaved({"step": lambda: step(model, optimizer, None, inputs, labels)}, args.repeats)["step"]
    achieved = [flops / t for t in steps]
    print(f"fp32 GEMM peak {summarise([p / 1e9 for p in peak])} GFLOP/s; ResNet-18 w64 train step "
          f"{flops / 1e9:.1f} GFLOP, {summarise([x / 1e9 for x in achieved])} GFLOP/s; "
          f"MFU {statistics.median(achieved) / statistics.median(peak):.1%}")


def bench_masking(args) -> None:
    model, mask, optimizer = setup(args.widths[0], sparsity_rounds=1)  # rate 0.9 once: 90% sparse
    enforcer = MaskEnforcer(model, mask)
    inputs = torch.randn(128, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (128,))
    steps = 10
    times = time_interleaved({
        "masked": lambda: [step(model, optimizer, enforcer, inputs, labels) for _ in range(steps)],
        "unmasked": lambda: [step(model, optimizer, None, inputs, labels) for _ in range(steps)],
    }, args.repeats)
    overhead = [m / u - 1 for m, u in zip(times["masked"], times["unmasked"])]
    print(f"width {args.widths[0]}, 90% sparse: masked/unmasked - 1 = {summarise([100 * o for o in overhead])} %")
    # The two enforcement calls alone, against the unmasked step: far less noisy than the difference
    # of two whole-step timings on a shared machine.
    step(model, optimizer, enforcer, inputs, labels)  # gradients exist for apply_to_grads
    calls = 200
    enforce = time_interleaved({"enforce": lambda: [(enforcer.apply_to_grads(), enforcer.apply_to_weights())
                                                    for _ in range(calls)]}, args.repeats)["enforce"]
    per_step = statistics.median(times["unmasked"]) / steps
    print(f"enforcement alone: {summarise([1e6 * t / calls for t in enforce])} us per step = "
          f"{100 * statistics.median(enforce) / calls / per_step:.3f}% of an unmasked step ({1e3 * per_step:.1f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("ceiling", "peer", "mfu", "masking"))
    parser.add_argument("--widths", type=int, nargs="+", default=[16])
    parser.add_argument("--images", type=int, default=1280, help="images per timed epoch")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs")
    {"ceiling": bench_ceiling, "peer": bench_peer, "mfu": bench_mfu, "masking": bench_masking}[args.what](args)


if __name__ == "__main__":
    main()
