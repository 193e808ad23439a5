"""torch.nn.utils.prune interop (lth/interop.py) and other codes' mask files as `file`-source formats
(lth.mask_sources.load_user_mask): torch prune state dicts (ToST, RV) and open_lth's mask.pth."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.utils import prune

import lth
from lth.errors import LthError
from lth.mask_sources import load_user_mask
from lth.masks import MaskEnforcer, prunable_names
from lth.models import build


@pytest.fixture
def ticket():
    """A tiny lth model (resnet18, width 4, 10 classes) and a random mask applied to it."""
    torch.manual_seed(0)
    model = build("resnet18", num_classes=10, width=4, activation="relu", skip="none").eval()
    mask = {name: torch.rand(dict(model.named_parameters())[name].shape) > 0.6 for name in prunable_names(model)}
    MaskEnforcer(model, mask).apply_to_weights()
    return model, mask


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(a[name].dtype == torch.bool and torch.equal(a[name], b[name]) for name in a)


def test_to_prune_and_back_keeps_the_mask_and_the_outputs(ticket, tmp_path):
    model, mask = ticket
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = model(images)
        assert lth.to_prune(model, mask) is model
        after = model(images)
    assert torch.equal(before, after)
    assert prune.is_pruned(model) and "conv1.weight_orig" in dict(model.named_parameters())
    assert "conv1.weight_mask" in dict(model.named_buffers())
    assert same(lth.mask_from_prune(model), mask)
    state = model.state_dict()
    assert same(lth.mask_from_prune(state), mask)
    # the state dict saved as torch's pruned models are, read back as a `file` mask source
    torch.save(state, tmp_path / "pruned.pt")
    params = dict(build("resnet18", num_classes=10, width=4, activation="relu", skip="none").named_parameters())
    loaded, record = load_user_mask(tmp_path / "pruned.pt", {n: params[n].shape for n in mask}, params)
    assert same(loaded, mask) and record["format"] == "torch.nn.utils.prune"


def test_mask_from_prune_reads_torchs_own_pruning_and_refuses_what_is_not(ticket):
    model, _ = ticket
    prune.l1_unstructured(model.conv1, "weight", amount=0.5)
    read = lth.mask_from_prune(model)
    assert list(read) == ["conv1.weight"] and int(read["conv1.weight"].sum()) == model.conv1.weight.numel() // 2
    with pytest.raises(LthError, match="holds no `<parameter>_mask` entry"):
        lth.mask_from_prune({"conv1.weight": torch.ones(3)})
    with pytest.raises(LthError, match="'conv1.weight_mask' holds torch.float32 values other than 0 and 1"):
        lth.mask_from_prune({"conv1.weight_mask": torch.full((3,), 0.5)})
    with pytest.raises(LthError, match="'fc.wieght', which the model does not have"):
        lth.to_prune(model, {"fc.wieght": torch.ones(3, dtype=torch.bool)})


PRUNABLE = {"0.weight": torch.Size([4, 3]), "1.weight": torch.Size([2, 4])}
ALL = [*PRUNABLE, "0.bias", "1.bias"]


def zero_one(dtype: torch.dtype) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {name: (torch.rand(shape, generator=generator) > 0.5).to(dtype) for name, shape in PRUNABLE.items()}


def test_a_torch_prune_state_dict_is_a_mask_file(tmp_path):
    masks = zero_one(torch.float32)
    state = {f"{name[: -len('.weight')]}.weight_mask": keep for name, keep in masks.items()}
    state |= {"0.weight_orig": torch.randn(4, 3), "0.bias": torch.randn(4), "1.weight_orig": torch.randn(2, 4)}
    for suffix, values in (
        (".pt", state),
        (".pth", {k: v.bool() if k.endswith("_mask") else v for k, v in state.items()}),
    ):
        torch.save(values, tmp_path / f"ToST{suffix}")
        loaded, record = load_user_mask(tmp_path / f"ToST{suffix}", PRUNABLE, ALL)
        assert same(loaded, {name: keep.bool() for name, keep in masks.items()})
        assert record["format"] == "torch.nn.utils.prune"
    torch.save({**state, "0.weight_mask": torch.full((4, 3), 0.5)}, tmp_path / "soft.pt")
    with pytest.raises(LthError, match=r"soft.pt: '0.weight_mask' holds torch.float32 values other than 0 and 1"):
        load_user_mask(tmp_path / "soft.pt", PRUNABLE, ALL)
    torch.save({"features.0.weight_mask": torch.ones(4, 3), **state}, tmp_path / "other.pt")
    with pytest.raises(LthError, match=r"other.pt: 'features.0.weight' is not a parameter of this model \(torch"):
        load_user_mask(tmp_path / "other.pt", PRUNABLE, ALL)


def test_an_open_lth_mask_is_a_mask_file(tmp_path):
    masks = zero_one(torch.int32)  # open_lth saves {name: mask.int()} as mask.pth
    torch.save({**masks, "1.bias": torch.ones(2, dtype=torch.int32)}, tmp_path / "mask.pth")  # all kept: dropped
    loaded, record = load_user_mask(tmp_path / "mask.pth", PRUNABLE, ALL)
    assert same(loaded, {name: keep.bool() for name, keep in masks.items()}) and record["format"] == "open_lth"
    torch.save({**masks, "1.bias": torch.tensor([1, 0], dtype=torch.int32)}, tmp_path / "bias.pth")
    with pytest.raises(LthError, match="'1.bias' is not a prunable tensor"):
        load_user_mask(tmp_path / "bias.pth", PRUNABLE, ALL)
    renamed = {"layers.0.conv.weight": masks["0.weight"], "fc.weight": masks["1.weight"]}  # open_lth's VGG names
    torch.save(renamed, tmp_path / "vgg.pth")
    with pytest.raises(
        LthError, match=r"vgg.pth: 'layers.0.conv.weight' is not a parameter .* \(open_lth masks fit only"
    ):
        load_user_mask(tmp_path / "vgg.pth", PRUNABLE, ALL)
    np.savez(tmp_path / "floats.npz", **{name: keep.float().numpy() for name, keep in masks.items()})
    assert load_user_mask(tmp_path / "floats.npz", PRUNABLE, ALL)[1]["format"] == "0/1"


def test_lths_own_format_keeps_its_record_and_messages(tmp_path):
    masks = zero_one(torch.bool)
    torch.save(masks, tmp_path / "m.pt")
    assert set(load_user_mask(tmp_path / "m.pt", PRUNABLE, ALL)[1]) == {"file", "sha256"}
    torch.save({**masks, "1.weight": masks["1.weight"].float()}, tmp_path / "mixed.pt")
    with pytest.raises(LthError, match="'1.weight' holds torch.float32, not booleans"):
        load_user_mask(tmp_path / "mixed.pt", PRUNABLE, ALL)
