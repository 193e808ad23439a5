"""What a job asks a scheduler for (walltime, memory, GPUs), estimated from its settings without torch.

A cluster kills a job at its walltime and queues long requests behind short ones, so the estimate
grows with what the job does: the epochs it trains, the model's cost per image (forward FLOPs,
scaled by width and image size) and the number of training images, and with Snakemake's
`attempt`, so a retried job asks for more. A training killed at its walltime resumes from its
last finished epoch on the next attempt, so an estimate that is too short costs at most an epoch.

The user calibrates one number to their hardware, `resources.train.runtime_per_epoch`: minutes
per epoch of the reference job (ResNet-18 at width 64 on 50,000 32x32 images) on their device.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Forward GFLOPs per 32x32 image at width 64 (2 per multiply-add), as lth.flops counts them for
# the CIFAR models; tests/test_resources.py checks them against lth.flops.
MODEL_GFLOPS = {"resnet18": 1.111, "resnet34": 2.319, "vgg16": 0.626, "mobilenet": 0.0927}
REFERENCE_MODEL, REFERENCE_WIDTH, REFERENCE_PIXELS, REFERENCE_IMAGES = "resnet18", 64, 32 * 32, 50_000
# Below this fraction of the reference's work per epoch a GPU is bound by per-batch overheads,
# not FLOPs: narrow models do not get proportionally faster.
MIN_RELATIVE_COST = 1 / 16
# Host memory per byte of the uint8 training set: the decoded arrays, the train/validation copies
# and the tensors built from them.
DATA_MEMORY_FACTOR = 4


@dataclass(frozen=True)
class Work:
    """What one job does: trains (or evaluates through) `epochs` epochs of this model on this data."""

    model: str
    width: int
    image_pixels: int  # height x width of one image
    train_images: int
    epochs: int


def image_cost(model: str, width: int, image_pixels: int) -> float:
    """One image of this model as a fraction of one image of the reference job, by forward FLOPs (no
    floor: `lth estimate` applies each device's own, lth/estimate.py)."""
    flops = MODEL_GFLOPS[model] / MODEL_GFLOPS[REFERENCE_MODEL] * (width / REFERENCE_WIDTH) ** 2
    return flops * image_pixels / REFERENCE_PIXELS


def relative_cost(work: Work) -> float:
    """One epoch of `work` as a fraction of one epoch of the reference job (at least MIN_RELATIVE_COST)."""
    per_epoch = image_cost(work.model, work.width, work.image_pixels) * work.train_images / REFERENCE_IMAGES
    return max(per_epoch, MIN_RELATIVE_COST)


def runtime_minutes(work: Work, settings: Mapping[str, Any], attempt: int = 1) -> int:
    """Walltime: `runtime_base` (start-up, data, evaluation) plus the epochs at the calibrated speed."""
    minutes = settings["runtime_base"] + work.epochs * settings["runtime_per_epoch"] * relative_cost(work)
    return math.ceil(minutes * attempt)


def memory_mb(work: Work, settings: Mapping[str, Any], attempt: int = 1) -> int:
    """Host memory: `mem_mb` (the process, torch and CUDA) plus the training set held in memory."""
    data_mb = work.train_images * 3 * work.image_pixels / 2**20 * DATA_MEMORY_FACTOR
    return math.ceil((settings["mem_mb"] + data_mb) * attempt)
