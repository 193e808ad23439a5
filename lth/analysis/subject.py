"""What an `lth analyze` command looks at: a checkpoint's network, its mask and the run's data."""

from __future__ import annotations

import argparse
import dataclasses
import functools
from typing import Any

from lth.errors import LthError, UsageError
from lth.hparams import DataHparams
from lth.inputs import load_config, read_input, require_file


@dataclasses.dataclass
class Subject:
    """The network (weights loaded, in eval mode), its mask and its data, loaded when first read
    (after every check and once --out is this process's to write)."""

    model: Any
    mask: Any
    device: Any
    data_hp: DataHparams
    seed: int

    @functools.cached_property
    def data(self) -> Any:
        from lth import data

        return data.load(self.data_hp, self.seed)


def load_subject(args: argparse.Namespace) -> Subject:
    """Every cheap check (paths, settings, mask fit); the data load waits for the analysis."""
    from lth.checkpoints import load_checkpoint, model_from_checkpoint
    from lth.devices import assign_device
    from lth.masks import MaskEnforcer, load_mask
    from lth.train import resolve_device

    config = load_config(args.config)
    weights = require_file(args.weights, "--weights")
    mask_path = require_file(args.mask, "--mask")
    data_hp = DataHparams.from_sources(config, args)
    checkpoint = read_input("--weights", weights, load_checkpoint)
    model = model_from_checkpoint(checkpoint)
    mask = read_input("--mask", mask_path, load_mask) if mask_path else None
    if mask:
        try:
            MaskEnforcer(model, mask).apply_to_weights()  # also checks that the mask fits the model
        except LthError as error:
            raise UsageError(f"--mask: {mask_path} does not fit {weights} ({error})") from None
    device = resolve_device(assign_device(args.device, args.jobs_per_gpu))
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    return Subject(model.to(device).eval(), mask, device, data_hp, args.seed)
