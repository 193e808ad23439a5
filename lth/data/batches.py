"""Batches from an in-memory uint8 split: augmentation vectorised per batch, on the training device.

Per-sample PIL transforms in a DataLoader take 10-20x longer than this path on CPU
(BENCHMARKS.md) and cannot feed a GPU; here a batch is one gather (random crop), one `where`
(flip) and one fused scale-and-shift.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from lth.data.sources import Split


class Batches:
    """Iterate (inputs, labels) over a split; a new shuffle and augmentation draw every pass.

    Random draws come from `generator` on the CPU, so the same seed gives the same batches on
    any device, and the generator's state is all a resume needs to restore.
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        device: torch.device,
        *,
        generator: torch.Generator | None = None,
        flip: bool = False,
        crop_padding: int = 0,
        channels_last: bool = True,
    ) -> None:
        self.images = split.images.to(device)
        self.labels = split.labels.to(device)
        self.batch_size = batch_size
        self.device = device
        self.generator = generator  # None: evaluation order, no augmentation
        self.flip = flip
        self.crop_padding = crop_padding
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        # Normalise as x * scale + shift on raw 0..255 values: (x / 255 - mean) / std in one op.
        std_t = torch.tensor(std, device=device).view(1, -1, 1, 1)
        self.scale = 1.0 / (255.0 * std_t)
        self.shift = -torch.tensor(mean, device=device).view(1, -1, 1, 1) / std_t

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    @property
    def num_images(self) -> int:
        return len(self.labels)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.labels)
        augment = self.generator is not None
        order = torch.randperm(n, generator=self.generator).to(self.device) if augment else None
        for start in range(0, n, self.batch_size):
            if order is None:
                images = self.images[start:start + self.batch_size]
                labels = self.labels[start:start + self.batch_size]
            else:
                index = order[start:start + self.batch_size]
                images, labels = self.images[index], self.labels[index]
                images = self._augment(images)
            inputs = images.float().mul_(self.scale).add_(self.shift)
            yield inputs.contiguous(memory_format=self.memory_format), labels

    def _augment(self, images: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = images.shape
        if self.crop_padding:
            pad = self.crop_padding
            offsets = torch.randint(0, 2 * pad + 1, (batch, 2), generator=self.generator).to(self.device)
            # Zero padding on raw pixels, before normalisation, as torchvision's RandomCrop(padding=4).
            padded = F.pad(images, (pad, pad, pad, pad))
            rows = (offsets[:, 0:1] + torch.arange(height, device=self.device)).view(batch, 1, height, 1)
            cols = (offsets[:, 1:2] + torch.arange(width, device=self.device)).view(batch, 1, 1, width)
            samples = torch.arange(batch, device=self.device).view(batch, 1, 1, 1)
            channels = torch.arange(images.shape[1], device=self.device).view(1, -1, 1, 1)
            images = padded[samples, channels, rows, cols]
        if self.flip:
            flips = (torch.rand(batch, generator=self.generator) < 0.5).to(self.device)
            images = torch.where(flips.view(batch, 1, 1, 1), images.flip(3), images)
        return images
