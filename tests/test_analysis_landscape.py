"""Loss landscapes: filter-normalised masked directions, exact centre, splittable grid, weights restored."""

from __future__ import annotations

import pytest
import torch

from lth import models
from lth.analysis.landscape import (
    LandscapeError,
    eigen_perturbation,
    grid_coordinates,
    input_directions,
    input_landscape,
    landscape_batches,
    landscape_directions,
    sample_split,
    weight_landscape,
)
from lth.data.batches import Batches
from lth.errors import LthError
from lth.masks import prunable_names
from lth.report.collect import merge_parts
from lth.train import evaluate

pytestmark = pytest.mark.usefixtures("one_thread")
SAMPLE = 60  # of digits' 180 training images: small and fast, and still below the data's size


@pytest.fixture(scope="module")
def ticket():
    """A tiny ResNet-18 with a random 50% mask (one filter wholly pruned), its weights masked as a
    ticket's are, and BN statistics that are not the defaults."""
    torch.manual_seed(0)
    model = models.build("resnet18", num_classes=10, width=4)
    model.train()
    with torch.no_grad():  # a few train-mode passes give BN running statistics of their own
        for _ in range(3):
            model(torch.randn(16, 3, 32, 32))
    generator = torch.Generator().manual_seed(1)
    mask = {
        name: torch.rand(model.get_parameter(name).shape, generator=generator) < 0.5 for name in prunable_names(model)
    }
    mask["layer1.0.conv1.weight"][0] = False
    with torch.no_grad():
        for name, keep in mask.items():
            model.get_parameter(name).mul_(keep)
    return model, mask


def test_directions_are_filter_normalised_masked_and_seeded(ticket):
    model, mask = ticket
    first, second = landscape_directions(model, mask, seed=3)
    for direction in (first, second):
        assert direction.keys() == dict(model.named_parameters()).keys()
        for name, param in model.named_parameters():
            d = direction[name]
            if param.dim() <= 1:
                assert not d.any(), name  # BN and biases do not move
                continue
            if name in mask:
                assert not d[~mask[name]].any(), name  # pruned coordinates stay zero
            weight_norms = param.detach().flatten(1).norm(dim=1)
            direction_norms = d.flatten(1).norm(dim=1)
            nonzero = weight_norms > 0
            torch.testing.assert_close(direction_norms[nonzero], weight_norms[nonzero], rtol=1e-5, atol=0)
            assert not direction_norms[~nonzero].any(), name
    assert not first["layer1.0.conv1.weight"][0].any()  # the wholly pruned filter
    again = landscape_directions(model, mask, seed=3)
    assert all(torch.equal(first[name], again[0][name]) for name in first)
    assert not torch.equal(first["conv1.weight"], second["conv1.weight"])
    assert not torch.equal(first["conv1.weight"], landscape_directions(model, mask, seed=4)[0]["conv1.weight"])


def test_centre_is_the_checkpoint_loss_parts_merge_and_weights_are_restored(ticket, digits_data):
    model, mask = ticket
    batches = landscape_batches(digits_data, size=SAMPLE, seed=5, batch_size=25)
    plain = Batches(
        sample_split(digits_data.train, SAMPLE, seed=5), 25, digits_data.mean, digits_data.std, torch.device("cpu")
    )
    plain_loss, plain_acc = evaluate(model, plain)
    directions = landscape_directions(model, mask, seed=0)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    model.train()

    # Pruned weights must be zero at every point the network is evaluated at.
    def check_pruned(module, _inputs):
        assert not module.weight[~mask["layer2.0.conv1.weight"]].any()

    handle = model.layer2[0].conv1.register_forward_pre_hook(check_pruned)
    try:
        whole = weight_landscape(model, batches, directions, points=3)
    finally:
        handle.remove()

    assert model.training
    after = model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)  # bitwise
    assert [(p.i, p.j) for p in whole] == [(i, j) for i in range(3) for j in range(3)]
    centre = whole[4]
    assert (centre.alpha, centre.beta) == (0.0, 0.0)
    assert (centre.loss, centre.accuracy) == (plain_loss, plain_acc)
    assert len({p.loss for p in whole}) == 9  # the directions do move the loss
    parts = [weight_landscape(model, batches, directions, points=3, part=p, parts=4) for p in range(4)]
    assert [len(part) for part in parts] == [3, 2, 2, 2]
    assert merge_parts(reversed(parts), points=3) == whole
    with pytest.raises(LandscapeError, match=r"missing points \[1, 5\]"):
        merge_parts([parts[0], parts[2], parts[3]], points=3)


def test_eigen_perturbation_at_zero_is_the_plain_loss(ticket, digits_data):
    model, mask = ticket
    batches = landscape_batches(digits_data, size=SAMPLE, seed=5, batch_size=25)
    plain = evaluate(model, batches)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    direction = {name: torch.randn(keep.shape) * keep for name, keep in mask.items()}  # any dict will do
    points = eigen_perturbation(model, batches, direction, points=5)
    assert [p.epsilon for p in points] == [-0.5, -0.25, 0.0, 0.25, 0.5]
    assert (points[2].loss, points[2].accuracy) == plain
    assert points[0].loss != plain[0] and points[4].loss != points[0].loss
    assert all(torch.equal(before[name], model.state_dict()[name]) for name in before)
    # Only the direction's size is irrelevant: v and 10 v give the same numbers.
    scaled = eigen_perturbation(model, batches, {name: 10 * d for name, d in direction.items()}, points=5)
    assert [p.loss for p in scaled] == pytest.approx([p.loss for p in points], rel=1e-5)


def test_input_landscape(ticket, digits_data):
    model, _ = ticket
    batches = landscape_batches(digits_data, split="test", size=SAMPLE, seed=2, batch_size=25)
    us, ws = input_directions(batches, seed=0)
    for (x, _), u, w in zip(batches, us, ws):
        torch.testing.assert_close(u.flatten(1).norm(dim=1), x.flatten(1).norm(dim=1))
        torch.testing.assert_close(w.flatten(1).norm(dim=1), x.flatten(1).norm(dim=1))
    whole = input_landscape(model, batches, points=3, extent=0.5)
    assert (whole[4].loss, whole[4].accuracy) == evaluate(model, batches)
    assert len({p.loss for p in whole}) == 9
    parts = [input_landscape(model, batches, points=3, extent=0.5, part=p, parts=2) for p in range(2)]
    assert merge_parts(parts, points=3) == whole


def test_grid_coordinates():
    coordinates = grid_coordinates()
    assert len(coordinates) == 21 and coordinates[0] == -1.0 and coordinates[10] == 0.0 and coordinates[20] == 1.0
    assert grid_coordinates(1) == [0.0]


def test_user_errors_name_the_value(ticket, digits_data):
    model, mask = ticket
    assert issubclass(LandscapeError, LthError)
    with pytest.raises(LandscapeError, match="grid points: 0 is not allowed"):
        grid_coordinates(0)
    with pytest.raises(LandscapeError, match="extent -1"):
        grid_coordinates(3, -1)
    with pytest.raises(LandscapeError, match=r"sample size 500 is not allowed.*only 180"):
        landscape_batches(digits_data, size=500)
    with pytest.raises(LandscapeError, match=r"part 2 is not allowed; must be an integer in \[0, 1\]"):
        weight_landscape(model, None, ({}, {}), points=3, part=2, parts=2)  # type: ignore[arg-type]
    with pytest.raises(LandscapeError, match="'nope'"):
        landscape_directions(model, {"nope": torch.ones(1, dtype=torch.bool)})
    with pytest.raises(LandscapeError, match="norm is 0"):
        zero = {"conv1.weight": torch.zeros_like(model.conv1.weight)}
        eigen_perturbation(model, None, zero)  # type: ignore[arg-type]
