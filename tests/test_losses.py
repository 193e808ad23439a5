"""Label smoothing (both forms) and knowledge distillation against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lth.hparams import TrainHparams
from lth.losses import label_smoothing_loss, loss_summary, make_loss, smoothed_targets

NUM_CLASSES = 10


@pytest.mark.parametrize("form, off_target", [("official", 0.1 / 9), ("pytorch", 0.1 / 10)])
def test_smoothed_targets_sum_to_one_with_the_off_target_mass(form: str, off_target: float):
    targets = torch.tensor([0, 3, 9, 3])
    distribution = smoothed_targets(targets, NUM_CLASSES, 0.1, form)
    assert distribution.sum(1).tolist() == pytest.approx([1.0] * 4)
    on_target = distribution[torch.arange(4), targets]
    assert on_target.tolist() == pytest.approx([1 - off_target * (NUM_CLASSES - 1)] * 4)
    off = distribution.masked_select(F.one_hot(targets, NUM_CLASSES) == 0)
    assert off.tolist() == pytest.approx([off_target] * (4 * (NUM_CLASSES - 1)))


@pytest.mark.parametrize("form", ["official", "pytorch"])
def test_label_smoothing_loss_is_cross_entropy_against_the_smoothed_targets(form: str):
    generator = torch.Generator().manual_seed(0)
    outputs = torch.randn(6, NUM_CLASSES, generator=generator)
    targets = torch.randint(0, NUM_CLASSES, (6,), generator=generator)
    expected = -(F.log_softmax(outputs, 1) * smoothed_targets(targets, NUM_CLASSES, 0.1, form)).sum(1).mean()
    assert label_smoothing_loss(outputs, targets, 0.1, form).item() == pytest.approx(expected.item(), rel=1e-6)
    loss = make_loss(TrainHparams(label_smoothing=0.1, label_smoothing_form=form))
    assert loss(outputs, targets, torch.empty(0)).item() == pytest.approx(expected.item(), rel=1e-6)


def test_the_two_forms_differ_and_zero_smoothing_is_cross_entropy():
    outputs, targets = torch.tensor([[2.0, 0.5, -1.0]]), torch.tensor([0])
    official = label_smoothing_loss(outputs, targets, 0.1, "official")
    pytorch = label_smoothing_loss(outputs, targets, 0.1, "pytorch")
    assert official.item() != pytest.approx(pytorch.item())
    assert make_loss(TrainHparams())(outputs, targets, outputs).item() == F.cross_entropy(outputs, targets).item()


def _softmax(row: list[float]) -> list[float]:
    exps = [math.exp(v) for v in row]
    return [e / sum(exps) for e in exps]


def _hand_kd(
    student: list[list[float]],
    teacher: list[list[float]],
    labels: list[int],
    alpha: float,
    temperature: float,
    per_class: bool,
) -> float:
    """a * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - a) * CE(s, y), written out in plain Python."""
    kl, ce = 0.0, 0.0
    for s, t, y in zip(student, teacher, labels):
        p_t = _softmax([v / temperature for v in t])
        p_s = _softmax([v / temperature for v in s])
        kl += sum(pt * math.log(pt / ps) for pt, ps in zip(p_t, p_s))
        ce -= math.log(_softmax(s)[y])
    n, c = len(labels), len(student[0])
    kl /= n * c if per_class else n
    return alpha * temperature**2 * kl + (1 - alpha) * ce / n


class Identity(nn.Module):
    """A teacher whose logits are its inputs, with one parameter to see whether gradients reach it."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs * self.scale


@pytest.mark.parametrize("reduction", ["batchmean", "mean"])
def test_kd_loss_equals_the_hand_computed_value(reduction: str):
    student = [[1.0, 2.0, 0.0], [0.5, -1.0, 3.0]]
    teacher = [[2.0, 1.0, -1.0], [0.0, 0.0, 4.0]]
    labels = [1, 2]
    hparams = TrainHparams(kd_alpha=0.9, kd_temperature=5.0, kd_reduction=reduction)
    loss = make_loss(hparams, Identity())(torch.tensor(student), torch.tensor(labels), torch.tensor(teacher))
    expected = _hand_kd(student, teacher, labels, 0.9, 5.0, per_class=reduction == "mean")
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_mean_reduction_is_the_per_sample_kl_divided_by_the_classes():
    generator = torch.Generator().manual_seed(1)
    student, teacher = torch.randn(4, 100, generator=generator), torch.randn(4, 100, generator=generator)
    labels = torch.zeros(4, dtype=torch.long)
    losses = {
        reduction: make_loss(TrainHparams(kd_alpha=1.0, kd_reduction=reduction), Identity())(
            student, labels, teacher
        ).item()
        for reduction in ("batchmean", "mean")
    }
    assert losses["mean"] == pytest.approx(losses["batchmean"] / 100, rel=1e-5)


def test_the_teacher_gets_no_gradient_and_keeps_its_batchnorm_statistics():
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(5, 3), nn.BatchNorm1d(3))
    student = nn.Linear(5, 3)
    running_mean = teacher[1].running_mean.clone()
    loss_fn = make_loss(TrainHparams(kd_alpha=0.9), teacher)
    inputs, labels = torch.randn(8, 5), torch.randint(0, 3, (8,))
    loss_fn(student(inputs), labels, inputs).backward()
    assert not teacher.training
    assert all(p.grad is None for p in teacher.parameters())
    assert torch.equal(teacher[1].running_mean, running_mean)
    assert student.weight.grad is not None and student.weight.grad.abs().sum() > 0


def test_a_teacher_is_needed_exactly_with_distillation():
    with pytest.raises(ValueError, match="teacher"):
        make_loss(TrainHparams(kd_alpha=0.9))
    with pytest.raises(ValueError, match="teacher"):
        make_loss(TrainHparams(), Identity())


def test_the_summary_names_only_the_forms_in_use():
    assert loss_summary(TrainHparams(kd_reduction="mean")) == {
        "label_smoothing": 0.0,
        "label_smoothing_form": None,
        "kd_alpha": 0.0,
        "kd_temperature": None,
        "kd_reduction": None,
    }
    summary = loss_summary(
        TrainHparams(label_smoothing=0.1, label_smoothing_form="pytorch", kd_alpha=0.9, kd_reduction="mean")
    )
    assert (summary["label_smoothing_form"], summary["kd_reduction"], summary["kd_temperature"]) == (
        "pytorch",
        "mean",
        5.0,
    )
