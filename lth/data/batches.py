"""Batches from an in-memory uint8 split: augmentation vectorised per batch, on the training device.

Per-sample PIL transforms in a DataLoader take 10-20x longer than this path on CPU
(BENCHMARKS.md) and cannot feed a GPU; here a batch is one gather (random crop), one `where`
(flip) and one fused scale-and-shift. An epoch's random draws reach the device in one copy, so on
a GPU no batch waits for the host.
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
        if self.generator is None:
            for start in range(0, n, self.batch_size):
                yield (
                    self._normalise(self.images[start : start + self.batch_size]),
                    self.labels[start : start + self.batch_size],
                )
            return
        order, offsets, flips = self._draw_epoch()
        for start in range(0, n, self.batch_size):
            stop = start + self.batch_size
            index = order[start:stop]
            images = self._augment(
                self.images[index],
                None if offsets is None else offsets[start:stop],
                None if flips is None else flips[start:stop],
            )
            yield self._normalise(images), self.labels[index]

    def _normalise(self, images: torch.Tensor) -> torch.Tensor:
        inputs = images.float().mul_(self.scale).add_(self.shift)
        return inputs.contiguous(memory_format=self.memory_format)

    def _draw_epoch(self) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """The epoch's shuffle, crop offsets and flips, on the device: drawn on the CPU in the order
        the per-batch loop used to draw them (randperm, then per batch offsets before flips), so the
        batches and the generator's state after the epoch are bit-identical to drawing per batch.
        They travel in one copy (pinned and asynchronous on CUDA), so no batch waits on the host."""
        n = len(self.labels)
        order = torch.randperm(n, generator=self.generator)
        offsets, flips = [], []
        for start in range(0, n, self.batch_size):
            batch = min(self.batch_size, n - start)
            if self.crop_padding:
                offsets.append(torch.randint(0, 2 * self.crop_padding + 1, (batch, 2), generator=self.generator))
            if self.flip:
                flips.append(torch.rand(batch, generator=self.generator) < 0.5)
        parts = [order]
        if offsets:
            parts.append(torch.cat(offsets).reshape(-1))
        if flips:
            parts.append(torch.cat(flips).long())
        packed = torch.cat(parts)
        if self.device.type == "cuda":
            packed = packed.pin_memory().to(self.device, non_blocking=True)
        else:
            packed = packed.to(self.device)
        device_order, rest = packed[:n], packed[n:]
        device_offsets = device_flips = None
        if offsets:
            device_offsets, rest = rest[: 2 * n].view(n, 2), rest[2 * n :]
        if flips:
            device_flips = rest.bool()
        return device_order, device_offsets, device_flips

    def _augment(self, images: torch.Tensor, offsets: torch.Tensor | None, flips: torch.Tensor | None) -> torch.Tensor:
        """Crop `images` (raw uint8) at `offsets` (batch x 2: row, column into the zero-padded image)
        and mirror those where `flips` is True; None skips that step."""
        batch, _, height, width = images.shape
        if offsets is not None:
            pad = self.crop_padding
            # Zero padding on raw pixels, before normalisation, as torchvision's RandomCrop(padding=4).
            padded = F.pad(images, (pad, pad, pad, pad))
            rows = (offsets[:, 0:1] + torch.arange(height, device=self.device)).view(batch, 1, height, 1)
            cols = (offsets[:, 1:2] + torch.arange(width, device=self.device)).view(batch, 1, 1, width)
            samples = torch.arange(batch, device=self.device).view(batch, 1, 1, 1)
            channels = torch.arange(images.shape[1], device=self.device).view(1, -1, 1, 1)
            images = padded[samples, channels, rows, cols]
        if flips is not None:
            images = torch.where(flips.view(batch, 1, 1, 1), images.flip(3), images)
        return images
