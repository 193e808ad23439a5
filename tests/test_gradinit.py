"""GradInit on a tiny network: floors, the two kinds of step, the objective, masks, resuming."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lth.gradinit
import lth.train
from lth.data import Data
from lth.data.sources import Split
from lth.gradinit import GradinitResult, gradinit, scaled_parameters
from lth.hparams import GradinitHparams, ModelHparams, TrainHparams
from lth.train import EpochContext, RunOptions, train

# Double backward on tiny tensors is many small ops: a second thread only contends on shared cores.
pytestmark = pytest.mark.usefixtures("one_thread")

CPU = torch.device("cpu")
NUM_CLASSES = 4


def tiny_data(n: int = 256) -> Data:
    """8x8 images whose brightness tells the class, so that the loss can fall."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, NUM_CLASSES, (n,), generator=generator)
    images = (torch.rand(n, 3, 8, 8, generator=generator) * 60 + labels.view(-1, 1, 1, 1) * 40).to(torch.uint8)
    split = Split(images, labels)
    return Data(split, split, split, NUM_CLASSES, (0.5,) * 3, (0.25,) * 3, flip=False, crop_padding=0)


def tiny_net(seed: int = 2, conv_bias: bool = True) -> nn.Module:
    """Its gradient norm starts near 1.5, above the default gamma = 1. A conv bias before BatchNorm
    has a gradient of rounding noise only, which Adam turns into unit steps: `conv_bias=False` (as
    in the ResNets) leaves no such scale, for comparisons to a tolerance."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, bias=conv_bias),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, NUM_CLASSES),
    )


def run(model: nn.Module, mask: dict[str, torch.Tensor] | None = None, **changes) -> GradinitResult:
    hparams = GradinitHparams(enabled=True, batch_size=32, **changes)
    return gradinit(model, tiny_data(), mask, hparams, CPU, seed=0)


def test_alphas_respect_their_floors_and_scale_the_starting_tensors():
    model = tiny_net()
    start = {name: p.detach().clone() for name, p in scaled_parameters(model).items()}
    # A large learning rate drives some scales into both floors: 0.9 for weights, 0 for biases.
    result = run(model, gamma=math.inf, lr=0.1, min_scale=0.9, iterations=20)
    weights = [alpha for name, alpha in result.alphas.items() if name.endswith("weight")]
    biases = [alpha for name, alpha in result.alphas.items() if name.endswith("bias")]
    assert min(weights) == 0.9 and min(biases) == 0.0
    assert max(result.alphas.values()) > 1.0
    for name, param in scaled_parameters(model).items():
        assert torch.allclose(param, result.alphas.get(name, 1.0) * start[name])


def test_zero_norm_tensors_are_skipped():
    model = tiny_net()
    result = run(model, iterations=2)
    assert result.skipped == ["1.bias", "4.bias"]  # BatchNorm biases start at zero
    assert set(result.alphas) == set(scaled_parameters(model)) - set(result.skipped)
    assert model[1].bias.abs().sum() == 0


def test_the_constraint_step_is_taken_when_gnorm_exceeds_gamma():
    result = run(tiny_net(), gamma=1.0, iterations=20)
    assert result.history[0]["gnorm"] > 1.0 and result.history[0]["step"] == "constraint"
    for row in result.history:
        assert row["step"] == ("constraint" if row["gnorm"] > 1.0 else "objective")
        assert (row["objective"] is None) == (row["step"] == "constraint")
    assert {row["step"] for row in result.history} == {"constraint", "objective"}  # the steps brought gnorm down


def test_the_objective_step_is_taken_below_gamma():
    result = run(tiny_net(), gamma=math.inf, iterations=4)
    assert result.history[0]["gnorm"] > 1.0  # a fresh network starts above gamma = 1
    assert [row["step"] for row in result.history] == ["objective"] * 4
    assert all(row["objective"] is not None for row in result.history)


def test_the_look_ahead_objective_falls():
    objectives = [row["objective"] for row in run(tiny_net(), gamma=math.inf, lr=0.05, iterations=30).history]
    window = 10  # single steps are noisy: each draws fresh half-batches
    assert sum(objectives[-window:]) / window < 0.9 * sum(objectives[:window]) / window


def test_runs_are_deterministic_for_a_seed():
    assert run(tiny_net(), iterations=5) == run(tiny_net(), iterations=5)


def test_batchnorm_running_statistics_are_left_alone_and_modes_restored():
    model = tiny_net().train()
    buffers = {name: b.clone() for name, b in model.state_dict().items() if "running" in name or "num_batches" in name}
    run(model, iterations=3)
    assert all(torch.equal(model.state_dict()[name], value) for name, value in buffers.items())
    assert model.training and all(m.track_running_stats for m in model.modules() if isinstance(m, nn.BatchNorm2d))


@pytest.mark.parametrize("algorithm", ["sgd", "adam"])
def test_pruned_weights_are_zero_in_the_look_ahead_and_after_rescaling(algorithm: str, monkeypatch):
    model = tiny_net()
    generator = torch.Generator().manual_seed(3)
    mask = {
        name: torch.rand(model.get_parameter(name).shape, generator=generator) < 0.5
        for name in ("0.weight", "3.weight", "8.weight")
    }
    looks: list[dict[str, torch.Tensor]] = []

    def recording_call(module: nn.Module, params: dict[str, torch.Tensor], args: tuple) -> torch.Tensor:
        looks.append({name: p.detach().clone() for name, p in params.items()})
        return torch.func.functional_call(module, params, args)

    monkeypatch.setattr(lth.gradinit, "functional_call", recording_call)
    before = {name: model.get_parameter(name).detach().clone() for name in mask}
    run(model, mask, algorithm=algorithm, gamma=math.inf, iterations=3, weights="ticket")
    assert len(looks) == 3
    for name, keep in mask.items():
        for look in looks:
            assert torch.all(look[name][~keep] == 0)
            assert not torch.equal(look[name][keep], before[name][keep])  # kept weights did move
        assert torch.all(model.get_parameter(name)[~keep] == 0)


def test_a_resumed_run_does_not_run_gradinit_again(tmp_path: Path, monkeypatch):
    data, hparams = tiny_data(64), TrainHparams(epochs=2, batch_size=32, milestones=())
    gradinit_hp = GradinitHparams(enabled=True, batch_size=32, iterations=2)
    kwargs = dict(seed=0, model_hparams=ModelHparams(), record={"test": "resume"}, gradinit_hparams=gradinit_hp)

    def interrupt(context: EpochContext) -> None:
        if context.epoch == 2:  # after epoch 1's resume state was saved
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny_net(), data, hparams, tmp_path, options=RunOptions(callbacks=[interrupt]), **kwargs)
    assert (tmp_path / ".resume" / "gradinit.json").exists() and not (tmp_path / "gradinit.json").exists()

    def forbidden(*args, **kwargs):
        raise AssertionError("GradInit ran again on resume")

    monkeypatch.setattr(lth.train, "gradinit", forbidden)
    summary = train(tiny_net(), data, hparams, tmp_path, **kwargs)
    saved = json.loads((tmp_path / "gradinit.json").read_text())
    assert summary["gradinit"] is True
    assert saved["hparams"] == gradinit_hp.to_dict() and len(saved["history"]) == 2
    assert set(saved["alphas"]) == {"0.weight", "1.weight", "3.weight", "3.bias", "4.weight", "8.weight", "8.bias"}


def official_gradinit(model: nn.Module, batches, hparams: GradinitHparams) -> dict[nn.Parameter, float]:
    """A transcription by hand of the official update (zhuchen03/gradinit's gradinit_utils.gradinit
    and RescaleAdam, which the ToST code copies), SGD direction: parameters are swapped for their
    look-ahead tensors inside the modules, as the official take_opt_step does, and RescaleAdam's
    state is kept per parameter. Returns the alpha of each parameter that has one."""
    params = [
        p
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d))
        for p in (m.weight, m.bias)
        if p is not None
    ]
    modules = [
        (m, name)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d))
        for name in ("weight", "bias")
        if getattr(m, name) is not None
    ]
    state: dict[nn.Parameter, dict] = {}
    model.eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.training, m.track_running_stats = True, False

    def rescale_adam(is_constraint: bool) -> None:
        for (module, name), p in zip(modules, params):
            if p.grad is None:
                continue
            st = state.setdefault(
                p,
                {
                    "alpha": 1.0,
                    "init_norm": p.norm().item(),
                    "step": 0,
                    "cons_step": 0,
                    "exp_avg": 0.0,
                    "exp_avg_sq": 0.0,
                    "cons_exp_avg": 0.0,
                },
            )
            curr_norm = p.data.norm().item()
            if st["init_norm"] == 0 or curr_norm == 0:
                continue
            grad = torch.sum(p.grad * p.data).item() * st["init_norm"] / curr_norm
            grad = max(min(grad, hparams.grad_clip), -hparams.grad_clip)
            beta1, beta2 = 0.9, 0.999
            prefix = "cons_" if is_constraint else ""
            st[prefix + "step"] += 1
            st[prefix + "exp_avg"] = st[prefix + "exp_avg"] * beta1 + grad * (1 - beta1)
            st["exp_avg_sq"] = st["exp_avg_sq"] * beta2 + grad * grad * (1 - beta2)
            denom = math.sqrt(st["exp_avg_sq"] / (1 - beta2 ** (st["cons_step"] + st["step"]))) + 1e-8
            min_scale = 0 if name == "bias" else hparams.min_scale
            step_size = hparams.lr / (1 - beta1 ** st[prefix + "step"])
            st["alpha"] = max(st["alpha"] - step_size * st[prefix + "exp_avg"] / denom, min_scale)
            p.data.mul_(st["alpha"] * st["init_norm"] / curr_norm)

    for _ in range(hparams.iterations):
        inputs0, targets0 = next(batches)
        inputs1, targets1 = next(batches)
        loss = F.cross_entropy(model(torch.cat([inputs0, inputs1])), torch.cat([targets0, targets1]))
        grads = torch.autograd.grad(loss, params, create_graph=True)
        gnorm = sum(g.square().sum() for g in grads).sqrt()
        steps = [g / gnorm for g in grads] if hparams.normalize_grad else grads
        for p in params:
            p.grad = None
        if gnorm.item() > hparams.gamma:
            gnorm.backward()
            rescale_adam(is_constraint=True)
            continue
        for (module, name), p, step in zip(modules, params, steps):
            del module._parameters[name]
            setattr(module, name, p - hparams.eta * step.data)
        inputs2, targets2 = next(batches)
        updated = F.cross_entropy(model(torch.cat([inputs0, inputs2])), torch.cat([targets0, targets2]))
        for (module, name), p in zip(modules, params):
            delattr(module, name)
            module.register_parameter(name, p)
        (updated / hparams.eta).backward()
        rescale_adam(is_constraint=False)
    return {p: st["alpha"] for p, st in state.items() if st["init_norm"] != 0}


def test_alphas_and_weights_follow_the_official_update_step_by_step():
    """Constraint and objective steps both occur (the net starts near gnorm 1.3, gamma 1); lth and
    the transcription of the official code, on the same half-batches, learn the same scales. They
    differ by float rounding only (autograd sums the paths into a weight's gradient in another
    order), which Adam's normalised steps amplify to about 1e-6; separate second moments per kind
    of step (lth before #25) were 0.07 off."""
    hparams = GradinitHparams(enabled=True, batch_size=32, iterations=12, lr=0.05)
    model, reference = tiny_net(conv_bias=False), tiny_net(conv_bias=False)
    result = gradinit(model, tiny_data(), None, hparams, CPU, seed=0, channels_last=False)
    assert {row["step"] for row in result.history} == {"constraint", "objective"}
    batches = lth.gradinit._half_batches(tiny_data(), 16, CPU, 0, channels_last=False)
    alphas = official_gradinit(reference, batches, hparams)
    named = dict(reference.named_parameters())
    assert set(result.alphas) == {name for name, p in named.items() if p in alphas}
    for name, alpha in result.alphas.items():
        assert alpha == pytest.approx(alphas[named[name]], rel=0, abs=1e-4), name
        assert torch.allclose(model.get_parameter(name), named[name], rtol=1e-4, atol=0), name


def test_step_counts_and_gradient_norms_are_reported_and_no_objective_step_is_warned(caplog):
    result = run(tiny_net(), gamma=1e-6, iterations=3)
    assert result.counts() == {
        "objective_steps": 0,
        "constraint_steps": 3,
        "first_gnorm": result.history[0]["gnorm"],
        "last_gnorm": result.history[-1]["gnorm"],
    }
    assert "gradinit took no objective step" in caplog.text and "gamma 1e-06" in caplog.text
    caplog.clear()
    assert run(tiny_net(), gamma=math.inf, iterations=2).counts()["objective_steps"] == 2
    assert "no objective step" not in caplog.text


def test_dense_weights_ignore_the_mask_and_ticket_weights_use_it():
    model = tiny_net()
    mask = {"3.weight": torch.rand(model[3].weight.shape, generator=torch.Generator().manual_seed(1)) < 0.5}
    assert run(tiny_net(), mask, weights="dense", iterations=4) == run(tiny_net(), None, iterations=4)
    ticket = run(tiny_net(), mask, weights="ticket", iterations=4)
    assert ticket.history[0]["gnorm"] < run(tiny_net(), None, iterations=1).history[0]["gnorm"]


def test_training_rescales_the_dense_weights_then_applies_the_mask(tmp_path: Path, monkeypatch):
    """ToST's order: GradInit sees theta0 unpruned, and training starts from the masked result."""
    model, seen = tiny_net(), {}
    mask = {"3.weight": torch.rand(model[3].weight.shape, generator=torch.Generator().manual_seed(1)) < 0.5}
    original = lth.train.gradinit

    def spy(net, *args, **kwargs):
        seen["start"] = net[3].weight.detach().clone()
        return original(net, *args, **kwargs)

    monkeypatch.setattr(lth.train, "gradinit", spy)
    summary = train(
        model,
        tiny_data(64),
        TrainHparams(epochs=1, batch_size=32, milestones=()),
        tmp_path,
        seed=0,
        model_hparams=ModelHparams(),
        record={"test": "order"},
        mask=mask,
        gradinit_hparams=GradinitHparams(enabled=True, batch_size=32, iterations=2, gamma=math.inf),
    )
    assert torch.count_nonzero(seen["start"]) == seen["start"].numel()  # unpruned when GradInit ran
    assert torch.all(model[3].weight[~mask["3.weight"]] == 0)
    assert summary["gradinit_steps"] == {
        "objective_steps": 2,
        "constraint_steps": 0,
        "first_gnorm": pytest.approx(summary["gradinit_steps"]["first_gnorm"]),
        "last_gnorm": pytest.approx(summary["gradinit_steps"]["last_gnorm"]),
    }
    assert summary["gradinit_steps"]["first_gnorm"] > 0


def test_batch_size_256_draws_the_official_halves_of_128(monkeypatch):
    """ToST's S0 u S1 is two loader batches of 128: `gradinit.batch_size: 256` reproduces it."""
    sizes = []
    original = lth.gradinit._half_batches

    def spy(data, size, *args, **kwargs):
        sizes.append(size)
        return original(data, size, *args, **kwargs)

    monkeypatch.setattr(lth.gradinit, "_half_batches", spy)
    gradinit(tiny_net(), tiny_data(512), None, GradinitHparams(enabled=True, batch_size=256, iterations=1), CPU, seed=0)
    assert sizes == [128]
