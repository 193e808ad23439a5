"""Top Hessian eigenvalue by power iteration, checked against exact Hessians from torch.func."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, hessian

from lth.analysis.hessian import HessianError, hessian_batches, hessian_eigen, sample_indices, top_eigen
from lth.errors import LthError
from lth.masks import MaskEnforcer


def exact_hessian(model: nn.Module, batches, names: list[str]) -> torch.Tensor:
    """The Hessian of the batch-size-weighted mean cross-entropy w.r.t. `names`, flattened in that order."""
    params = dict(model.named_parameters())
    shapes = [params[name].shape for name in names]
    sizes = [params[name].numel() for name in names]
    total = sum(len(labels) for _, labels in batches)

    def loss(flat: torch.Tensor) -> torch.Tensor:
        pieces = dict(zip(names, (x.view(s) for x, s in zip(flat.split(sizes), shapes))))
        return sum(
            F.cross_entropy(functional_call(model, pieces, (inputs,)), labels) * len(labels) / total
            for inputs, labels in batches
        )

    flat = torch.cat([params[name].detach().reshape(-1) for name in names])
    model.eval()
    return hessian(loss)(flat).double()


def largest_magnitude(matrix: torch.Tensor, count: int = 1) -> list[float]:
    values = torch.linalg.eigvalsh((matrix + matrix.T) / 2)
    return [float(x) for x in values[values.abs().argsort(descending=True)][:count]]


def tiny_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=2, bias=False),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16, 10),
    )


@pytest.fixture
def masked_cnn(digits_data):
    torch.manual_seed(0)
    model = tiny_cnn()
    with torch.no_grad():  # non-trivial BatchNorm running statistics
        model.train()
        for inputs, _ in hessian_batches(digits_data, list(range(180)), batch_size=90):
            model(inputs)
    generator = torch.Generator().manual_seed(1)
    mask = {
        name: torch.rand(p.shape, generator=generator) < 0.5
        for name, p in model.named_parameters()
        if name in ("0.weight", "5.weight")
    }
    MaskEnforcer(model, mask).apply_to_weights()
    return model, mask


def test_linear_classifier_matches_exact_hessian(one_thread):
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    inputs, labels = torch.randn(12, 4), torch.randint(0, 3, (12,))
    batches = [(inputs[:7], labels[:7]), (inputs[7:], labels[7:])]
    names = [name for name, _ in model.named_parameters()]
    exact = largest_magnitude(exact_hessian(model, batches, names), 2)
    result = top_eigen(model, batches)
    assert result.converged == [True] and 2 <= result.iterations[0] <= 100
    assert result.eigenvalue == pytest.approx(exact[0], rel=0.01)
    assert set(result.eigenvector) == set(names)
    two = top_eigen(model, batches, k=2, tol=1e-6, max_iter=500)
    assert two.eigenvalues == pytest.approx(exact, rel=0.01)
    # The eigenvectors are orthonormal.
    flat = [torch.cat([v[name].reshape(-1) for name in names]) for v in two.eigenvectors]
    assert float(flat[0] @ flat[1]) == pytest.approx(0, abs=1e-4)
    assert float(flat[0].norm()) == pytest.approx(1, abs=1e-5)


def test_masked_cnn_matches_principal_submatrix(digits_data, masked_cnn, one_thread):
    model, mask = masked_cnn
    result = hessian_eigen(model, digits_data, mask, size=40, sample_seed=3, trace_samples=200)
    assert result.indices == sample_indices(180, 40, 3) and len(result.indices) == 40
    assert result.all_converged and result.seconds > 0
    batches = hessian_batches(digits_data, result.indices)
    names = [name for name, _ in model.named_parameters()]
    keep = torch.cat(
        [
            mask[name].reshape(-1) if name in mask else torch.ones(p.numel(), dtype=torch.bool)
            for name, p in model.named_parameters()
        ]
    )
    full = exact_hessian(model, batches, names)
    assert 150 < full.shape[0] < 500 and 0 < int((~keep).sum())
    sub = full[keep][:, keep]
    assert result.eigenvalue == pytest.approx(largest_magnitude(sub)[0], rel=0.02)
    # The residual bounds the distance to the nearest eigenvalue of the principal submatrix.
    spectrum = torch.linalg.eigvalsh(sub)
    nearest = float((spectrum - result.eigenvalue).abs().min())
    assert nearest <= result.residuals[0] * abs(result.eigenvalue) + 1e-6 and result.residuals[0] < 0.1
    assert result.trace == pytest.approx(float(sub.trace()), abs=4 * result.trace_std_error)
    # Pruned coordinates of the eigenvector are exactly zero; kept ones are not all zero.
    for name, keep_tensor in mask.items():
        assert torch.all(result.eigenvector[name][~keep_tensor] == 0)
        assert torch.any(result.eigenvector[name][keep_tensor] != 0)


def test_indices_reproduce_the_value(digits_data, masked_cnn, one_thread):
    model, mask = masked_cnn
    model.train()
    first = hessian_eigen(model, digits_data, mask, size=30, sample_seed=5)
    assert model.training  # restored
    again = hessian_eigen(model, digits_data, mask, indices=first.indices, batch_size=7)
    assert again.indices == first.indices
    assert again.eigenvalue == pytest.approx(first.eigenvalue, rel=1e-4)
    same = hessian_eigen(model, digits_data, mask, indices=first.indices)
    assert same.eigenvalue == first.eigenvalue and same.iterations == first.iterations


def test_budget_exhausted_is_reported(digits_data, masked_cnn, one_thread):
    model, mask = masked_cnn
    result = hessian_eigen(model, digits_data, mask, size=20, max_iter=1)
    assert result.converged == [False] and result.iterations == [1] and not result.all_converged
    record = result.to_dict()
    assert record["converged"] == [False] and "eigenvectors" not in record


def test_full_training_set_equals_whole_sample(digits_data, masked_cnn, one_thread):
    model, mask = masked_cnn
    full = hessian_eigen(model, digits_data, mask, size=None, batch_size=64)  # 3 batches, weighted
    whole = hessian_eigen(model, digits_data, mask, size=180, batch_size=500)  # one batch
    assert full.indices == whole.indices == list(range(180))
    assert full.eigenvalue == pytest.approx(whole.eigenvalue, rel=1e-4)


def test_user_errors_name_the_value(digits_data, masked_cnn):
    model, mask = masked_cnn
    with pytest.raises(HessianError, match=r"sample size 181 .* only 180 images"):
        sample_indices(180, 181, 0)
    assert issubclass(HessianError, LthError)
    batches = hessian_batches(digits_data, [0, 1])
    with pytest.raises(HessianError, match=r"k: 6 is not allowed; must be an integer in \[1, 5\]"):
        top_eigen(model, batches, mask, k=6)
    with pytest.raises(HessianError, match=r"max_iter: 0"):
        top_eigen(model, batches, mask, max_iter=0)
    with pytest.raises(HessianError, match=r"tol: -1"):
        top_eigen(model, batches, mask, tol=-1)
    with pytest.raises(HessianError, match=r"image index 180 .* \[0, 179\]"):
        hessian_batches(digits_data, [0, 180])
    with pytest.raises(HessianError, match="more than once"):
        hessian_batches(digits_data, [3, 3])
    with pytest.raises(HessianError, match="'nope'"):
        top_eigen(model, batches, {"nope": torch.ones(1, dtype=torch.bool)})
    with pytest.raises(HessianError, match="shape"):
        top_eigen(model, batches, {"5.weight": torch.ones(3, dtype=torch.bool)})
    dense = tiny_cnn()
    with pytest.raises(HessianError, match="nonzero where the mask prunes"):
        top_eigen(dense, batches, mask)


def test_sample_indices_seeded_and_sorted():
    a = sample_indices(1000, 200, 7)
    assert a == sample_indices(1000, 200, 7) and a == sorted(a) and len(set(a)) == 200
    assert a != sample_indices(1000, 200, 8)
    assert a == torch.randperm(1000, generator=torch.Generator().manual_seed(7))[:200].sort().values.tolist()


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("sizes", [(5, 3), (8,)])
def test_native_second_derivatives_match_autograd(memory_format, sizes, one_thread):
    """The Hessian-vector product's own second derivatives of convolutions (stride, padding, dilation,
    groups, bias) and eval-mode BatchNorm (affine or not) equal autograd's general double backward,
    whether each product rebuilds the batches' graphs (several batches) or reuses one (one batch)."""
    from lth.analysis.hessian import _hvp_fn

    torch.manual_seed(0)
    # 8 channels into the strided 1x1 conv: fewer crash torch's channels-last CPU backward.
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=True),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=2),
        nn.BatchNorm2d(8, affine=False),
        nn.SiLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),
        nn.Conv2d(8, 6, 1, stride=2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 10),
    )
    with torch.no_grad():  # non-trivial running statistics
        model.train()
        model(torch.randn(32, 3, 8, 8))
    model = model.to(memory_format=memory_format).eval()
    batches = [
        (torch.randn(n, 3, 8, 8).contiguous(memory_format=memory_format), torch.randint(0, 10, (n,))) for n in sizes
    ]
    params = list(model.parameters())
    generator = torch.Generator().manual_seed(2)
    hvp = _hvp_fn(model, params, batches, [None] * len(params))
    for _ in range(2):  # a second vector: one batch's kept graph is reused
        v = [torch.randn(p.shape, generator=generator) for p in params]
        fast = hvp(v)
        assert all("forward" not in vars(module) for module in model.modules())  # the modules are restored
        expected = [torch.zeros_like(p) for p in params]
        for inputs, labels in batches:
            grads = torch.autograd.grad(F.cross_entropy(model(inputs), labels), params, create_graph=True)
            products = torch.autograd.grad(sum(torch.sum(g * x) for g, x in zip(grads, v)), params)
            for acc, product in zip(expected, products):
                acc.add_(product, alpha=len(inputs) / 8)
        scale = max(float(e.abs().max()) for e in expected)
        for got, want in zip(fast, expected):
            assert torch.allclose(got, want, rtol=1e-4, atol=1e-5 * scale)
