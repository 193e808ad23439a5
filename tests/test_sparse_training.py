"""Sparse training (lth/sparse/updaters.py): GMP, SET and RigL driven step by step through the real
training loop (`train_epoch_sums` with `DynamicMask`, SGD with momentum and weight decay), RigL's
growth on a hand-made layer, the layer counts, and whole runs through `lth.train.train` (resume,
training FLOPs, determinism).

Every expectation (schedules, counts, which weights are dropped and grown) is computed here from the
documented rules, not by calling the code under test."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from conftest import read_metrics, state_dicts_equal
from torch import nn

from lth.checkpoints import build_model, init_model, load_checkpoint
from lth.errors import LthError
from lth.flops import layer_flops
from lth.hparams import ModelHparams, PruneHparams, TrainHparams
from lth.io import read_json
from lth.masks import MaskEnforcer, dense_mask, prunable_names, prune
from lth.sparse.settings import ALGORITHMS
from lth.sparse.updaters import DynamicMask, Rigl, make_updater
from lth.train import RunOptions, train, train_epoch_sums

pytestmark = pytest.mark.usefixtures("one_thread")

# --- a tiny network driven through the real training loop --------------------------------------

IMAGE = (3, 4, 4)
STEPS = 30  # optimizer steps of the driven runs (T)
# Three prunable weights (with include_linear): 108 + 288 + 1280.
LAYERS = {"0.weight": (4, 3, 3, 3), "2.weight": (8, 4, 3, 3), "5.weight": (10, 128)}


def tiny_model(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 8, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 10),
    )


class FixedBatches:
    """What `train_epoch_sums` iterates: `count` random batches of varying size on the CPU."""

    device = torch.device("cpu")

    def __init__(self, count: int, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.sizes = [5 + step % 4 for step in range(count)]
        self.items = [
            (torch.randn(n, *IMAGE, generator=generator), torch.randint(0, 10, (n,), generator=generator))
            for n in self.sizes
        ]

    def __iter__(self):
        return iter(self.items)


def _clone(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in tensors.items()}


@dataclass
class Trace:
    """Everything seen at every step of a driven run (step t = index + 1)."""

    names: list[str]
    images: list[int]
    flops: Any  # lth.flops.LayerFlops
    updater: Any
    dynamic: DynamicMask
    before: list[dict[str, torch.Tensor]] = field(default_factory=list)  # all parameters, before the step
    grads: list[dict[str, torch.Tensor]] = field(default_factory=list)  # dense |grad|, before the enforcer
    stepped: list[bool] = field(default_factory=list)  # whether the optimizer stepped
    mask_before: list[dict[str, torch.Tensor]] = field(default_factory=list)
    after: list[dict[str, torch.Tensor]] = field(default_factory=list)  # all parameters, after the step
    mask: list[dict[str, torch.Tensor]] = field(default_factory=list)  # in force after the step
    momentum: list[dict[str, torch.Tensor]] = field(default_factory=list)  # masked weights' buffers
    updates: list[dict[str, Any]] = field(default_factory=list)  # step, weights, mask, new
    grows: list[dict[str, Any]] = field(default_factory=list)  # step, name, candidates, count


def drive(algorithm: str, settings: dict[str, Any], steps: int = STEPS, seed: int = 0) -> Trace:
    """Train the tiny model for `steps` optimizer steps (one pass of `train_epoch_sums`) under the
    algorithm, recording the state before and after every step and every call to the updater."""
    hparams = ALGORITHMS[algorithm].from_dict({"include_linear": True, **settings})
    model = tiny_model(seed)
    names = prunable_names(model, include_linear=True)
    assert names == list(LAYERS)
    updater = make_updater(hparams, model, names, steps, seed)
    mask = updater.initial_mask(dict(model.named_parameters()))
    enforcer = MaskEnforcer(model, mask)
    enforcer.apply_to_weights()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-3)
    flops = layer_flops(model, IMAGE)
    dynamic = DynamicMask(updater, model, enforcer, optimizer, mask, flops)
    batches = FixedBatches(steps, seed)
    trace = Trace(names, batches.sizes, flops, updater, dynamic)
    params = dict(model.named_parameters())

    original_backward, original_step, original_update = dynamic.after_backward, dynamic.after_step, updater.update

    def after_backward() -> bool:
        trace.before.append(_clone(params))
        trace.grads.append({name: params[name].grad.detach().abs().clone() for name in names})
        trace.mask_before.append(_clone(dynamic.mask))
        stepped = original_backward()
        trace.stepped.append(stepped)
        return stepped

    def after_step(images: int) -> None:
        original_step(images)
        trace.after.append(_clone(params))
        trace.mask.append(_clone(dynamic.mask))
        trace.momentum.append(
            {
                name: optimizer.state[params[name]]["momentum_buffer"].clone()
                for name in names
                if params[name] in optimizer.state
            }
        )

    def update(step, weights, old, gradients):
        record = {"step": step, "weights": _clone(weights), "mask": _clone(old)}
        new = original_update(step, weights, old, gradients)
        trace.updates.append({**record, "new": _clone(new)})
        return new

    dynamic.after_backward, dynamic.after_step, updater.update = after_backward, after_step, update
    if hasattr(updater, "grow"):
        original_grow = updater.grow

        def grow(name, candidates, count, gradients):
            trace.grows.append({"step": dynamic.step, "name": name, "candidates": candidates.clone(), "count": count})
            return original_grow(name, candidates, count, gradients)

        updater.grow = grow

    train_epoch_sums(
        model,
        batches,
        optimizer,
        enforcer,
        lambda outputs, labels, inputs: F.cross_entropy(outputs, labels),
        dynamic=dynamic,
    )
    assert len(trace.after) == steps and dynamic.step == steps
    return trace


def check_inactive_zero(trace: Trace) -> None:
    """After every step, every weight outside the mask in force and its momentum are exactly zero,
    and the enforcer enforces that mask."""
    for index, (after, mask, momentum) in enumerate(zip(trace.after, trace.mask, trace.momentum)):
        for name in trace.names:
            off = ~mask[name]
            assert torch.count_nonzero(after[name][off]) == 0, (index + 1, name)
            assert name in momentum, (index + 1, name)  # SGD's buffers exist after the first step
            assert torch.count_nonzero(momentum[name][off]) == 0, (index + 1, name)
    factors = dict(zip(trace.names, trace.dynamic.enforcer.factors))
    assert all(torch.equal(factors[name].bool(), trace.mask[-1][name]) for name in trace.names)


def kept_by_magnitude(magnitude: torch.Tensor, active: torch.Tensor, count: int) -> torch.Tensor:
    """The `count` largest of `magnitude` among `active` (ties: the earlier position), by a sort."""
    flat, allowed = magnitude.reshape(-1), active.reshape(-1)
    positions = [int(i) for i in allowed.nonzero().squeeze(1)]
    ranked = sorted(positions, key=lambda i: -float(flat[i]))  # stable: earlier first among equals
    keep = torch.zeros_like(allowed)
    keep[ranked[:count]] = True
    return keep.reshape(active.shape)


# --- GMP -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "start", "end", "every", "expected_steps"),
    [
        # t0 = round(0.2 * 30) = 6, n = (round(0.8 * 30) - 6) // 4 = 4: steps 6, 10, 14, 18, 22.
        ("layerwise", 0.2, 0.8, 4, [6, 10, 14, 18, 22]),
        ("global", 0.2, 0.8, 4, [6, 10, 14, 18, 22]),
        # t0 = max(1, round(0)) = 1, n = (15 - 1) // 5 = 2: steps 1, 6, 11.
        ("global", 0.0, 0.5, 5, [1, 6, 11]),
        # t0 = 15, n = (round(16.5) - 15) // 4 = 0: s_f at once, at step 15 only.
        ("layerwise", 0.5, 0.55, 4, [15]),
    ],
)
def test_gmp_prunes_on_schedule_to_the_cubic_counts(scope, start, end, every, expected_steps):
    s_i, s_f = 0.1, 0.8
    settings = {"sparsity": s_f, "initial_sparsity": s_i, "start": start, "end": end, "update_every": every}
    trace = drive("gmp", {**settings, "scope": scope})
    t0 = max(1, round(start * STEPS))
    n = (round(end * STEPS) - t0) // every
    assert [t0 + j * every for j in range(n + 1)] == expected_steps

    def sparsity_at(t: int) -> float:
        return s_f if n == 0 else s_f + (s_i - s_f) * (1 - (t - t0) / (n * every)) ** 3

    assert [u["step"] for u in trace.updates] == expected_steps
    assert [entry["step"] for entry in trace.updater.history] == expected_steps
    sizes = {name: math.prod(shape) for name, shape in LAYERS.items()}
    assert all(keep.all() for keep in trace.mask_before[0].values()), "GMP starts dense"
    for index in range(STEPS):
        t = index + 1
        old, new = trace.mask_before[index], trace.mask[index]
        assert trace.stepped[index], "GMP never skips the optimizer step"
        if t not in expected_steps:
            assert all(torch.equal(old[name], new[name]) for name in trace.names), f"mask changed at step {t}"
            continue
        s_t = sparsity_at(t)
        if scope == "layerwise":
            assert {name: int(new[name].sum()) for name in trace.names} == {
                name: round((1 - s_t) * size) for name, size in sizes.items()
            }, t
        else:
            assert sum(int(keep.sum()) for keep in new.values()) == round((1 - s_t) * sum(sizes.values())), t
        # Only active weights are kept; the pruned ones are the smallest |w| the step produced.
        (update,) = [u for u in trace.updates if u["step"] == t]
        assert all(torch.equal(update["mask"][name], old[name]) for name in trace.names)
        groups = [trace.names] if scope == "global" else [[name] for name in trace.names]
        for group in groups:
            magnitude = torch.cat([update["weights"][name].abs().reshape(-1) for name in group])
            before = torch.cat([old[name].reshape(-1) for name in group])
            kept = torch.cat([new[name].reshape(-1) for name in group])
            pruned = before & ~kept
            assert not (kept & ~before).any(), (t, group)
            if pruned.any() and kept.any():
                assert magnitude[pruned].max() <= magnitude[kept].min(), (t, group)
                assert torch.equal(kept, kept_by_magnitude(magnitude, before, int(kept.sum()))), (t, group)
    assert trace.updater.history[-1]["sparsity"] == pytest.approx(
        1 - sum(round((1 - s_f) * size) for size in sizes.values()) / sum(sizes.values()), abs=1e-3
    )
    check_inactive_zero(trace)
    # The pruned weights were real: the step before each pruning left them nonzero.
    first = trace.updates[0]
    assert all(
        torch.count_nonzero(first["weights"][name][~first["new"][name]]) > 0
        for name in trace.names
        if (~first["new"][name]).any()
    )
    # 3 f_S per image and step, f_S the forward FLOPs of the mask in force during the step.
    expected = sum(images * 3 * trace.flops.forward(mask) for images, mask in zip(trace.images, trace.mask_before))
    assert trace.dynamic.train_flops == pytest.approx(expected, rel=1e-12)
    assert trace.dynamic.train_flops < 3 * trace.flops.dense * sum(trace.images)


# --- SET and RigL ----------------------------------------------------------------------------

# T_end = round(0.69 * 30) = round(20.7) = 21, a multiple of dt: no update at step 21 itself.
DYNAMIC = {"sparsity": 0.7, "update_every": 3, "end": 0.69, "drop_fraction": 0.3}
T_END = 21
DYNAMIC_STEPS = [3, 6, 9, 12, 15, 18]


def drop_fraction(algorithm: str, t: int) -> float:
    alpha = DYNAMIC["drop_fraction"]
    return alpha if algorithm == "set" else alpha / 2 * (1 + math.cos(math.pi * t / T_END))


@pytest.mark.parametrize("algorithm", ["set", "rigl"])
def test_set_and_rigl_drop_and_grow_at_constant_counts(algorithm):
    trace = drive(algorithm, DYNAMIC)
    first, sparse = trace.names[0], trace.names[1:]
    assert round(DYNAMIC["end"] * STEPS) == T_END
    assert [t for t in range(1, STEPS + 1) if t % 3 == 0 and t < T_END] == DYNAMIC_STEPS
    assert [u["step"] for u in trace.updates] == DYNAMIC_STEPS
    assert [entry["step"] for entry in trace.updater.history] == DYNAMIC_STEPS
    assert all(entry["step"] < T_END for entry in trace.updater.history)

    initial = trace.mask_before[0]
    counts = {name: int(keep.sum()) for name, keep in initial.items()}
    sizes = {name: math.prod(shape) for name, shape in LAYERS.items()}
    assert counts[first] == sizes[first], "the first layer is dense by default"
    assert sum(counts.values()) == round(0.3 * sum(sizes.values()))
    assert all(counts[name] < sizes[name] for name in sparse)
    for index in range(STEPS):
        t = index + 1
        old, new = trace.mask_before[index], trace.mask[index]
        assert {name: int(keep.sum()) for name, keep in new.items()} == counts, t
        assert new[first].all(), t
        if t not in DYNAMIC_STEPS:
            assert all(torch.equal(old[name], new[name]) for name in trace.names), f"mask changed at step {t}"
            assert trace.stepped[index], t
    assert all(torch.equal(trace.mask[T_END - 2][name], trace.mask[-1][name]) for name in trace.names)

    new_positions = not_first = 0  # not_first: growths other than the first k candidates in order
    for update in trace.updates:
        t, index = update["step"], update["step"] - 1
        old, new = update["mask"], update["new"]
        assert all(torch.equal(old[name], trace.mask_before[index][name]) for name in trace.names)
        assert all(torch.equal(new[name], trace.mask[index][name]) for name in trace.names)
        assert torch.equal(new[first], old[first])
        fraction = drop_fraction(algorithm, t)
        assert trace.updater.history[DYNAMIC_STEPS.index(t)]["drop_fraction"] == pytest.approx(fraction, rel=1e-12)
        grows = {g["name"]: g for g in trace.grows if g["step"] == t}
        assert set(grows) == set(sparse), t  # the dense first layer neither drops nor grows
        dropped = regrown = 0
        for name in sparse:
            active = int(old[name].sum())
            k = math.floor(fraction * active)
            assert k > 0 or algorithm == "rigl", (t, name)  # RigL's f_t decays to 0.015 by t = 18
            survivors = kept_by_magnitude(update["weights"][name].abs(), old[name], active - k)
            assert grows[name]["count"] == k, (t, name)
            assert torch.equal(grows[name]["candidates"], ~survivors.reshape(-1)), (t, name)
            assert not (survivors & ~new[name]).any(), (t, name)
            grown = new[name] & ~survivors
            assert int(grown.sum()) == k, (t, name)
            if algorithm == "rigl":  # the k largest dense |grad| of the step's batch, among the non-survivors
                expected = kept_by_magnitude(trace.grads[index][name], ~survivors, k)
                assert torch.equal(grown, expected), (t, name)
            first_k = torch.zeros(grown.numel(), dtype=torch.bool)
            first_k[(~survivors).reshape(-1).nonzero().squeeze(1)[:k]] = True
            not_first += not torch.equal(grown.reshape(-1), first_k)
            dropped += k
            regrown += int((grown & old[name]).sum())
            # New positions start at exactly zero, with zero momentum; kept (and regrown) weights keep
            # the value they had at the update; dropped ones are zero.
            fresh = new[name] & ~old[name]
            new_positions += int(fresh.sum())
            after, momentum = trace.after[index][name], trace.momentum[index][name]
            assert torch.count_nonzero(after[fresh]) == 0 and torch.count_nonzero(momentum[fresh]) == 0, (t, name)
            stay = new[name] & old[name]
            assert torch.equal(after[stay], update["weights"][name][stay]), (t, name)
        assert trace.updater.history[DYNAMIC_STEPS.index(t)] == {
            "step": t,
            "drop_fraction": pytest.approx(fraction, rel=1e-12),
            "dropped": dropped,
            "grown": dropped,
            "regrown": regrown,
        }
    assert new_positions > 0, "no update moved the mask: the checks above were vacuous"
    assert not_first >= (len(DYNAMIC_STEPS) * len(sparse) if algorithm == "set" else 1), "SET grows at random"
    check_inactive_zero(trace)

    # RigL's update takes the place of the step's optimizer step: nothing moves but the dropped
    # weights, which become zero. SET and the other RigL steps do step.
    params = list(trace.before[0])
    for index in range(STEPS):
        t = index + 1
        before, after, mask = trace.before[index], trace.after[index], trace.mask[index]
        if algorithm == "rigl" and t in DYNAMIC_STEPS:
            assert not trace.stepped[index], t
            for name in params:
                expected = before[name] * mask[name] if name in mask else before[name]
                assert torch.equal(after[name], expected), (t, name)
            assert torch.equal(after[first], before[first]), t
        else:
            assert trace.stepped[index], t
            assert not torch.equal(after[first], before[first]), t

    # Training FLOPs: 3 f_S per image and step, plus f_D - f_S on RigL's update steps (dense gradient).
    f_s, f_d = trace.flops.forward(initial), trace.flops.dense
    assert all(trace.flops.forward(mask) == pytest.approx(f_s, rel=1e-12) for mask in trace.mask)
    update_images = sum(trace.images[t - 1] for t in DYNAMIC_STEPS) if algorithm == "rigl" else 0
    assert trace.dynamic.train_flops - 3 * f_s * sum(trace.images) == pytest.approx(
        update_images * (f_d - f_s), abs=1e-3
    )


# --- RigL's growth by hand -------------------------------------------------------------------


def test_rigl_update_by_hand():
    """A 1x1 conv 2 -> 4 (8 weights, half kept): at t = 25 of T_end = 100, alpha = 0.6 drops
    floor(0.3 (1 + cos(pi / 4)) * 4) = floor(2.05) = 2 of the 4 active weights, the smallest |w|, and
    grows 2 where the dense |gradient| is largest among the 6 positions inactive after the drop,
    a just-dropped one included; ties go to the earlier position."""
    hparams = ALGORITHMS["rigl"].from_dict(
        {"sparsity": 0.5, "distribution": "uniform", "dense_layers": "none", "drop_fraction": 0.6, "end": 1.0}
    )
    updater = Rigl(hparams, {"w": torch.Size([4, 2, 1, 1])}, total_steps=100, seed=0)
    assert updater.end == 100 and updater.counts == {"w": 4}
    assert math.floor(updater.drop_fraction(25) * 4) == 2
    # Rows are output channels, columns input channels.
    mask = torch.tensor([[1, 1], [1, 1], [0, 0], [0, 0]], dtype=torch.bool).view(4, 2, 1, 1)
    weights = torch.tensor([[0.5, -0.1], [0.9, 0.3], [0.0, 0.0], [0.0, 0.0]]).view(4, 2, 1, 1)
    # Active 0.5, -0.1, 0.9, 0.3: -0.1 and 0.3 are dropped. Candidates (after the drop) and |grad|:
    # (0,1) 0.8 [just dropped], (1,1) 0.2 [just dropped], (2,0) 0.5, (2,1) 0.1, (3,0) 0.7, (3,1) 0.7 [tie].
    # The survivors' gradients (9.0) are the largest but they are not candidates.
    gradient = torch.tensor([[9.0, -0.8], [9.0, 0.2], [0.5, -0.1], [-0.7, 0.7]]).view(4, 2, 1, 1)
    new = updater.update(25, {"w": weights}, {"w": mask}, {"w": gradient.abs()})
    expected = torch.tensor([[1, 1], [1, 0], [0, 0], [1, 0]], dtype=torch.bool).view(4, 2, 1, 1)
    assert torch.equal(new["w"], expected)
    assert updater.history == [
        {"step": 25, "drop_fraction": pytest.approx(0.3 * (1 + math.sqrt(0.5))), "dropped": 2, "grown": 2, "regrown": 1}
    ]
    with pytest.raises(LthError, match="dense gradient"):
        updater.update(50, {"w": weights}, {"w": mask}, None)


# --- layer counts ----------------------------------------------------------------------------


@pytest.mark.parametrize("distribution", ["erk", "uniform"])
@pytest.mark.parametrize(
    ("dense_layers", "dense"),
    [
        ("none", []),
        ("first", ["0.weight"]),
        ("last", ["5.weight"]),
        ("first+last", ["0.weight", "5.weight"]),
    ],
)
def test_dynamic_sparse_counts_and_first_mask(distribution, dense_layers, dense):
    sparsity = 0.1 if "last" in dense_layers else 0.7  # the dense classifier alone is 76% of the weights
    hparams = ALGORITHMS["set"].from_dict(
        {"sparsity": sparsity, "distribution": distribution, "dense_layers": dense_layers, "include_linear": True}
    )
    model = tiny_model()
    names = prunable_names(model, include_linear=True)
    updater = make_updater(hparams, model, names, 10, seed=3)
    sizes = {name: math.prod(shape) for name, shape in LAYERS.items()}
    kept = round((1 - sparsity) * sum(sizes.values()))
    assert sorted(updater.dense) == sorted(dense)
    assert sum(updater.counts.values()) == kept
    assert all(updater.counts[name] == sizes[name] for name in dense)
    # Each sparse layer is within one weight of its exact share of what the dense layers leave.
    sparse = [name for name in names if name not in dense]
    budget = kept - sum(sizes[name] for name in dense)
    if distribution == "uniform":
        share = {name: budget / sum(sizes[n] for n in sparse) * sizes[name] for name in sparse}
    else:  # ERK: proportional to sum(shape), as long as no layer reaches density 1 (true here)
        share = {name: budget * sum(LAYERS[name]) / sum(sum(LAYERS[n]) for n in sparse) for name in sparse}
        assert all(share[name] < sizes[name] for name in sparse)
    assert all(abs(updater.counts[name] - share[name]) < 1 for name in sparse), (updater.counts, share)
    mask = updater.initial_mask(dict(model.named_parameters()))
    assert {name: int(keep.sum()) for name, keep in mask.items()} == updater.counts
    assert all(mask[name].all() for name in dense)
    assert all(mask[name].shape == model.get_parameter(name).shape for name in names)
    # The first mask is random, from the seed: the same seed draws it again, another does not.
    again = make_updater(hparams, model, names, 10, seed=3).initial_mask({})
    other = make_updater(hparams, model, names, 10, seed=4).initial_mask({})
    assert all(torch.equal(mask[name], again[name]) for name in names)
    assert any(not torch.equal(mask[name], other[name]) for name in sparse)


# --- whole runs through lth.train.train ------------------------------------------------------

SMALL = ModelHparams(name="resnet18", width=4)
BATCH = 32
EPOCHS = 3
RIGL = {"update_every": 2, "end": 0.75}  # 6 steps an epoch, T = 18, T_end = round(13.5) = 14


def run(out: Path, data, *, epochs: int = EPOCHS, sparse=None, mask=None, callbacks=(), save_epochs=()) -> dict:
    hparams = TrainHparams(epochs=epochs, batch_size=BATCH, lr=0.1, milestones=(0.5,))
    record = {"test": "sparse", "train": hparams.to_dict(), "sparse": sparse.to_dict() if sparse else None}
    return train(
        init_model(SMALL, data.num_classes, seed=0),
        data,
        hparams,
        out,
        seed=0,
        model_hparams=SMALL,
        record=record,
        mask=mask,
        save_epochs=save_epochs,
        options=RunOptions(device="cpu", threads=1, callbacks=callbacks),
        sparse_training=sparse,
    )


def rigl_hparams():
    return ALGORITHMS["rigl"].from_dict(RIGL)


@pytest.fixture(scope="module")
def rigl_run(tmp_path_factory, digits_data) -> Path:
    """An uninterrupted 3-epoch RigL run, epoch 1 kept."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures start before `one_thread`
    try:
        out = tmp_path_factory.mktemp("rigl") / "whole"
        run(out, digits_data, sparse=rigl_hparams(), save_epochs=[1])
    finally:
        torch.set_num_threads(before)
    return out


def batch_images(data, steps: int) -> list[int]:
    """Images in each of the run's optimizer steps (the last batch of an epoch is partial)."""
    count = len(data.train.labels)
    per_epoch = [min(BATCH, count - start) for start in range(0, count, BATCH)]
    return [per_epoch[(t - 1) % len(per_epoch)] for t in range(1, steps + 1)]


def interrupt(ctx):
    if ctx.epoch == 2:  # the resume state holds epoch 1
        raise KeyboardInterrupt


def assert_same_run(a: Path, b: Path, checkpoints=("final.pt",)) -> None:
    """Two finished sparse runs are bit-identical: weights, masks, mask updates, FLOPs, metrics."""
    summary_a, summary_b = read_json(a / "summary.json"), read_json(b / "summary.json")
    assert summary_a["mask_updates"] == summary_b["mask_updates"]
    assert summary_a["train_flops"] == summary_b["train_flops"]
    assert read_metrics(a / "metrics.csv", drop_timing=True) == read_metrics(b / "metrics.csv", drop_timing=True)
    for name in checkpoints:
        first, second = load_checkpoint(a / name), load_checkpoint(b / name)
        assert state_dicts_equal(first["state_dict"], second["state_dict"]), name
        assert state_dicts_equal(first["mask"], second["mask"]), name


def test_rigl_resumed_mid_run_matches_uninterrupted_run(tmp_path, digits_data, rigl_run):
    broken = tmp_path / "broken"
    with pytest.raises(KeyboardInterrupt):
        run(broken, digits_data, sparse=rigl_hparams(), callbacks=[interrupt], save_epochs=[1])
    state = torch.load(broken / ".resume" / "state.pt", weights_only=False)
    assert state["epoch"] == 1 and state["sparse_training"]["step"] == 6
    assert [entry["step"] for entry in state["sparse_training"]["updater"]["history"]] == [2, 4, 6]

    run(broken, digits_data, sparse=rigl_hparams(), save_epochs=[1])
    whole = read_json(rigl_run / "summary.json")
    assert [entry["step"] for entry in whole["mask_updates"]] == [2, 4, 6, 8, 10, 12]
    assert_same_run(broken, rigl_run, ("final.pt", "epoch1.pt"))
    # The mask did change during the run: epoch 1's differs from the final one.
    first, final = load_checkpoint(rigl_run / "epoch1.pt")["mask"], load_checkpoint(rigl_run / "final.pt")["mask"]
    assert any(not torch.equal(first[name], final[name]) for name in final)
    assert {name: int(keep.sum()) for name, keep in first.items()} == {
        name: int(keep.sum()) for name, keep in final.items()
    }


def test_set_resumed_mid_run_matches_uninterrupted_run(tmp_path, digits_data):
    """SET's growth draws from the updater's random stream, which the resume state must carry: 2
    epochs, T = 12, T_end = round(9) = 9, updates at 2, 4, 6 (epoch 1) and 8 (after the resume)."""
    hparams = ALGORITHMS["set"].from_dict(RIGL)
    run(tmp_path / "whole", digits_data, epochs=2, sparse=hparams)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "broken", digits_data, epochs=2, sparse=hparams, callbacks=[interrupt])
    run(tmp_path / "broken", digits_data, epochs=2, sparse=hparams)
    steps = [entry["step"] for entry in read_json(tmp_path / "whole" / "summary.json")["mask_updates"]]
    assert steps == [2, 4, 6, 8]
    assert_same_run(tmp_path / "broken", tmp_path / "whole")


def test_rigl_same_seed_same_run(tmp_path, digits_data, rigl_run):
    run(tmp_path / "again", digits_data, sparse=rigl_hparams(), save_epochs=[1])
    again, whole = load_checkpoint(tmp_path / "again" / "final.pt"), load_checkpoint(rigl_run / "final.pt")
    assert state_dicts_equal(again["state_dict"], whole["state_dict"])
    assert state_dicts_equal(again["mask"], whole["mask"])
    assert (
        read_json(tmp_path / "again" / "summary.json")["mask_updates"]
        == read_json(rigl_run / "summary.json")["mask_updates"]
    )


def test_rigl_run_outputs_and_train_flops(digits_data, rigl_run):
    summary = read_json(rigl_run / "summary.json")
    final = load_checkpoint(rigl_run / "final.pt")
    mask, state = final["mask"], final["state_dict"]
    model = build_model(SMALL, digits_data.num_classes)
    names = prunable_names(model)
    assert list(mask) == names and names[0] == "conv1.weight" and mask[names[0]].all()
    assert all(torch.count_nonzero(state[name][~keep]) == 0 for name, keep in mask.items())
    total = sum(keep.numel() for keep in mask.values())
    assert sum(int(keep.sum()) for keep in mask.values()) == round(0.1 * total)
    assert summary["sparsity"] == pytest.approx(1 - round(0.1 * total) / total)
    assert summary["sparse_training"]["algorithm"] == "rigl"

    flops = layer_flops(model, digits_data.train.images.shape[1:])
    f_s, f_d = flops.forward(mask), flops.dense
    images = batch_images(digits_data, EPOCHS * 6)
    assert sum(images) == EPOCHS * len(digits_data.train.labels)
    update_images = sum(images[t - 1] for t in (2, 4, 6, 8, 10, 12))
    assert update_images == 4 * BATCH + 2 * (len(digits_data.train.labels) - 5 * BATCH)
    assert f_s < f_d
    assert summary["train_flops"] == pytest.approx(3 * f_s * sum(images) + update_images * (f_d - f_s), abs=1)
    assert summary["train_flops"] - 3 * f_s * sum(images) > 0


@pytest.mark.parametrize("masked", [False, True])
def test_static_and_dense_train_flops(tmp_path, digits_data, masked):
    model = init_model(SMALL, digits_data.num_classes, seed=0)
    names = prunable_names(model)
    mask = prune(model.state_dict(), dense_mask(model.state_dict(), names), PruneHparams(rate=0.5)) if masked else None
    summary = run(tmp_path, digits_data, epochs=1, mask=mask)
    flops = layer_flops(model, digits_data.train.images.shape[1:])
    per_image = flops.forward(mask) if masked else flops.dense
    assert summary["train_flops"] == pytest.approx(1 * len(digits_data.train.labels) * 3 * per_image, abs=1)
    assert "mask_updates" not in summary
    if masked:
        assert per_image < flops.dense
