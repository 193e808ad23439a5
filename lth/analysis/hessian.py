"""The top Hessian eigenvalue(s) of a (sparse) network's training loss, by power iteration.

Definition (what `hessian_eigen` computes)
- Loss: L(theta) = mean over the N images of the sample of the plain cross-entropy
  F.cross_entropy(model(x), y), model in eval mode (BatchNorm uses its running statistics, which
  are constants here; dropout is off). It is the run's training loss *without* its extras: no
  label smoothing, no distillation term, no weight decay, no augmentation.
- Inputs: normalised exactly as training normalises them (`lth.data.Batches` with the Data's mean
  and std), with no augmentation, in index order.
- Sample: `sample_indices(N_train, size, seed)` = torch.randperm(N_train, generator seeded with
  `seed`)[:size], sorted (default 200 images of the training split, seed 0); the same rule as
  `lth.analysis.landscape.sample_split`. The result records the indices, so any other tool can
  recompute the same number from them. Full-training-set mode (`size=None`) uses every training
  image.
- Batching: H v = sum over batches b of (n_b / N) H_b v, where H_b is the Hessian of batch b's
  mean loss; this equals the Hessian of the sample's mean loss, so the value does not depend on
  the batch size (up to float rounding).
- Coordinates: every trainable parameter (requires_grad, BatchNorm and biases included) with the
  pruned coordinates removed, i.e. the principal submatrix H[kept, kept] of the Hessian, where
  kept is True off the mask and the mask's True entries on the masked tensors. Implemented by
  multiplying v by the mask at every iteration (P H P with P the 0/1 projection), so the
  eigenvectors are exactly 0 where weights are pruned. The Hessian is taken at the model's weights
  as given; they must already be 0 where the mask prunes (a ticket's are), or it is an error.
- Hessian-vector products: double backward (autograd.grad of the gradient g with grad_outputs v,
  i.e. of <g, v>), in the parameters' dtype, on a copy of the model in eval mode, channels_last
  where torch allows it (`_working_copy`); dot products and norms are accumulated in float64. For
  nn.Conv2d and eval-mode nn.BatchNorm2d the second derivatives take native kernels
  (`lth.second_derivatives`): a convolution's gradient is differentiated by the forward
  convolution and the convolution_backward kernels of a training step, and BatchNorm is the
  per-channel affine map it is in eval mode. A sample of one batch keeps g and its graph between
  products (the weights do not change during power iteration), so every product after the first
  is one backward pass. The same function as autograd's plain double backward up to float
  rounding, at a fraction of its cost; forward-over-reverse (torch.func jvp of grad) is slower on
  the CPU (`python bench/analysis.py hvp`, BENCHMARKS.md).
- Power iteration: v_0 is Gaussian, drawn on the CPU from a generator seeded with `seed`, tensor
  by tensor in `named_parameters` order (so the same on any device), masked, normalised. Each
  iteration computes w = P H P v, the estimate lambda = <v, w>, then v = w / ||w||. It stops when
  |lambda_t - lambda_{t-1}| <= tol * |lambda_t| (default tol 1e-3; needs two iterations) or after
  `max_iter` iterations (default 100); `iterations` counts Hessian-vector products (over the whole
  sample) and `converged` is False when the budget ran out. Non-convergence is reported, never
  hidden. The eigenvector returned is the last normalised iterate.
- Residual: `residuals` holds ||w - lambda v|| / |lambda| of the last iteration (v the iterate
  before it, unit norm). The stopping rule watches the estimate's change, not its error, and can
  stop early when two eigenvalues have nearly equal magnitudes; the residual is the check: H has
  an eigenvalue within residual * |lambda| of lambda (H symmetric), so a large residual means the
  value is not yet an eigenvalue even if `converged` is True.
- Which eigenvalue: power iteration finds the eigenvalue of largest *magnitude*, which may be
  negative. For trained networks the top positive eigenvalue dominates in practice, so it is the
  top (sharpness) eigenvalue; a negative value in the result means the negative curvature is the
  larger one.
- Top-k (k <= 5) by deflation: eigenpair j runs the same iteration with v projected orthogonal to
  the eigenvectors already found (Gram-Schmidt) before and after each product, so it converges to
  the largest-magnitude eigenvalue of H on their orthogonal complement. Each pair has its own
  `iterations`, `converged` and `residual`; the pairs are in the order found (normally, not
  always, by decreasing magnitude: near-equal magnitudes may come out in either order).
- Trace (optional, `trace_samples` > 0): Hutchinson's estimate tr(P H P) = E[z^T P H P z] with z
  Rademacher (+-1) on the kept coordinates and 0 on pruned ones, drawn from a CPU generator seeded
  with `seed + 1`; reported with its standard error over the samples.
- Seconds: wall time of the iterations (and the trace), not of building the batches.

Per epoch (`HessianTracker`, `lth train --track hessian`): the same quantity after every training
epoch, on the same seeded sample, as an epoch-end callback of `lth.train.train` that adds the
columns hessian_eigenvalue, hessian_iterations, hessian_converged (1/0), hessian_residual and
hessian_seconds to metrics.csv.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lth.analysis.registry import MAX_K, PowerIterationSettings
from lth.data import Data, Split
from lth.data.batches import Batches
from lth.errors import LthError
from lth.masks import Mask
from lth.second_derivatives import native_second_derivatives
from lth.train import EpochContext, channels_last_risks

log = logging.getLogger(__name__)

Vector = list[torch.Tensor]
Batch = tuple[torch.Tensor, torch.Tensor]


class HessianError(LthError):
    """A bad sample, mask, tolerance, iteration budget or k."""


@dataclass(frozen=True)
class HessianResult:
    """Eigenpairs in the order found; `indices` are the training-split images used (None when the
    batches were given directly to `top_eigen`)."""

    eigenvalues: list[float]
    iterations: list[int]
    converged: list[bool]
    residuals: list[float]
    eigenvectors: list[dict[str, torch.Tensor]] = field(repr=False)
    seconds: float
    indices: list[int] | None = None
    trace: float | None = None
    trace_std_error: float | None = None
    trace_samples: int = 0

    @property
    def eigenvalue(self) -> float:
        return self.eigenvalues[0]

    @property
    def eigenvector(self) -> dict[str, torch.Tensor]:
        return self.eigenvectors[0]

    @property
    def all_converged(self) -> bool:
        return all(self.converged)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: everything but the eigenvectors."""
        record = asdict(replace(self, eigenvectors=[]))
        del record["eigenvectors"]
        return record


def _check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
        allowed = f"an integer in [{low}, {high}]" if high is not None else f"an integer >= {low}"
        raise HessianError(f"{name}: {value!r} is not allowed; must be {allowed}")
    return value


def sample_indices(num_images: int, size: int, seed: int) -> list[int]:
    """`size` of range(num_images) without replacement, seeded, sorted:
    torch.randperm(num_images, generator seeded with `seed`)[:size]."""
    _check_int("number of images", num_images, 1)
    _check_int("sample size", size, 1)
    if size > num_images:
        raise HessianError(
            f"sample size {size} is not allowed; the split has only {num_images} images (must be in [1, {num_images}])"
        )
    order = torch.randperm(num_images, generator=torch.Generator().manual_seed(seed))
    return order[:size].sort().values.tolist()


def hessian_batches(
    data: Data,
    indices: Sequence[int],
    *,
    batch_size: int = 500,
    device: torch.device | str = "cpu",
    channels_last: bool = False,
) -> list[Batch]:
    """The training images at `indices`, normalised as in training (no augmentation), in that order."""
    _check_int("batch size", batch_size, 1)
    available = len(data.train.labels)
    index = list(indices)
    if not index:
        raise HessianError("the sample is empty; give at least one training image index")
    bad = [i for i in index if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < available]
    if bad:
        raise HessianError(
            f"image index {bad[0]!r} is not allowed; must be an integer in [0, {available - 1}] "
            f"(the training split has {available} images)"
        )
    if len(set(index)) != len(index):
        repeated = next(i for i in index if index.count(i) > 1)
        raise HessianError(f"image index {repeated} appears more than once; the sample is drawn without replacement")
    positions = torch.tensor(index, dtype=torch.long)
    split = Split(data.train.images[positions], data.train.labels[positions])
    batches = Batches(split, batch_size, data.mean, data.std, torch.device(device), channels_last=channels_last)
    return list(batches)


def _dot(a: Vector, b: Vector) -> float:
    return float(sum(torch.sum(x.double() * y.double()) for x, y in zip(a, b, strict=True)))


def _norm(a: Vector) -> float:
    return math.sqrt(_dot(a, a))


def _scaled(a: Vector, factor: float) -> Vector:
    return [x * factor for x in a]


def _project(v: Vector, basis: Sequence[Vector]) -> Vector:
    for u in basis:  # modified Gram-Schmidt against orthonormal eigenvectors
        c = _dot(v, u)
        v = [x - c * y for x, y in zip(v, u, strict=True)]
    return v


def _trainable(model: nn.Module, mask: Mask | None) -> tuple[list[str], list[nn.Parameter], list[torch.Tensor | None]]:
    named = dict(model.named_parameters())
    names = [name for name, p in named.items() if p.requires_grad]
    mask = mask or {}
    unknown = sorted(set(mask) - set(named))
    if unknown:
        raise HessianError(f"mask names {unknown[0]!r}, which is not a parameter of the model")
    frozen = sorted(set(mask) - set(names))
    if frozen:
        raise HessianError(
            f"mask names {frozen[0]!r}, which does not require grad; only trainable parameters are in the Hessian"
        )
    keeps: list[torch.Tensor | None] = []
    for name in names:
        param = named[name]
        if name not in mask:
            keeps.append(None)
            continue
        keep = mask[name]
        if keep.shape != param.shape:
            raise HessianError(
                f"mask {name!r} has shape {tuple(keep.shape)}, the model's parameter "
                f"{tuple(param.shape)}: the mask belongs to another model"
            )
        keep = keep.to(device=param.device, dtype=torch.bool)
        if bool((param.detach()[~keep] != 0).any()):
            raise HessianError(
                f"parameter {name!r} is nonzero where the mask prunes it; apply the mask to the "
                "weights first (lth.masks.MaskEnforcer(model, mask).apply_to_weights())"
            )
        keeps.append(keep)
    return names, [named[name] for name in names], keeps


def _masked(v: Vector, keeps: Sequence[torch.Tensor | None]) -> Vector:
    # torch.where, not a multiply: pruned coordinates are exactly 0 even if a product is not finite.
    return [
        x if keep is None else torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device))
        for x, keep in zip(v, keeps, strict=True)
    ]


def _hvp_fn(
    model: nn.Module, params: Sequence[nn.Parameter], batches: Sequence[Batch], keeps: Sequence[torch.Tensor | None]
) -> Callable[[Vector], Vector]:
    """v -> P H P v. Each product differentiates the batch gradients g once more: autograd.grad of
    g with grad_outputs v is v^T H = (H v)^T. The gradients and their graph depend only on the
    weights, which power iteration never changes: a sample of one batch (the default: 200 images,
    batches of 500) keeps them, so every product after the first is one backward pass through that
    graph. Keeping it costs no more memory than building it, which every product does anyway; a
    sample of several batches rebuilds each batch's graph every product instead of holding all."""
    total = sum(len(labels) for _, labels in batches)
    keep = len(batches) == 1
    kept: dict[int, tuple[torch.Tensor | None, ...]] = {}

    def gradients(index: int, inputs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        if index not in kept:
            with native_second_derivatives(model):
                loss = F.cross_entropy(model(inputs).float(), labels)
            grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
            if not keep:
                return grads
            kept[index] = grads
        return kept[index]

    def hvp(v: Vector) -> Vector:
        result = [torch.zeros_like(p) for p in params]
        for index, (inputs, labels) in enumerate(batches):
            grads = gradients(index, inputs, labels)
            pairs = [(g, x) for g, x in zip(grads, v, strict=True) if g is not None and g.requires_grad]
            if not pairs:
                continue  # the loss does not depend on v's coordinates to second order: H_b v = 0
            products = torch.autograd.grad(
                [g for g, _ in pairs], params, [x for _, x in pairs], retain_graph=keep, allow_unused=True
            )
            weight = len(labels) / total
            for acc, product in zip(result, products, strict=True):
                if product is not None:
                    acc.add_(product.detach(), alpha=weight)
        return _masked(result, keeps)

    return hvp


def _power_iteration(
    hvp: Callable[[Vector], Vector],
    start: Vector,
    keeps: Sequence[torch.Tensor | None],
    basis: Sequence[Vector],
    tol: float,
    max_iter: int,
) -> tuple[float, Vector, int, bool, float]:
    v = _project(_masked(start, keeps), basis)
    norm = _norm(v)
    if norm == 0:  # no kept coordinate left to move (all pruned, or k exceeds them)
        return 0.0, v, 0, True, 0.0
    v = _scaled(v, 1 / norm)
    eigenvalue, previous = 0.0, None
    for iteration in range(1, max_iter + 1):
        w = _project(hvp(v), basis)
        eigenvalue = _dot(v, w)
        norm = _norm(w)
        if not math.isfinite(norm) or not math.isfinite(eigenvalue):
            raise HessianError(
                f"the Hessian-vector product is not finite (norm {norm}) at iteration {iteration}; "
                "the loss or the weights are not finite"
            )
        if norm == 0:  # v is in the null space: the operator is 0 on the span left
            return 0.0, v, iteration, True, 0.0
        residual = _norm([x - eigenvalue * y for x, y in zip(w, v, strict=True)]) / abs(eigenvalue)
        v = _scaled(w, 1 / norm)
        if previous is not None and abs(eigenvalue - previous) <= tol * abs(eigenvalue):
            return eigenvalue, v, iteration, True, residual
        previous = eigenvalue
    return eigenvalue, v, max_iter, False, residual


def top_eigen(
    model: nn.Module,
    batches: Sequence[Batch],
    mask: Mask | None = None,
    *,
    k: int = 1,
    tol: float = PowerIterationSettings.tol,
    max_iter: int = PowerIterationSettings.max_iter,
    seed: int = 0,
    trace_samples: int = 0,
) -> HessianResult:
    """The top-k eigenpairs (by magnitude) of the masked Hessian of the mean cross-entropy over
    `batches` (already normalised (inputs, labels) pairs on the model's device; see the module
    docstring). It runs on a copy of the model in eval mode (`_working_copy`), so nothing of the
    model changes: weights, BatchNorm statistics, training flag, memory format."""
    _check_settings(k, tol, max_iter, trace_samples)
    if not batches or sum(len(labels) for _, labels in batches) == 0:
        raise HessianError("the sample is empty; give at least one batch of images")
    model, batches = _working_copy(model, batches)
    names, params, keeps = _trainable(model, mask)
    if not params:
        raise HessianError("the model has no trainable parameters (none requires grad)")
    started = time.perf_counter()
    hvp = _hvp_fn(model, params, batches, keeps)
    generator = torch.Generator().manual_seed(seed)
    eigenvalues: list[float] = []
    iterations: list[int] = []
    converged: list[bool] = []
    residuals: list[float] = []
    found: list[Vector] = []
    for _ in range(k):
        start = [torch.randn(p.shape, generator=generator, dtype=torch.float32).to(p.device, p.dtype) for p in params]
        value, vector, used, done, residual = _power_iteration(hvp, start, keeps, found, tol, max_iter)
        eigenvalues.append(value)
        residuals.append(residual)
        iterations.append(used)
        converged.append(done)
        found.append(vector)
    trace, trace_error = None, None
    if trace_samples:
        trace, trace_error = _hutchinson(hvp, params, keeps, trace_samples, seed + 1)
    seconds = time.perf_counter() - started
    vectors = [{name: x.detach().contiguous() for name, x in zip(names, vector, strict=True)} for vector in found]
    return HessianResult(
        eigenvalues, iterations, converged, residuals, vectors, seconds, None, trace, trace_error, trace_samples
    )


def _working_copy(model: nn.Module, batches: Sequence[Batch]) -> tuple[nn.Module, list[Batch]]:
    """A deep copy of `model` in eval mode, and `batches` to feed it. The copy is channels_last, as
    `lth train` trains, unless its convolutions would crash torch's CPU backward in that format
    (`lth.train.channels_last_risks`): a Hessian-vector product costs 1.06x (width 64) to 1.2x
    (width 16) as much in NCHW on the CPU. Whatever format the caller's model is in, the copy is the
    same, so the numbers are."""
    copied = copy.deepcopy(model).eval()
    device = next(copied.parameters(), torch.empty(0)).device
    if device.type != "cpu" or not channels_last_risks(copied):
        copied = copied.to(memory_format=torch.channels_last)  # touches 4-D tensors only
        batches = [
            (inputs.contiguous(memory_format=torch.channels_last) if inputs.dim() == 4 else inputs, labels)
            for inputs, labels in batches
        ]
    return copied, list(batches)


def _check_settings(k: int, tol: float, max_iter: int, trace_samples: int = 0) -> None:
    _check_int("k", k, 1, MAX_K)
    _check_int("max_iter", max_iter, 1)
    _check_int("trace_samples", trace_samples, 0)
    if not (isinstance(tol, (int, float)) and not isinstance(tol, bool) and math.isfinite(tol) and tol > 0):
        raise HessianError(f"tol: {tol!r} is not allowed; must be a finite number > 0")


def _hutchinson(
    hvp: Callable[[Vector], Vector],
    params: Sequence[nn.Parameter],
    keeps: Sequence[torch.Tensor | None],
    samples: int,
    seed: int,
) -> tuple[float, float | None]:
    generator = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(samples):
        z = [(torch.randint(0, 2, p.shape, generator=generator).to(p.device, p.dtype) * 2 - 1) for p in params]
        z = _masked(z, keeps)
        values.append(_dot(z, hvp(z)))
    mean = sum(values) / samples
    if samples < 2:
        return mean, None
    variance = sum((x - mean) ** 2 for x in values) / (samples - 1)
    return mean, math.sqrt(variance / samples)


def hessian_eigen(
    model: nn.Module,
    data: Data,
    mask: Mask | None = None,
    *,
    size: int | None = PowerIterationSettings.sample,
    sample_seed: int = 0,
    indices: Sequence[int] | None = None,
    k: int = 1,
    tol: float = PowerIterationSettings.tol,
    max_iter: int = PowerIterationSettings.max_iter,
    seed: int = 0,
    trace_samples: int = 0,
    batch_size: int = 500,
    device: torch.device | str | None = None,
) -> HessianResult:
    """`top_eigen` on training images of `data`: the given `indices`, else a seeded sample of
    `size` (`sample_indices(N, size, sample_seed)`), else (`size=None`) the whole training split.
    The result records the indices used. `device` moves the model there (default: where it is)."""
    if device is not None:
        model.to(torch.device(device))
    first = next(iter(model.parameters()), None)
    where = first.device if first is not None else torch.device("cpu")
    available = len(data.train.labels)
    if indices is not None:
        chosen = list(indices)
    elif size is None:
        chosen = list(range(available))
    else:
        chosen = sample_indices(available, size, sample_seed)
    batches = hessian_batches(data, chosen, batch_size=batch_size, device=where)
    result = top_eigen(model, batches, mask, k=k, tol=tol, max_iter=max_iter, seed=seed, trace_samples=trace_samples)
    return replace(result, indices=chosen)


class HessianTracker:
    """Epoch-end callback (`lth.train.EpochCallback`) of `lth train --track hessian`: the top
    eigenvalue of the masked Hessian after every epoch (paper Figure A12).

    It measures the quantity `lth analyze hessian` measures on a checkpoint, with the same settings
    and the same code (`hessian_eigen`'s: the sample, batches of 500, start vector, stopping rule):
    on the CPU with the same threads, the last epoch's value equals that command's on the run's
    final.pt bit for bit.

    The sample (`sample_indices(N_train, sample, sample_seed)`) is drawn when the tracker is made, so
    a sample larger than the training split fails before training starts; its batches are built at
    the first epoch, on the training device, and reused every epoch. Training is not perturbed:
    `top_eigen` works on a deep copy of the model (the trained model's weights, BatchNorm running
    statistics, train/eval flag and memory format are never touched) and draws its start vector
    from its own seeded generator, never from the global RNG.

    Returns the columns hessian_eigenvalue, hessian_iterations, hessian_converged (1/0),
    hessian_residual and hessian_seconds: the tracker's wall time in that epoch, which the epoch's
    own `seconds` column does not include.
    """

    def __init__(
        self,
        data: Data,
        mask: Mask | None = None,
        *,
        sample: int = PowerIterationSettings.sample,
        sample_seed: int = 0,
        tol: float = PowerIterationSettings.tol,
        max_iter: int = PowerIterationSettings.max_iter,
        batch_size: int = 500,
    ) -> None:
        _check_settings(1, tol, max_iter)
        _check_int("batch size", batch_size, 1)
        self.indices = sample_indices(len(data.train.labels), sample, sample_seed)
        self.data, self.mask, self.tol, self.max_iter, self.batch_size = data, mask, tol, max_iter, batch_size
        self._batches: list[Batch] | None = None

    def __call__(self, context: EpochContext) -> dict[str, float]:
        started = time.perf_counter()
        if self._batches is None:
            self._batches = hessian_batches(self.data, self.indices, batch_size=self.batch_size, device=context.device)
        mask = context.mask if context.mask is not None else self.mask  # sparse training: the mask now
        result = top_eigen(context.model, self._batches, mask, tol=self.tol, max_iter=self.max_iter)
        seconds = time.perf_counter() - started
        epoch_seconds = context.row.get("seconds")
        share = f", {100 * seconds / epoch_seconds:.0f}% of the epoch's {epoch_seconds:.1f}s" if epoch_seconds else ""
        log.info(
            "epoch %d: top Hessian eigenvalue %.6g (%d iterations, %s) in %.1fs%s",
            context.epoch,
            result.eigenvalue,
            result.iterations[0],
            "converged" if result.converged[0] else f"not converged within {self.max_iter}",
            seconds,
            share,
        )
        return {
            "hessian_eigenvalue": result.eigenvalue,
            "hessian_iterations": result.iterations[0],
            "hessian_converged": int(result.converged[0]),
            "hessian_residual": result.residuals[0],
            "hessian_seconds": seconds,
        }
