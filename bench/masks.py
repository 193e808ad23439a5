"""Seconds per mask of each mask source, against one training step (issue: any mask as a ticket).

  python bench/masks.py                  # ResNet-18 w16, CIFAR-shaped batches of 128, IMP level 5's count
  python bench/masks.py --widths 64 --repeats 3

Each source draws one mask from theta0 as `lth prune --method` does, without process start-up or
data loading: magnitude (one global sort), random, SNIP (one batch), GraSP (one batch: a gradient
and a Hessian-gradient product), SynFlow (100 rounds of one all-ones image). Interleaved with a
training step (forward, backward, SGD) on the same batch, so each source reads as a number of
training steps.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ratio_stats, summarise, time_interleaved  # noqa: E402

from lth import mask_sources, models  # noqa: E402
from lth.hparams import PruneHparams  # noqa: E402
from lth.masks import dense_mask, prunable_names, prune  # noqa: E402


def bench_width(width: int, args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    model = models.build("resnet18", 10, width)
    names = prunable_names(model)
    params = dict(model.named_parameters())
    count = mask_sources.kept_count(names, params, 0.2, args.level)
    batch = (torch.randn(args.batch_size, 3, 32, 32), torch.randint(0, 10, (args.batch_size,)))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-9)  # a step that barely moves theta0

    def step() -> None:
        optimizer.zero_grad()
        F.cross_entropy(model(batch[0]), batch[1]).backward()
        optimizer.step()

    shapes = {name: params[name].shape for name in names}
    candidates = {
        "step": step,
        "magnitude": lambda: prune(
            model.state_dict(), dense_mask(model.state_dict(), names), PruneHparams(), rounds=args.level
        ),
        "random": lambda: mask_sources.random_mask(shapes, count, seed=0),
        "snip": lambda: mask_sources.keep_top(mask_sources.snip_scores(model, names, [batch]), count),
        "grasp": lambda: mask_sources.keep_top(mask_sources.grasp_scores(model, names, [batch]), count),
        "synflow": lambda: mask_sources.synflow_mask(model, names, count, (3, 32, 32), args.synflow_rounds),
    }
    times = time_interleaved(candidates, args.repeats)
    print(f"width {width}: training step {summarise(times['step'])} s")
    for name in candidates:
        if name != "step":
            print(
                f"width {width}: {name} {summarise(times[name])} s per mask = "
                f"{summarise(ratio_stats(times[name], times['step']))} training steps"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", type=int, nargs="+", default=[16])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--level", type=int, default=5, help="IMP level whose kept count the masks have")
    parser.add_argument("--synflow-rounds", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {args.threads} threads; ResNet-18, batch {args.batch_size}, IMP level "
        f"{args.level}'s count, median (min, max) of {args.repeats}"
    )
    for width in args.widths:
        bench_width(width, args)


if __name__ == "__main__":
    main()
