"""Reference devices for `lth estimate`: the measured training throughput of lth/resources.py's reference
job (ResNet-18 at width 64 on 32x32 images) on each, with the figures' source in BENCHMARKS.md.

Apart from lth/estimate.py so that `lth`'s parser, which lists the devices in `lth estimate --help`,
does not import the planner for every command.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Pass:
    """`steps` training steps' worth of images (a forward-only image counts lth.estimate.FORWARD), in
    batches of `batch`."""

    steps: float
    batch: int


@dataclass(frozen=True)
class Device:
    """A reference device: the measured training throughput of lth/resources.py's reference job on it,
    and its floor: the fastest training measured on it, which no smaller model beats."""

    name: str
    label: str  # what it is, in words
    images_per_second: float  # training the reference job (ResNet-18 w64, 32x32 images)
    batch: int  # ... at this batch size
    floor_images_per_second: float  # the fastest training measured on it ...
    floor_batch: int  # ... at this batch size
    floor_per_step: bool  # the floor is a step's time whatever its images (a launch-bound GPU), else per image
    precision: str  # train.precision of the measurements
    gpu: bool  # a job holds one GPU; else the device is the machine, all its `cores`
    cores: int  # CPU cores of the measured machine (a CPU device's core-hours)
    source: str  # where the figures are measured

    def floor(self, batch: int) -> float:
        """The least cost per image (in reference-job images) of a step on `batch` images."""
        ratio = self.images_per_second / self.floor_images_per_second
        return ratio * self.floor_batch / batch if self.floor_per_step else ratio

    def seconds(self, passes: Sequence[Pass], cost: float) -> float:
        """The time of `passes` of a model whose image costs `cost` reference-job images."""
        return sum(p.steps * max(cost, self.floor(p.batch)) for p in passes) / self.images_per_second

    def assumption(self) -> str:
        return (
            f"{self.label}: {self.images_per_second:,g} img/s training ResNet-18 w64 at batch {self.batch}, "
            f"no model faster than {self.floor_images_per_second:,g} img/s at batch {self.floor_batch}"
            f" ({'per step: a smaller batch is slower per image' if self.floor_per_step else 'per image'}); "
            f"{self.source}"
        )


DEVICES: dict[str, Device] = {
    device.name: device
    for device in (
        Device(
            "h200-bf16",
            "one NVIDIA H200, bf16 autocast, channels_last",
            40_730,
            512,
            9_034,
            128,
            floor_per_step=True,
            precision="bf16",
            gpu=True,
            cores=16,
            source="BENCHMARKS.md, GPU throughput: ours 40,730 img/s at batch 512 and 9,034 at batch 128, where "
            "ResNet-18 w64 is already bound by kernel launches (the fixed-batch ceiling is 10,090)",
        ),
        Device(
            "cpu-2core",
            "2 AMD EPYC (Zen 3) cores, fp32, one job of 2 threads",
            27.7,
            128,
            680,
            128,
            floor_per_step=False,
            precision="fp32",
            gpu=False,
            cores=2,
            source="BENCHMARKS.md, Training pass: 27.7 img/s at width 64 (row 1), 680 img/s at width 8 (row 2), "
            "the narrowest measured",
        ),
    )
}
