"""Sparse layouts: ERK and uniform layer densities (hand-computed), exact counts, and N:M masks."""

from __future__ import annotations

import pytest
import torch

from lth.errors import LthError
from lth.sparse.densities import DISTRIBUTIONS, erk_score, layer_counts, layer_densities
from lth.sparse.nm import check_nm, nm_groups_fit, nm_mask, parse_nm

# A small network: two convs and a classifier; 108 + 288 + 80 = 476 weights.
SHAPES = {"conv1": (4, 3, 3, 3), "conv2": (8, 4, 3, 3), "fc": (10, 8)}
SIZE = {"conv1": 108, "conv2": 288, "fc": 80}
TOTAL = 476
# ERK scores by hand: (n_in + n_out + k_h + k_w) / (n_in n_out k_h k_w); the linear layer (n_in + n_out) / (n_in n_out).
SCORE = {"conv1": (3 + 4 + 3 + 3) / 108, "conv2": (4 + 8 + 3 + 3) / 288, "fc": (8 + 10) / 80}


# --- densities ---------------------------------------------------------------------------


def test_erk_score_conv_and_linear() -> None:
    assert erk_score((4, 3, 3, 3)) == pytest.approx(13 / 108)
    assert erk_score((10, 8)) == pytest.approx(18 / 80)
    assert DISTRIBUTIONS == ("uniform", "erk")


def test_erk_densities_match_hand_computation() -> None:
    # score * size: conv1 13, conv2 18, fc 18 -> eps = 100 / 49; no density reaches 1.
    eps = 100 / (13 + 18 + 18)
    densities = layer_densities(SHAPES, 100, "erk")
    assert list(densities) == ["conv1", "conv2", "fc"]
    assert densities["conv1"] == pytest.approx(eps * 13 / 108)  # 0.2456
    assert densities["conv2"] == pytest.approx(eps / 16)  # 0.1276
    assert densities["fc"] == pytest.approx(eps * 9 / 40)  # 0.4592
    assert densities["conv1"] == pytest.approx(0.24565, abs=1e-5)
    assert sum(densities[name] * SIZE[name] for name in SHAPES) == pytest.approx(100)


def test_erk_layers_over_one_are_made_dense_repeatedly() -> None:
    # kept 400: eps = 400/49 puts fc at 9/40 * 400/49 = 1.84 -> fc dense (80 weights).
    # Again over conv1, conv2: eps = 320/31 puts conv1 at 13/108 * 320/31 = 1.24 -> conv1 dense (108).
    # conv2 takes the rest: (400 - 80 - 108) / 288.
    assert SCORE["fc"] * 400 / 49 > 1 and SCORE["conv1"] * 400 / 49 < 1
    assert SCORE["conv1"] * 320 / 31 > 1
    densities = layer_densities(SHAPES, 400, "erk")
    assert densities == {"conv1": 1.0, "conv2": pytest.approx(212 / 288), "fc": 1.0}
    assert layer_counts(SHAPES, 400, "erk") == {"conv1": 108, "conv2": 212, "fc": 80}


def test_counts_sum_exactly_with_largest_remainder() -> None:
    # kept 100: exact shares 1300/49 = 26.53, 1800/49 = 36.73, 36.73 -> floors 98, two more to conv2 and fc.
    assert layer_counts(SHAPES, 100, "erk") == {"conv1": 26, "conv2": 37, "fc": 37}
    # kept 50: shares 13.27, 18.37, 18.37 -> floors 49; the one left goes to conv2, tied with fc but earlier.
    assert layer_counts(SHAPES, 50, "erk") == {"conv1": 13, "conv2": 19, "fc": 18}
    # uniform 100/476: 22.69, 60.50, 16.81 -> floors 98; fc (.81) and conv1 (.69) get one each.
    assert layer_counts(SHAPES, 100, "uniform") == {"conv1": 23, "conv2": 60, "fc": 17}
    for kept in range(TOTAL + 1):
        for distribution in DISTRIBUTIONS:
            counts = layer_counts(SHAPES, kept, distribution)
            assert sum(counts.values()) == kept
            assert all(0 <= counts[name] <= SIZE[name] for name in SHAPES)


def test_uniform_densities_are_equal() -> None:
    assert layer_densities(SHAPES, 238, "uniform") == {"conv1": 0.5, "conv2": 0.5, "fc": 0.5}
    assert layer_counts(SHAPES, 238, "uniform") == {"conv1": 54, "conv2": 144, "fc": 40}


def test_dense_layers_are_full_and_spend_the_budget() -> None:
    # conv1 dense spends 108 of 200; ERK spreads 92 over conv2 and fc (score * size 18 each): eps = 92/36.
    densities = layer_densities(SHAPES, 200, "erk", dense=["conv1"])
    assert densities == {"conv1": 1.0, "conv2": pytest.approx(92 / 36 / 16), "fc": pytest.approx(92 / 36 * 9 / 40)}
    assert layer_counts(SHAPES, 200, "erk", dense=["conv1"]) == {"conv1": 108, "conv2": 46, "fc": 46}
    # uniform: (200 - 108) / (476 - 108) = 0.25.
    assert layer_densities(SHAPES, 200, "uniform", dense={"conv1"}) == {"conv1": 1.0, "conv2": 0.25, "fc": 0.25}
    assert layer_counts(SHAPES, 200, "uniform", dense={"conv1"}) == {"conv1": 108, "conv2": 72, "fc": 20}
    # exactly the dense layers' size: the rest is empty.
    assert layer_counts(SHAPES, 108, "erk", dense=["conv1"]) == {"conv1": 108, "conv2": 0, "fc": 0}


def test_extremes() -> None:
    assert layer_counts(SHAPES, 0, "erk") == {"conv1": 0, "conv2": 0, "fc": 0}
    assert layer_densities(SHAPES, TOTAL, "erk") == {"conv1": 1.0, "conv2": 1.0, "fc": 1.0}
    assert layer_counts(SHAPES, TOTAL, "uniform") == SIZE


def test_density_errors_name_the_value() -> None:
    with pytest.raises(LthError, match=r"'erdos'.*uniform, erk"):
        layer_densities(SHAPES, 100, "erdos")
    with pytest.raises(LthError, match=r"kept=-1 .*0 to 476"):
        layer_counts(SHAPES, -1, "erk")
    with pytest.raises(LthError, match=r"kept=477 .*0 to 476"):
        layer_densities(SHAPES, 477, "uniform")
    with pytest.raises(LthError, match=r"kept=50 .*108 .*conv1 \(108\)"):
        layer_counts(SHAPES, 50, "erk", dense=["conv1"])
    with pytest.raises(LthError, match=r"dense layer 'head'.*'conv1', 'conv2', 'fc'"):
        layer_densities(SHAPES, 200, "erk", dense=["head"])


# --- N:M ---------------------------------------------------------------------------------


def groups(tensor: torch.Tensor, m: int) -> torch.Tensor:
    """The documented grouping: reduction dimension (1) last, then rows of M."""
    return tensor.movedim(1, -1).reshape(-1, m)


def loop_nm(weight: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """An independent N:M mask, one group at a time, over (out, k_h, k_w) positions and channel groups."""
    mask = torch.zeros(weight.shape, dtype=torch.bool)
    w4 = weight if weight.dim() == 4 else weight[:, :, None, None]
    m4 = mask if mask.dim() == 4 else mask[:, :, None, None]
    out, inputs, height, width = w4.shape
    for o in range(out):
        for h in range(height):
            for w in range(width):
                for start in range(0, inputs, m):
                    members = [(abs(float(w4[o, c, h, w])), c) for c in range(start, start + m)]
                    ranked = sorted(members, key=lambda item: (-item[0], item[1]))
                    for _, c in ranked[:n]:
                        m4[o, c, h, w] = True
    return mask


@pytest.mark.parametrize(("n", "m"), [(2, 4), (1, 4)])
def test_nm_keeps_n_largest_per_group(n: int, m: int) -> None:
    generator = torch.Generator().manual_seed(0)
    weights = {
        "conv": torch.randn(16, 32, 3, 3, generator=generator),
        "fc": torch.randn(10, 64, generator=generator),
    }
    masks = nm_mask(weights, n, m)
    for name, weight in weights.items():
        mask = masks[name]
        assert mask.dtype == torch.bool and mask.shape == weight.shape
        kept = groups(mask, m)
        assert kept.sum(1).tolist() == [n] * kept.shape[0]
        assert int(mask.sum()) == weight.numel() * n // m
        magnitude = groups(weight.abs(), m)
        smallest_kept = magnitude.masked_fill(~kept, float("inf")).min(1).values
        largest_dropped = magnitude.masked_fill(kept, -1.0).max(1).values
        assert bool((smallest_kept > largest_dropped).all())


@pytest.mark.parametrize(("n", "m"), [(2, 4), (1, 4), (3, 8)])
def test_nm_matches_a_loop_on_tiny_tensors(n: int, m: int) -> None:
    generator = torch.Generator().manual_seed(1)
    # Rounded values, so that some groups hold ties between unequal positions.
    weights = {
        "conv": torch.randint(-3, 4, (3, 8, 2, 2), generator=generator).float(),
        "fc": torch.randint(-3, 4, (4, 16), generator=generator).float(),
    }
    masks = nm_mask(weights, n, m)
    for name, weight in weights.items():
        assert torch.equal(masks[name], loop_nm(weight, n, m)), name


def test_nm_groups_run_along_input_channels() -> None:
    # |w| grows with the input channel only: 2:4 keeps channels 2, 3, 6, 7 at every (out, k_h, k_w).
    weight = torch.arange(8.0)[None, :, None, None].expand(2, 8, 3, 3).contiguous()
    mask = nm_mask({"conv": weight}, 2, 4)["conv"]
    assert mask[0, :, 1, 2].tolist() == [False, False, True, True, False, False, True, True]
    assert torch.equal(mask, mask[:1, :, :1, :1].expand_as(mask))


def test_nm_ties_keep_the_first_positions() -> None:
    masks = nm_mask({"fc": torch.ones(2, 8), "conv": torch.ones(2, 4, 3, 3)}, 2, 4)
    assert masks["fc"].tolist() == [[True, True, False, False, True, True, False, False]] * 2
    assert bool(masks["conv"][:, :2].all()) and not bool(masks["conv"][:, 2:].any())
    assert nm_mask({"fc": -torch.ones(1, 4)}, 1, 4)["fc"].tolist() == [[True, False, False, False]]


def test_parse_and_check_nm() -> None:
    assert parse_nm("2:4") == (2, 4)
    assert parse_nm("1:8") == (1, 8)
    for bad in ("2-4", "a:b", "2:", "2:4:8", ""):
        with pytest.raises(LthError, match=rf"'{bad}' is not of the form N:M"):
            parse_nm(bad)
    with pytest.raises(LthError, match=r"4:4 .*1 <= N < M"):
        parse_nm("4:4")
    with pytest.raises(LthError, match=r"5:4 .*1 <= N < M"):
        check_nm(5, 4)
    with pytest.raises(LthError, match=r"0:4 .*1 <= N < M"):
        check_nm(0, 4)
    with pytest.raises(LthError, match=r"3:2 .*1 <= N < M"):
        nm_mask({"fc": torch.ones(2, 4)}, 3, 2)


def test_nm_indivisible_layers() -> None:
    assert nm_groups_fit((64, 32, 3, 3), 4) and not nm_groups_fit((64, 3, 3, 3), 4)
    assert nm_groups_fit((10, 8), 4) and not nm_groups_fit((10, 6), 4)
    assert nm_groups_fit((6, 8, 3, 3), 4)  # the output channels do not matter
    weights = {"stem": torch.randn(8, 3, 3, 3), "fc": torch.randn(10, 8)}
    with pytest.raises(LthError, match=r"'stem' has 3 input channels, not a multiple of M=4.*indivisible: dense"):
        nm_mask(weights, 2, 4)
    with pytest.raises(LthError, match=r"'fc' has 6 inputs, not a multiple of M=4"):
        nm_mask({"fc": torch.randn(10, 6)}, 2, 4)
    masks = nm_mask(weights, 2, 4, indivisible="dense")
    assert bool(masks["stem"].all()) and masks["stem"].shape == (8, 3, 3, 3)
    assert int(masks["fc"].sum()) == 40
    with pytest.raises(LthError, match=r"indivisible: 'skip' .*refuse, dense"):
        nm_mask(weights, 2, 4, indivisible="skip")
