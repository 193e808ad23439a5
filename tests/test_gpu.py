"""The GPU fast path: masked bf16 steps on CUDA agree with the CPU, and an epoch never waits for the
host. These tests need a CUDA device and are skipped without one; bench/gpu.py's test runs anywhere."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Callable
from contextlib import nullcontext

import pytest
import torch
from conftest import REPO

from lth.checkpoints import init_model
from lth.data import Split
from lth.data.batches import Batches
from lth.hparams import ModelHparams, PruneHparams, TrainHparams
from lth.losses import make_loss
from lth.masks import Mask, MaskEnforcer, dense_mask, prunable_names, prune
from lth.train import train_epoch, train_epoch_sums

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="CUDA not available: the GPU fast path is tested on a CUDA device")
CPU = torch.device("cpu")
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
MODEL = ModelHparams(name="resnet18", width=8)  # >= 8 channels: channels_last is safe on the CPU too


def cifar_like(n: int, seed: int = 0) -> Split:
    generator = torch.Generator().manual_seed(seed)
    return Split(
        torch.randint(0, 256, (n, 3, 32, 32), generator=generator, dtype=torch.uint8),
        torch.randint(0, 10, (n,), generator=generator),
    )


def masked_model() -> tuple[torch.nn.Module, Mask]:
    model = init_model(MODEL, 10, seed=0)
    return model, prune(
        model.state_dict(), dense_mask(model.state_dict(), prunable_names(model)), PruneHparams(rate=0.5)
    )


def bf16() -> torch.autocast:
    return torch.autocast("cuda", dtype=torch.bfloat16)


def one_masked_step(
    model: torch.nn.Module, mask: Mask, device: torch.device, autocast: Callable, split: Split
) -> tuple[float, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """One step of `train_epoch` (a single batch, augmented) on a copy of `model`: its loss, and the
    weights before and after it, on the CPU."""
    model = copy.deepcopy(model).to(device=device, memory_format=torch.channels_last)
    enforcer = MaskEnforcer(model, mask)
    enforcer.apply_to_weights()
    before = {name: p.detach().cpu().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    batches = Batches(
        split,
        len(split.labels),
        MEAN,
        STD,
        device,
        generator=torch.Generator().manual_seed(0),
        flip=True,
        crop_padding=4,
    )
    loss, _ = train_epoch(model, batches, optimizer, enforcer, make_loss(TrainHparams()), autocast)
    return loss, before, {name: p.detach().cpu() for name, p in model.named_parameters()}


def relative_error(update: dict[str, torch.Tensor], reference: dict[str, torch.Tensor], names) -> float:
    a, b = (torch.cat([d[name].flatten() for name in names]) for d in (update, reference))
    return float((a - b).norm() / b.norm())


@needs_cuda
def test_a_masked_gpu_step_matches_the_cpu_and_keeps_pruned_weights_zero():
    """The same step (same weights, same augmented batch) on the CPU in fp32 and on the GPU.

    A random network's update at init is ill-conditioned (per-sample gradients nearly cancel), so
    tolerances come from the CPU, measured: another convolution algorithm in fp32 (channels_last
    vs NCHW) moves the update by 0.9% (relative norm); bf16 autocast by 30%, cosine 0.95-0.96 with
    the fp32 update, 0.9% at the classifier; another augmentation draw gives cosine 0.15-0.18."""
    model, mask = masked_model()
    split = cifar_like(64)
    cpu_loss, start, cpu_after = one_masked_step(model, mask, CPU, nullcontext, split)
    cuda = torch.device("cuda")
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        fp32_loss, fp32_start, fp32_after = one_masked_step(model, mask, cuda, nullcontext, split)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    bf16_loss, bf16_start, bf16_after = one_masked_step(model, mask, cuda, bf16, split)

    for after in (fp32_after, bf16_after):
        for name, keep in mask.items():
            assert torch.count_nonzero(after[name][~keep]) == 0, f"a pruned weight of {name} moved on the GPU"
    names = list(start)
    assert all(torch.equal(start[name], s[name]) for s in (fp32_start, bf16_start) for name in names)
    cpu_update = {name: cpu_after[name] - start[name] for name in names}
    fp32_update = {name: fp32_after[name] - start[name] for name in names}
    bf16_update = {name: bf16_after[name] - start[name] for name in names}
    assert fp32_loss == pytest.approx(cpu_loss, rel=1e-4)
    assert relative_error(fp32_update, cpu_update, names) < 0.05
    assert bf16_loss == pytest.approx(cpu_loss, rel=1e-2)
    assert relative_error(bf16_update, cpu_update, ["fc.weight", "fc.bias"]) < 0.05
    flat_bf16, flat_cpu = (torch.cat([u[name].flatten() for name in names]) for u in (bf16_update, cpu_update))
    assert torch.nn.functional.cosine_similarity(flat_bf16, flat_cpu, dim=0) > 0.8


@needs_cuda
def test_a_gpu_epoch_never_waits_for_the_host():
    """A whole epoch (augmented, masked, bf16, a last partial batch) queues its work without one
    host-device synchronisation: torch raises on any under sync debug mode "error". The warm-up
    epoch before it lets cuDNN autotune and the allocator and momentum buffers settle, as every
    epoch after a run's first does."""
    model, mask = masked_model()
    device = torch.device("cuda")
    model = model.to(device=device, memory_format=torch.channels_last)
    enforcer = MaskEnforcer(model, mask)
    enforcer.apply_to_weights()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    batches = Batches(
        cifar_like(300), 64, MEAN, STD, device, generator=torch.Generator().manual_seed(0), flip=True, crop_padding=4
    )
    loss_fn = make_loss(TrainHparams())
    benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True  # as lth.train.train sets it on a GPU
    try:
        train_epoch(model, batches, optimizer, enforcer, loss_fn, bf16)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            loss_sum, correct = train_epoch_sums(model, batches, optimizer, enforcer, loss_fn, bf16)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    finally:
        torch.backends.cudnn.benchmark = benchmark
    assert torch.isfinite(loss_sum) and 0 <= int(correct) <= 300
    params = dict(model.named_parameters())
    assert all(torch.count_nonzero(params[name].detach()[~keep.to(device)]) == 0 for name, keep in mask.items())


@needs_cuda
def test_gpu_batches_are_the_cpu_batches():
    """The random draws come from the CPU generator and reach the GPU in one copy per epoch: the
    same seed gives the same batches on either device, epoch after epoch."""
    split = cifar_like(100)

    def passes(device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
        batches = Batches(
            split, 32, MEAN, STD, device, generator=torch.Generator().manual_seed(4), flip=True, crop_padding=4
        )
        return [(x.cpu(), y.cpu()) for _ in range(2) for x, y in batches]

    for (x, y), (x_cpu, y_cpu) in zip(passes(torch.device("cuda")), passes(CPU), strict=True):
        assert torch.equal(y, y_cpu)
        torch.testing.assert_close(x, x_cpu, rtol=0, atol=1e-5)  # same pixels; normalisation to float rounding


def test_gpu_benchmark_runs():
    """bench/gpu.py measures on CUDA (tiny sizes here), and without CUDA says so and exits cleanly;
    its code also runs on the CPU (`--device cpu`), so it is checked on machines without a GPU."""
    script = [sys.executable, str(REPO / "bench" / "gpu.py")]
    tiny = [
        "--width",
        "8",
        "--images",
        "100",
        "--batch-sizes",
        "64",
        "--peer-workers",
        "0",
        "--repeats",
        "1",
        "--threads",
        "1",
    ]
    if not CUDA:
        result = subprocess.run(script, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "CUDA not available: nothing measured"
        tiny += ["--device", "cpu", "--precision", "fp32"]
    result = subprocess.run(script + tiny, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "ours / ceiling" in result.stdout and "peer time / ours" in result.stdout and "(min" in result.stdout
