"""Masks: magnitude pruning counts, scope, ties, collapse, files, and enforcement under SGD."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from lth import models
from lth.errors import LthError
from lth.hparams import PruneHparams
from lth.io import read_json
from lth.masks import (
    MaskEnforcer,
    dense_mask,
    describe,
    layer_stats,
    load_mask,
    mask_hash,
    prunable_names,
    prune,
    read_sidecar,
    remaining_after,
    save_mask,
    sidecar_path,
    sparsity,
)

pytestmark = pytest.mark.usefixtures("one_thread")
IMP = PruneHparams(rate=0.2, scope="global")


def kept(mask: dict[str, torch.Tensor]) -> int:
    return sum(int(keep.sum()) for keep in mask.values())


@pytest.fixture(scope="module")
def resnet8() -> nn.Module:
    torch.manual_seed(0)
    return models.build("resnet18", 10, width=8)


def test_remaining_after_rounds_each_round():
    assert remaining_after(100, 0.2, 0) == 100
    assert remaining_after(100, 0.2, 3) == 51  # 100 -> 80 -> 64 -> 51 (12.8 rounds to 13)
    assert remaining_after(7, 0.5, 1) == 3  # round(3.5) == 4 (round half to even)
    assert remaining_after(1, 0.2, 5) == 1  # round(0.2) == 0: nothing left to remove


def test_prunable_names(resnet8):
    names = prunable_names(resnet8)
    convs = [f"{n}.weight" for n, m in resnet8.named_modules() if isinstance(m, nn.Conv2d)]
    assert names == convs and names[0] == "conv1.weight"
    assert "layer2.0.shortcut.0.weight" in names and "fc.weight" not in names
    assert not any("bn" in name or name.endswith(".bias") for name in names)
    assert prunable_names(resnet8, include_linear=True) == names + ["fc.weight"]


def test_imp_16_rounds_exact_counts_per_round(resnet8):
    weights = {name: tensor.detach().clone() for name, tensor in resnet8.state_dict().items()}
    mask = dense_mask(weights, prunable_names(resnet8))
    total = kept(mask)
    generator = torch.Generator().manual_seed(1)
    for level in range(1, 17):
        # New magnitudes each round, as training would give; pruned positions hold zeros.
        weights = {
            name: torch.randn(t.shape, generator=generator) * mask.get(name, 1) if t.is_floating_point() else t
            for name, t in weights.items()
        }
        new = prune(weights, mask, IMP, rounds=1)
        assert kept(new) == remaining_after(total, 0.2, level), level
        assert all(not (new[n] & ~mask[n]).any() for n in mask), "a pruned weight came back"
        mask = new
    assert sparsity(mask) == pytest.approx(1 - 0.8**16, abs=1e-4)
    assert sparsity(mask) == 1 - remaining_after(total, 0.2, 16) / total


@pytest.mark.parametrize("level", [1, 5, 16])
def test_omp_matches_imp_count(resnet8, level):
    weights = dict(resnet8.state_dict())
    dense = dense_mask(weights, prunable_names(resnet8))
    imp = dense
    for _ in range(level):
        imp = prune(weights, imp, IMP)
    omp = prune(weights, dense, IMP, rounds=level)
    assert kept(omp) == kept(imp) == remaining_after(kept(dense), 0.2, level)


def test_layerwise_prunes_each_layer_by_its_own_count(resnet8):
    weights = dict(resnet8.state_dict())
    dense = dense_mask(weights, prunable_names(resnet8))
    for rounds in (1, 3):
        mask = prune(weights, dense, PruneHparams(rate=0.2, scope="layerwise"), rounds=rounds)
        for name, stats in layer_stats(mask).items():
            assert stats["kept"] == remaining_after(weights[name].numel(), 0.2, rounds), name


def test_global_prunes_small_magnitude_layer_more():
    generator = torch.Generator().manual_seed(0)
    weights = {
        "tiny.weight": torch.randn(400, generator=generator) * 1e-3,
        "big.weight": torch.randn(20, 20, generator=generator) + torch.sign(torch.randn(20, 20)),
    }
    weights["big.weight"][weights["big.weight"].abs() < 0.1] = 1.0  # every big weight outranks every tiny one
    dense = dense_mask(weights, list(weights))
    stats = layer_stats(prune(weights, dense, PruneHparams(rate=0.2, scope="global")))
    assert stats["tiny.weight"]["kept"] == 400 - 160 and stats["big.weight"]["kept"] == 400
    layerwise = layer_stats(prune(weights, dense, PruneHparams(rate=0.2, scope="layerwise")))
    assert layerwise["tiny.weight"]["kept"] == layerwise["big.weight"]["kept"] == 320


def test_prunes_the_smallest_magnitudes():
    weights = {"w": torch.tensor([0.5, -0.1, 3.0, -2.0, 0.05, 1.0, -0.7, 0.2, 4.0, -0.3])}
    mask = prune(weights, dense_mask(weights, ["w"]), PruneHparams(rate=0.3))
    assert mask["w"].tolist() == [True, False, True, True, False, True, True, False, True, True]


def test_ties_prune_earliest_positions_deterministically():
    weights = {"a.weight": torch.ones(2, 3), "b.weight": -torch.ones(4)}
    dense = dense_mask(weights, ["a.weight", "b.weight"])
    first = prune(weights, dense, PruneHparams(rate=0.2))  # 2 of 10, all |w| equal
    assert first["a.weight"].flatten().tolist() == [False, False, True, True, True, True]
    assert first["b.weight"].tolist() == [True] * 4
    second = prune(weights, dense, PruneHparams(rate=0.2))
    assert all(torch.equal(first[n], second[n]) for n in first)
    # Next round: ties among the remaining weights again go to the earliest remaining positions.
    third = prune(weights, first, PruneHparams(rate=0.5))  # 4 of 8
    assert third["a.weight"].flatten().tolist() == [False] * 6
    assert third["b.weight"].tolist() == [True] * 4
    layerwise = prune(weights, dense, PruneHparams(rate=0.5, scope="layerwise"))
    assert layerwise["a.weight"].flatten().tolist() == [False, False, False, True, True, True]
    assert layerwise["b.weight"].tolist() == [False, False, True, True]


def test_include_linear_prunes_fc(resnet8):
    names = prunable_names(resnet8, include_linear=PruneHparams(include_linear=True).include_linear)
    weights = dict(resnet8.state_dict())
    mask = prune(weights, dense_mask(weights, names), PruneHparams(rate=0.2, include_linear=True))
    assert "fc.weight" in mask and mask["fc.weight"].shape == resnet8.fc.weight.shape
    assert set(prune(weights, dense_mask(weights, prunable_names(resnet8)), IMP)) == set(names) - {"fc.weight"}


def test_prune_rounds_zero_and_negative():
    weights = {"w": torch.randn(10)}
    dense = dense_mask(weights, ["w"])
    assert torch.equal(prune(weights, dense, IMP, rounds=0)["w"], dense["w"])
    with pytest.raises(ValueError, match="rounds"):
        prune(weights, dense, IMP, rounds=-1)
    with pytest.raises(LthError, match="'v'"):
        prune(weights, {"v": torch.ones(3, dtype=torch.bool)}, IMP)


def test_layer_collapse_warns_and_is_recorded(tmp_path):
    weights = {"stem.weight": torch.full((10,), 1e-4), "body.weight": torch.randn(40) + 10}
    mask = prune(weights, dense_mask(weights, list(weights)), PruneHparams(rate=0.2), rounds=2)
    assert int(mask["stem.weight"].sum()) == 0  # 18 of 50 pruned: all 10 tiny ones
    path = tmp_path / "level2" / "mask.pt"
    with pytest.warns(UserWarning, match="layer collapse.*stem.weight"):
        info = save_mask(path, mask)
    sidecar = read_json(tmp_path / "level2" / "mask.json")
    assert sidecar["collapsed_layers"] == info["collapsed_layers"] == ["stem.weight"]
    assert sidecar["layers"]["stem.weight"] == {"kept": 0, "total": 10, "sparsity": 1.0}


def test_no_collapse_no_warning(tmp_path):
    weights = {"w": torch.randn(50)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        info = save_mask(tmp_path / "m.pt", prune(weights, dense_mask(weights, ["w"]), IMP))
    assert info["collapsed_layers"] == []


def test_save_load_round_trip_and_sidecar(tmp_path, resnet8):
    weights = dict(resnet8.state_dict())
    mask = prune(weights, dense_mask(weights, prunable_names(resnet8)), IMP, rounds=2)
    path = tmp_path / "mask.pt"
    info = save_mask(path, mask, provenance={"rounds": 2, "weights": "final.pt"})
    loaded = load_mask(path)
    assert list(loaded) == list(mask)
    assert all(loaded[n].dtype == torch.bool and torch.equal(loaded[n], mask[n]) for n in mask)
    sidecar = read_sidecar(path)
    assert sidecar_path(path) == tmp_path / "mask.json"
    assert sidecar["sha256"] == mask_hash(mask) == mask_hash(loaded) == info["sha256"]
    assert sidecar["format"] == "lth-mask" and sidecar["provenance"] == {"rounds": 2, "weights": "final.pt"}
    assert sidecar["kept"] == kept(mask) and sidecar["total"] == sum(m.numel() for m in mask.values())
    assert sidecar["sparsity"] == pytest.approx(sparsity(mask)) and sidecar["layers"] == describe(mask)["layers"]
    assert not list(tmp_path.glob(".*.tmp")), "temporary files left behind"


def test_mask_hash_depends_on_content():
    a = {"w": torch.tensor([True, False, True])}
    assert mask_hash(a) == mask_hash({"w": a["w"].clone()})
    assert mask_hash(a) != mask_hash({"w": torch.tensor([True, True, False])})
    assert mask_hash(a) != mask_hash({"v": a["w"]})


def test_load_mask_rejects_other_files(tmp_path):
    torch.save({"format": "lth-checkpoint"}, tmp_path / "x.pt")
    with pytest.raises(LthError, match="not an lth mask"):
        load_mask(tmp_path / "x.pt")


def test_enforcer_keeps_pruned_weights_exactly_zero_under_sgd(resnet8):
    model = models.build("resnet18", 10, width=8)
    model.load_state_dict(resnet8.state_dict())
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    mask = prune(weights, dense_mask(weights, prunable_names(model, include_linear=True)), IMP, rounds=3)
    enforcer = MaskEnforcer(model, mask)
    enforcer.apply_to_weights()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    generator = torch.Generator().manual_seed(0)
    for _ in range(4):
        inputs = torch.randn(8, 3, 32, 32, generator=generator)
        labels = torch.randint(0, 10, (8,), generator=generator)
        loss = nn.functional.cross_entropy(model(inputs), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        enforcer.apply_to_grads()
        optimizer.step()
        enforcer.apply_to_weights()
    params = dict(model.named_parameters())
    for name, keep in mask.items():
        assert (params[name].detach()[~keep] == 0).all(), name
        assert not torch.equal(params[name].detach()[keep], weights[name][keep]), f"{name} did not train"
        assert (optimizer.state[params[name]]["momentum_buffer"][~keep] == 0).all(), name


def test_enforcer_rejects_wrong_names_and_shapes(resnet8):
    with pytest.raises(LthError, match="'nope.weight'"):
        MaskEnforcer(resnet8, {"nope.weight": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(LthError, match=r"conv1\.weight.*shape"):
        MaskEnforcer(resnet8, {"conv1.weight": torch.ones(4, 3, 3, 3, dtype=torch.bool)})
