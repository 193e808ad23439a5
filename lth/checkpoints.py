"""Model checkpoints that describe themselves: weights plus the architecture that reads them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lth.errors import LthError
from lth.hparams import ModelHparams
from lth.io import load_verified, save_verified

FORMAT = "lth-checkpoint"
WHAT = "an lth checkpoint (written by `lth init` or `lth train`)"


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    model_hparams: ModelHparams,
    num_classes: int,
    epoch: int,
    mask: Mapping[str, torch.Tensor] | None = None,
) -> None:
    """`epoch` is the number of training epochs behind these weights (0 = initialisation); `mask`: the
    mask in force then, kept only where training changes it (sparse training), as `lth prune` reads it."""
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "model": model_hparams.to_dict(),
        "num_classes": num_classes,
        "epoch": epoch,
        "state_dict": state,
    }
    if mask is not None:
        payload["mask"] = {name: keep.cpu().contiguous() for name, keep in mask.items()}
    save_verified(path, payload)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint at `path`, its embedded digest checked (cut or changed bytes are an error)."""
    return load_verified(path, (FORMAT,), WHAT, "rerun the command that wrote it")


def nonfinite(tensors: Mapping[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors that hold NaN or infinity: the mark of a diverged run."""
    return [
        name
        for name, tensor in tensors.items()
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    ]


def build_model(model_hparams: ModelHparams, num_classes: int) -> nn.Module:
    from lth import models

    return models.build(
        model_hparams.name,
        num_classes=num_classes,
        width=model_hparams.width,
        activation=model_hparams.activation,
        skip=model_hparams.skip,
    )


def model_from_checkpoint(checkpoint: Mapping[str, Any]) -> nn.Module:
    """The network a loaded checkpoint holds: its architecture built, its weights loaded."""
    model = build_model(ModelHparams.from_dict(checkpoint["model"]), checkpoint["num_classes"])
    model.load_state_dict(checkpoint["state_dict"])
    return model


def load_ticket_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load a checkpoint's weights into `model`, which may be the ticket's architecture with the skip
    tweak's jump branches added: those alone may be missing (they keep their fresh initialisation);
    any other missing key, and any key the model does not have, is an error."""
    from lth.models.skip import jump_state_keys

    own = model.state_dict()
    mismatched = [
        f"{key} {tuple(value.shape)} vs {tuple(own[key].shape)}"
        for key, value in state_dict.items()
        if key in own and value.shape != own[key].shape
    ]
    if mismatched:  # checked first: load_state_dict would raise a bare RuntimeError
        raise LthError(
            f"the weights do not fit this architecture (shape of checkpoint vs model: "
            f"{', '.join(mismatched[:3])}{', ...' if len(mismatched) > 3 else ''}); "
            "do the model settings match the checkpoint's?"
        )
    result = model.load_state_dict(state_dict, strict=False)
    missing = sorted(set(result.missing_keys) - jump_state_keys(model))
    problems = [
        f"{label}: {', '.join(keys)}"
        for label, keys in (("missing", missing), ("unexpected", sorted(result.unexpected_keys)))
        if keys
    ]
    if problems:
        raise LthError(f"the weights do not fit this architecture ({'; '.join(problems)})")


def init_model(model_hparams: ModelHparams, num_classes: int, seed: int) -> nn.Module:
    """theta0 for a seed: the model's default initialisation under torch.manual_seed(seed)."""
    torch.manual_seed(seed)
    return build_model(model_hparams, num_classes)
