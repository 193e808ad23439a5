"""Model checkpoints that describe themselves: weights plus the architecture that reads them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from lth.errors import LthError
from lth.hparams import ModelHparams
from lth.io import torch_save

FORMAT = "lth-checkpoint"


def save_checkpoint(path: str | Path, model: nn.Module, model_hparams: ModelHparams, num_classes: int,
                    epoch: int) -> None:
    """`epoch` is the number of training epochs behind these weights (0 = initialisation)."""
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    torch_save({"format": FORMAT, "model": model_hparams.to_dict(), "num_classes": num_classes,
                "epoch": epoch, "state_dict": state}, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise LthError(f"{path} is not an lth checkpoint (expected one written by `lth init` or `lth train`)")
    return payload


def build_model(model_hparams: ModelHparams, num_classes: int) -> nn.Module:
    from lth import models

    return models.build(model_hparams.name, num_classes=num_classes, width=model_hparams.width,
                        activation=model_hparams.activation)


def init_model(model_hparams: ModelHparams, num_classes: int, seed: int) -> nn.Module:
    """theta0 for a seed: the model's default initialisation under torch.manual_seed(seed)."""
    torch.manual_seed(seed)
    return build_model(model_hparams, num_classes)
