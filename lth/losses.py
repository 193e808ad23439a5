"""Training losses: cross-entropy, label smoothing in two forms, and knowledge distillation.

Every loss has the signature `(outputs, targets, inputs) -> scalar` that `lth.train.train`
calls; distillation needs `inputs` to run the teacher on the same augmented batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lth.hparams import TrainHparams

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def smoothed_targets(targets: torch.Tensor, num_classes: int, smoothing: float, form: str) -> torch.Tensor:
    """Target distributions, one row per label.

    official (the ToST code): 1 - a on the true class, a / (C - 1) on each other class.
    pytorch (CrossEntropyLoss(label_smoothing=a)): a / C on every class, so the true class gets 1 - a + a / C.
    """
    if form == "official":
        off, on = smoothing / (num_classes - 1), 1.0 - smoothing
    elif form == "pytorch":
        off, on = smoothing / num_classes, 1.0 - smoothing + smoothing / num_classes
    else:
        raise ValueError(f"label smoothing form {form!r} is not one of: official, pytorch")
    distribution = torch.full((len(targets), num_classes), off, device=targets.device)
    return distribution.scatter_(1, targets.unsqueeze(1), on)


def label_smoothing_loss(outputs: torch.Tensor, targets: torch.Tensor, smoothing: float, form: str) -> torch.Tensor:
    """Cross-entropy against smoothed targets, averaged over the batch."""
    if form == "pytorch":
        return F.cross_entropy(outputs, targets, label_smoothing=smoothing)
    distribution = smoothed_targets(targets, outputs.shape[1], smoothing, form)
    return -(F.log_softmax(outputs, dim=1) * distribution).sum(1).mean()


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float, reduction: str) -> torch.Tensor:
    """T^2 * KL(softmax(teacher/T) || softmax(student/T)).

    batchmean divides the summed KL by the batch size (the KL per sample); mean divides it by
    batch size x classes, as F.kl_div(reduction="mean") in the KD-ticket code does.
    """
    log_student = F.log_softmax(student / temperature, dim=1)
    log_teacher = F.log_softmax(teacher / temperature, dim=1)
    kl = F.kl_div(log_student, log_teacher, reduction="sum", log_target=True)
    divisor = student.shape[0] if reduction == "batchmean" else student.numel()
    return temperature**2 * kl / divisor


def make_loss(hparams: TrainHparams, teacher: nn.Module | None = None) -> LossFn:
    """The loss `hparams` ask for. With distillation (kd_alpha > 0) the label term is the
    (smoothed, if asked) cross-entropy, weighted by 1 - kd_alpha."""
    if (hparams.kd_alpha > 0) != (teacher is not None):
        raise ValueError("a teacher is needed exactly when train.kd_alpha > 0")

    def label_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if hparams.label_smoothing > 0:
            return label_smoothing_loss(outputs, targets, hparams.label_smoothing, hparams.label_smoothing_form)
        return F.cross_entropy(outputs, targets)

    if teacher is None:
        return lambda outputs, targets, inputs: label_loss(outputs, targets)

    # Eval mode: the teacher's BatchNorm uses its running statistics and never updates them.
    teacher.eval().requires_grad_(False)
    alpha = hparams.kd_alpha

    def kd_loss(outputs: torch.Tensor, targets: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            teacher_outputs = teacher(inputs)
        soft = distillation_loss(outputs, teacher_outputs, hparams.kd_temperature, hparams.kd_reduction)
        return alpha * soft + (1 - alpha) * label_loss(outputs, targets)

    return kd_loss


def loss_summary(hparams: TrainHparams) -> dict[str, Any]:
    """Which loss a run used, for its summary: a form or reduction is null where it played no part."""
    smoothing, kd = hparams.label_smoothing > 0, hparams.kd_alpha > 0
    return {
        "label_smoothing": hparams.label_smoothing,
        "label_smoothing_form": hparams.label_smoothing_form if smoothing else None,
        "kd_alpha": hparams.kd_alpha,
        "kd_temperature": hparams.kd_temperature if kd else None,
        "kd_reduction": hparams.kd_reduction if kd else None,
    }
