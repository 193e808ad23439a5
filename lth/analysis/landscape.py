"""Loss landscapes around a trained network: in weight space (Li et al. 2018), along a given
direction (e.g. the top Hessian eigenvector), and in input space.

Shared choices
- Evaluation: mean plain cross-entropy (no label smoothing, no distillation) and top-1 accuracy,
  by `lth.train.evaluate`, model in eval mode (BatchNorm uses its running statistics, which are
  not perturbed), under no_grad. A point is one evaluation pass: the perturbed weights are written
  into the model's parameters in place (from a saved copy, so no error accumulates from point to
  point) and the batches are normalised once (`FixedBatches`) and reused. Afterwards the weights
  are restored bitwise and the model's training flag is restored.
- Sample (`landscape_batches`): a fixed seeded sample without replacement (default 2,000 images of
  the training split; for the input-space landscape use the test split), drawn by
  torch.randperm(n, seed)[:size] in index order, normalised as in evaluation, no augmentation. It
  depends only on the split, the size and the seed, not on the batch size or the device.
- Grid: `points` coordinates per axis, evenly spaced over [-extent, extent] (default 21 over
  [-1, 1]); an odd `points` puts exactly 0 at the centre. Point k of the points x points grid is
  (alpha_i, beta_j) with i, j = divmod(k, points) (row-major; i along the first direction).
- Splitting: part p of n holds the points k with k % n == p (interleaved, so every part gets a
  similar mix of near and far points). Each point is computed from the checkpoint's weights, the
  seeded directions and the seeded sample alone, so a part's numbers equal the whole grid's at
  those points exactly; `lth.report.collect.merge_parts` checks that the parts cover the grid once and sorts them.

Weight-space landscape (`landscape_directions`, `weight_landscape`): loss at
theta + alpha * d1 + beta * d2. Each direction is Gaussian (drawn on the CPU from one generator
seeded with `seed`, d1 then d2, parameter by parameter in `named_parameters` order, so the same
on any device), then:
- zero for 1-D parameters (BatchNorm weights and biases, every bias): Li et al.'s "ignore
  biasbn", so only conv and linear weights (jump branches' convs included) move;
- multiplied by the mask, so pruned weights stay exactly zero at every point;
- filter-normalised: each output filter d[o] (a row of the direction along dim 0) is rescaled to
  the norm of the matching filter of the masked weights, ||(w * mask)[o]||; a filter whose weights
  are all zero (e.g. entirely pruned) gets a zero direction.

Eigenvector perturbation (`eigen_perturbation`): loss at theta + e * v / ||v|| for e on `points`
values over [-extent, extent] (default 21 over [-0.5, 0.5]); ||v|| is the L2 norm over all the
tensors of v together. v is any dict name -> tensor over some of the model's parameters (absent
names do not move); it is used as given, so a masked v keeps pruned weights at zero.

Input-space landscape (`input_landscape`): for each image x of the sample (normalised pixels),
two Gaussian directions u, w of the image's shape, each rescaled to the image's own L2 norm
(||u|| = ||w|| = ||x||, whole image, all channels), drawn for the whole sample at once from a
generator seeded with `seed` (all u, then all w) so that they do not depend on the batch size.
At each grid point (alpha, beta) the mean cross-entropy (and accuracy) over the sample of
model(x + alpha * u + beta * w); inputs are not clipped to the valid pixel range.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lth.analysis.registry import LandscapeSettings, PerturbationSettings
from lth.data import Data, Split
from lth.data.batches import Batches
from lth.masks import Mask
from lth.report.collect import LandscapeError, LandscapePoint  # torch-free: `lth analyze merge` needs them
from lth.train import evaluate

Direction = dict[str, torch.Tensor]


class FixedBatches:
    """Evaluation batches normalised once and kept: every landscape point reuses the same tensors.

    Quacks like `Batches` for `lth.train.evaluate` (iteration, `device`, `num_images`).
    """

    def __init__(self, batches: Batches) -> None:
        self.batches = [(inputs, labels) for inputs, labels in batches]
        self.device = batches.device
        self.num_images = batches.num_images

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


@dataclass(frozen=True)
class PerturbationPoint:
    index: int
    epsilon: float  # distance moved along v / ||v||
    loss: float
    accuracy: float


def _check_int(name: str, value: object, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise LandscapeError(f"{name}: {value!r} is not allowed; must be an integer >= {low}")
    return value


def sample_split(split: Split, size: int, seed: int) -> Split:
    """`size` images drawn without replacement by a generator seeded with `seed`, in index order."""
    _check_int("sample size", size, 1)
    available = len(split.labels)
    if size > available:
        raise LandscapeError(
            f"sample size {size} is not allowed; the split has only {available} images (must be in [1, {available}])"
        )
    index = torch.randperm(available, generator=torch.Generator().manual_seed(seed))[:size].sort().values
    return Split(split.images[index], split.labels[index])


def landscape_batches(
    data: Data,
    split: str = "train",
    size: int = LandscapeSettings.sample,
    seed: int = 0,
    batch_size: int = 500,
    device: torch.device | str = "cpu",
    channels_last: bool = False,
) -> FixedBatches:
    """The fixed seeded sample of `data.<split>` ('train', 'val' or 'test'), normalised once."""
    if split not in ("train", "val", "test"):
        raise LandscapeError(f"split {split!r} is not allowed; must be 'train', 'val' or 'test'")
    _check_int("batch size", batch_size, 1)
    sample = sample_split(getattr(data, split), size, seed)
    return FixedBatches(
        Batches(sample, batch_size, data.mean, data.std, torch.device(device), channels_last=channels_last)
    )


def grid_coordinates(points: int = LandscapeSettings.points, extent: float = LandscapeSettings.extent) -> list[float]:
    """`points` values evenly spaced over [-extent, extent]; 0 exactly at the centre when `points` is odd."""
    _check_int("grid points", points, 1)
    if not (isinstance(extent, (int, float)) and math.isfinite(extent) and extent > 0):
        raise LandscapeError(f"grid extent {extent!r} is not allowed; must be a finite number > 0")
    if points == 1:
        return [0.0]
    # i / (points - 1) * 2 - 1 is exact at the ends and at the centre (unlike linspace's two halves).
    return [extent * (2 * i / (points - 1) - 1) for i in range(points)]


def part_indices(total: int, part: int, parts: int) -> range:
    """Indices of part `part` of `parts` among `total` grid points: every parts-th, from `part`."""
    _check_int("parts", parts, 1)
    if not isinstance(part, int) or isinstance(part, bool) or not 0 <= part < parts:
        raise LandscapeError(f"part {part!r} is not allowed; must be an integer in [0, {parts - 1}] (parts={parts})")
    return range(part, total, parts)


def _filter_normalized(weight: torch.Tensor, keep: torch.Tensor | None, generator: torch.Generator) -> torch.Tensor:
    direction = torch.randn(weight.shape, generator=generator, dtype=torch.float32)
    weight = weight.detach().float().cpu()
    if keep is not None:
        keep = keep.cpu()
        direction, weight = direction * keep, weight * keep
    weight_norms = weight.flatten(1).norm(dim=1)
    direction_norms = direction.flatten(1).norm(dim=1)
    # A filter with zero weights (entirely pruned) gets a zero direction, not a division by zero.
    scale = torch.where(direction_norms > 0, weight_norms / direction_norms.clamp_min(1e-30), 0.0)
    return direction * scale.view(-1, *[1] * (weight.dim() - 1))


def landscape_directions(model: nn.Module, mask: Mask | None = None, seed: int = 0) -> tuple[Direction, Direction]:
    """Two filter-normalised, masked Gaussian directions over every parameter (zero for 1-D ones)."""
    params = dict(model.named_parameters())
    mask = mask or {}
    unknown = sorted(set(mask) - set(params))
    if unknown:
        raise LandscapeError(f"mask names {unknown[0]!r}, which is not a parameter of the model")
    misshapen = [name for name in mask if mask[name].shape != params[name].shape]
    if misshapen:
        name = misshapen[0]
        raise LandscapeError(
            f"mask {name!r} has shape {tuple(mask[name].shape)}, the parameter's "
            f"{tuple(params[name].shape)}: the mask belongs to another model"
        )
    generator = torch.Generator().manual_seed(seed)
    directions: list[Direction] = []
    for _ in range(2):
        direction = {}
        for name, param in params.items():
            if param.dim() <= 1:  # BN and biases stay put (Li et al.'s ignore="biasbn")
                direction[name] = torch.zeros_like(param)
            else:
                moved = _filter_normalized(param, mask.get(name), generator)
                direction[name] = moved.to(device=param.device, dtype=param.dtype)
        directions.append(direction)
    return directions[0], directions[1]


def _parameters_for(model: nn.Module, directions: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, nn.Parameter]:
    params = dict(model.named_parameters())
    for direction in directions:
        for name, tensor in direction.items():
            if name not in params:
                raise LandscapeError(f"direction names {name!r}, which is not a parameter of the model")
            if tensor.shape != params[name].shape:
                raise LandscapeError(
                    f"direction {name!r} has shape {tuple(tensor.shape)}, the parameter's {tuple(params[name].shape)}"
                )
    return params


def _evaluate_along(
    model: nn.Module,
    batches: FixedBatches,
    directions: Sequence[Mapping[str, torch.Tensor]],
    coefficients: Sequence[Sequence[float]],
) -> list[tuple[float, float]]:
    """(loss, accuracy) at theta + sum_k c_k * directions[k] for each tuple c of `coefficients`."""
    params = _parameters_for(model, directions)
    names = list(dict.fromkeys(name for direction in directions for name in direction))
    moves = [{name: tensor.to(params[name]) for name, tensor in direction.items()} for direction in directions]
    with torch.no_grad():
        base = {name: params[name].detach().clone() for name in names}
    was_training = model.training
    results = []
    try:
        with torch.no_grad():
            for point in coefficients:
                for name in names:
                    param = params[name]
                    param.copy_(base[name])  # from the saved copy: no drift from point to point
                    for coefficient, move in zip(point, moves, strict=True):
                        if coefficient and name in move:  # skipping 0 keeps the centre bitwise theta
                            param.add_(move[name], alpha=coefficient)
                results.append(evaluate(model, batches))
    finally:
        with torch.no_grad():
            for name in names:
                params[name].copy_(base[name])
        model.train(was_training)
    return results


def weight_landscape(
    model: nn.Module,
    batches: FixedBatches,
    directions: tuple[Mapping[str, torch.Tensor], Mapping[str, torch.Tensor]],
    points: int = LandscapeSettings.points,
    extent: float = LandscapeSettings.extent,
    part: int = 0,
    parts: int = 1,
) -> list[LandscapePoint]:
    """Loss and accuracy at the points of part `part` of `parts` of the grid (default: all of it)."""
    coordinates = grid_coordinates(points, extent)
    indices = part_indices(points * points, part, parts)
    cells = [divmod(k, points) for k in indices]
    results = _evaluate_along(model, batches, directions, [(coordinates[i], coordinates[j]) for i, j in cells])
    return [
        LandscapePoint(k, i, j, coordinates[i], coordinates[j], loss, accuracy)
        for k, (i, j), (loss, accuracy) in zip(indices, cells, results, strict=True)
    ]


def eigen_perturbation(
    model: nn.Module,
    batches: FixedBatches,
    direction: Mapping[str, torch.Tensor],
    extent: float = PerturbationSettings.extent,
    points: int = LandscapeSettings.points,
) -> list[PerturbationPoint]:
    """Loss and accuracy at theta + e * v / ||v|| for `points` values of e over [-extent, extent]."""
    coordinates = grid_coordinates(points, extent)
    _parameters_for(model, [direction])
    norm = math.sqrt(sum(float(tensor.detach().double().square().sum()) for tensor in direction.values()))
    if not math.isfinite(norm) or norm == 0:
        raise LandscapeError(f"the direction's norm is {norm}; it must be finite and nonzero")
    unit = {name: tensor.detach() / norm for name, tensor in direction.items()}
    results = _evaluate_along(model, batches, [unit], [(e,) for e in coordinates])
    return [
        PerturbationPoint(k, e, loss, accuracy)
        for k, (e, (loss, accuracy)) in enumerate(zip(coordinates, results, strict=True))
    ]


def input_directions(batches: FixedBatches, seed: int = 0) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per batch, the u and w of every image: Gaussian, each rescaled to the image's L2 norm."""
    inputs = torch.cat([x.detach().float().cpu() for x, _ in batches])
    generator = torch.Generator().manual_seed(seed)
    image_norms = inputs.flatten(1).norm(dim=1)
    scaled = []
    for _ in range(2):
        noise = torch.randn(inputs.shape, generator=generator)
        noise *= (image_norms / noise.flatten(1).norm(dim=1)).view(-1, 1, 1, 1)
        sizes = [len(labels) for _, labels in batches]
        scaled.append([chunk.to(x) for chunk, (x, _) in zip(noise.split(sizes), batches, strict=True)])
    return scaled[0], scaled[1]


def _moved(x: torch.Tensor, direction: torch.Tensor, coefficient: float) -> torch.Tensor:
    # Skipping 0 keeps the grid's centre exactly the unperturbed inputs (x + 0 * u can flip -0.0).
    return torch.add(x, direction, alpha=coefficient) if coefficient else x


def input_landscape(
    model: nn.Module,
    batches: FixedBatches,
    points: int = LandscapeSettings.points,
    extent: float = LandscapeSettings.extent,
    seed: int = 0,
    part: int = 0,
    parts: int = 1,
) -> list[LandscapePoint]:
    """Mean loss (and accuracy) over the sample of model(x + alpha * u + beta * w) at each grid point."""
    coordinates = grid_coordinates(points, extent)
    indices = part_indices(points * points, part, parts)
    us, ws = input_directions(batches, seed)
    was_training = model.training
    model.eval()
    results = []
    try:
        with torch.no_grad():
            for k in indices:
                i, j = divmod(k, points)
                loss_sum = torch.zeros((), device=batches.device)
                correct = torch.zeros((), device=batches.device, dtype=torch.long)
                for (x, labels), u, w in zip(batches, us, ws, strict=True):
                    outputs = model(_moved(_moved(x, u, coordinates[i]), w, coordinates[j]))
                    loss_sum += F.cross_entropy(outputs.float(), labels, reduction="sum")
                    correct += (outputs.argmax(1) == labels).sum()
                results.append(
                    LandscapePoint(
                        k,
                        i,
                        j,
                        coordinates[i],
                        coordinates[j],
                        loss_sum.item() / batches.num_images,
                        correct.item() / batches.num_images,
                    )
                )
    finally:
        model.train(was_training)
    return results
