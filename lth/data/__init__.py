"""Datasets held in memory once, split 9:1 into train/validation (batches: `lth.data.batches`).

Importing this package does not import torch: the workflow plans jobs from `split_sizes` and
`lth.data.identity` on every Snakemake start, and each cluster job re-parses the Snakefile.
torch is imported by the functions that build tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lth.data.sources import SOURCES, DataError, RawData, Source, Split, get_source

if TYPE_CHECKING:
    import torch

    from lth.hparams import DataHparams

__all__ = [
    "Data",
    "DataError",
    "RawData",
    "SOURCES",
    "Source",
    "Split",
    "data_root",
    "get_source",
    "load",
    "num_classes",
    "split_sizes",
]


@dataclass(frozen=True)
class Data:
    train: Split
    val: Split
    test: Split
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    flip: bool
    crop_padding: int


def data_root(hparams: DataHparams) -> Path | None:
    return Path(hparams.root).expanduser() if hparams.root else None


def num_classes(hparams: DataHparams) -> int:
    """Without decoding any image (used by `lth init`)."""
    return get_source(hparams.name).num_classes(data_root(hparams))


def _val_count(train_images: int, val_fraction: float) -> int:
    return max(1, round(val_fraction * train_images))


def split_sizes(hparams: DataHparams) -> dict[str, int]:
    """Images in the train, val and test splits that `load` makes, without decoding the data."""
    train, test = get_source(hparams.name).sizes(data_root(hparams))
    if hparams.subset_per_class is not None:
        train = min(train, hparams.subset_per_class * num_classes(hparams))
    val = _val_count(train, hparams.val_fraction)
    return {"train": train - val, "val": val, "test": test}


def _channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of 0..1 pixels, in chunks to bound memory on large sets."""
    import torch

    total = torch.zeros(images.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for chunk in images.split(4096):
        values = chunk.to(torch.float64).div_(255).transpose(0, 1).reshape(images.shape[1], -1)
        total += values.sum(1)
        squares += values.square().sum(1)
    count = images.numel() // images.shape[1]
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(1e-12).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


def _balanced_subset(split: Split, per_class: int, generator: torch.Generator) -> Split:
    import torch

    order = torch.randperm(len(split.labels), generator=generator)
    labels = split.labels[order]
    chosen = []
    for label in labels.unique().tolist():
        positions = order[labels == label]
        if len(positions) < per_class:
            raise DataError(
                f"data.subset_per_class: {per_class} is not allowed; class {label} "
                f"has only {len(positions)} training images"
            )
        chosen.append(positions[:per_class])
    index = torch.cat(chosen).sort().values
    return Split(split.images[index], split.labels[index])


def load(hparams: DataHparams, seed: int) -> Data:
    """Load the source once; subset and split deterministically from `seed`.

    Normalisation statistics come from the whole training file, so they do not change with the
    seed or the subset.
    """
    import torch

    source = get_source(hparams.name)
    raw: RawData = source.load(data_root(hparams), hparams.download)
    mean, std = _channel_stats(raw.train.images)
    generator = torch.Generator().manual_seed(seed)
    train = raw.train
    if hparams.subset_per_class is not None:
        train = _balanced_subset(train, hparams.subset_per_class, generator)
    order = torch.randperm(len(train.labels), generator=generator)
    n_val = _val_count(len(order), hparams.val_fraction)
    if n_val >= len(order):  # training on nothing would divide by zero in the first epoch
        raise DataError(
            f"data.val_fraction: {hparams.val_fraction} of {len(order)} training images leaves none "
            "to train on; use more images or a smaller val_fraction"
        )
    val_index, train_index = order[:n_val].sort().values, order[n_val:].sort().values
    return Data(
        train=Split(train.images[train_index], train.labels[train_index]),
        val=Split(train.images[val_index], train.labels[val_index]),
        test=raw.test,
        num_classes=raw.num_classes,
        mean=mean,
        std=std,
        flip=source.flip,
        crop_padding=source.crop_padding,
    )
