"""Mask sources (lth/mask_sources.py): random masks, SNIP, GraSP and SynFlow scores against values
computed by hand on a two-layer network, and the user's own mask files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lth.errors import LthError
from lth.mask_sources import (
    grasp_scores,
    load_user_mask,
    random_mask,
    snip_scores,
    synflow_mask,
    synflow_scores,
)
from lth.masks import keep_top

NAMES = ["0.weight", "1.weight"]


def two_layer() -> nn.Sequential:
    """z = W2 (W1 x): no bias, no activation, so every gradient has a closed form."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4, bias=False), nn.Linear(4, 2, bias=False)).double()
    with torch.no_grad():  # distinct magnitudes, some negative: ties and signs cannot hide a mistake
        model[0].weight.copy_(torch.linspace(-1.1, 1.3, 12, dtype=torch.float64).reshape(4, 3))
        model[1].weight.copy_(torch.tensor([[0.5, -0.7, 0.2, 0.9], [-0.3, 0.8, -0.6, 0.1]], dtype=torch.float64))
    return model


X = torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.4, -1.0]], dtype=torch.float64)
Y = torch.tensor([1, 0])


def gradients(w1: torch.Tensor, w2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy gradients by hand: dL/dz = (softmax(z) - onehot(y)) / n."""
    h = X @ w1.T
    z = h @ w2.T
    dz = (torch.softmax(z, 1) - nn.functional.one_hot(Y, 2)) / len(Y)
    return (dz @ w2).T @ X, dz.T @ h


def test_snip_is_the_connection_sensitivity():
    model = two_layer()
    w1, w2 = model[0].weight.detach(), model[1].weight.detach()
    g1, g2 = gradients(w1, w2)
    scores = snip_scores(model, NAMES, [(X, Y)])
    torch.testing.assert_close(scores["0.weight"], (g1 * w1).abs())
    torch.testing.assert_close(scores["1.weight"], (g2 * w2).abs())


def test_grasp_is_the_weights_times_the_hessian_gradient_product():
    """H g by central differences of the hand-written gradient: independent of autograd."""
    model = two_layer()
    w1, w2 = model[0].weight.detach(), model[1].weight.detach()
    g1, g2 = gradients(w1, w2)
    eps = 1e-5
    plus, minus = gradients(w1 + eps * g1, w2 + eps * g2), gradients(w1 - eps * g1, w2 - eps * g2)
    hg1, hg2 = ((p - m) / (2 * eps) for p, m in zip(plus, minus))
    scores = grasp_scores(model, NAMES, [(X, Y)])
    torch.testing.assert_close(scores["0.weight"], w1 * hg1, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(scores["1.weight"], w2 * hg2, rtol=1e-6, atol=1e-9)


def test_synflow_is_the_synaptic_flow_of_the_absolute_network():
    """R = 1' |W2| |W1| 1: dR/dW2[i, j] = (|W1| 1)[j], dR/dW1[j, k] = (1' |W2|)[j]."""
    model = two_layer()
    a1, a2 = model[0].weight.detach().abs(), model[1].weight.detach().abs()
    expected1 = a1 * a2.sum(0).unsqueeze(1)
    expected2 = a2 * a1.sum(1).unsqueeze(0)
    linear = two_layer()
    with torch.no_grad():
        for p in linear.parameters():
            p.abs_()
    scores = synflow_scores(linear, NAMES, (3,))
    torch.testing.assert_close(scores["0.weight"], expected1)
    torch.testing.assert_close(scores["1.weight"], expected2)
    # One round keeps the top scores; the input model is left as it was.
    before = [p.clone() for p in model.parameters()]
    mask = synflow_mask(model, NAMES, 5, (3,), rounds=1)
    top = keep_top({"0.weight": expected1, "1.weight": expected2}, 5)
    assert all(torch.equal(mask[name], top[name]) for name in NAMES)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_synflow_prunes_iteratively_to_the_exact_count():
    model = two_layer()
    mask = synflow_mask(model, NAMES, 6, (3,), rounds=10)
    assert sum(int(keep.sum()) for keep in mask.values()) == 6


def test_keep_top_keeps_exactly_the_highest_scores_and_breaks_ties_by_position():
    scores = {"a": torch.tensor([3.0, 1.0, 2.0]), "b": torch.tensor([[2.0, 5.0]])}
    mask = keep_top(scores, 3)
    assert mask["a"].tolist() == [True, False, True] and mask["b"].tolist() == [[False, True]]
    # "a"'s 2.0 comes before "b"'s 2.0
    mask = keep_top(scores, 2, mask={"a": torch.tensor([False, True, True]), "b": torch.tensor([[True, False]])})
    assert mask["a"].tolist() == [False, False, True] and mask["b"].tolist() == [[True, False]]
    with pytest.raises(LthError, match="cannot keep 4 weights out of 3"):
        keep_top(scores, 4, mask={"a": torch.tensor([True, True, True]), "b": torch.tensor([[False, False]])})


def test_keep_top_equals_a_stable_descending_sort_with_many_ties():
    generator = torch.Generator().manual_seed(0)
    scores = {
        "a": torch.randint(0, 5, (7, 9), generator=generator).double(),
        "b": torch.randint(0, 5, (40,), generator=generator).double(),
    }
    flat = torch.cat([scores["a"].reshape(-1), scores["b"]])
    for count in (0, 1, 17, 50, 103):
        expected = torch.zeros(flat.numel(), dtype=torch.bool)
        expected[torch.sort(-flat, stable=True).indices[:count]] = True
        mask = keep_top(scores, count)
        assert torch.equal(torch.cat([mask["a"].reshape(-1), mask["b"]]), expected), count


SHAPES = {"conv1.weight": torch.Size([8, 3, 3, 3]), "conv2.weight": torch.Size([16, 8, 3, 3])}


def test_random_masks_keep_exact_counts_and_follow_their_seed():
    mask = random_mask(SHAPES, 300, seed=1)
    assert sum(int(keep.sum()) for keep in mask.values()) == 300
    again, other = random_mask(SHAPES, 300, seed=1), random_mask(SHAPES, 300, seed=2)
    assert all(torch.equal(mask[name], again[name]) for name in SHAPES)
    assert not all(torch.equal(mask[name], other[name]) for name in SHAPES)


def test_random_like_keeps_each_layers_count_of_the_reference():
    reference = {
        "conv1.weight": torch.zeros(SHAPES["conv1.weight"], dtype=torch.bool),
        "conv2.weight": torch.zeros(SHAPES["conv2.weight"], dtype=torch.bool),
    }
    reference["conv1.weight"].view(-1)[:200] = True
    reference["conv2.weight"].view(-1)[:17] = True
    mask = random_mask(SHAPES, 217, seed=0, like=reference)
    assert int(mask["conv1.weight"].sum()) == 200 and int(mask["conv2.weight"].sum()) == 17
    assert not torch.equal(mask["conv2.weight"], reference["conv2.weight"])


PRUNABLE = {"0.weight": torch.Size([4, 3]), "1.weight": torch.Size([2, 4])}
ALL = [*PRUNABLE, "0.bias"]


def good_mask() -> dict[str, torch.Tensor]:
    return {name: torch.rand(shape) > 0.5 for name, shape in PRUNABLE.items()}


def test_a_users_mask_file_loads_from_pt_and_npz(tmp_path):
    mask = good_mask()
    torch.save(mask, tmp_path / "m.pt")
    np.savez(tmp_path / "m.npz", **{name: keep.numpy() for name, keep in mask.items()})
    for path in (tmp_path / "m.pt", tmp_path / "m.npz"):
        loaded, record = load_user_mask(path, PRUNABLE, ALL)
        assert all(torch.equal(loaded[name], mask[name]) for name in mask)
        assert record["file"] == str(path) and len(record["sha256"]) == 64


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: {**m, "2.weight": m["0.weight"]}, "'2.weight' is not a parameter of this model"),
        (lambda m: {**m, "0.weight": m["0.weight"][:2]}, r"'0.weight' has shape \(2, 3\), the model's is \(4, 3\)"),
        (lambda m: {**m, "1.weight": m["1.weight"].float()}, "'1.weight' holds torch.float32, not booleans"),
        (lambda m: {**m, "0.bias": torch.ones(4, dtype=torch.bool)}, "'0.bias' is not a prunable tensor"),
        (lambda m: {}, "non-empty mapping"),
    ],
)
def test_every_malformed_mask_file_names_the_file_and_the_tensor(tmp_path, change, message):
    path = tmp_path / "bad.pt"
    torch.save(change(good_mask()), path)
    with pytest.raises(LthError, match=message) as error:
        load_user_mask(path, PRUNABLE, ALL)
    assert str(path) in str(error.value)


def test_a_missing_or_foreign_mask_file_is_a_clear_error(tmp_path):
    with pytest.raises(LthError, match="not found"):
        load_user_mask(tmp_path / "level3.pt", PRUNABLE, ALL)
    (tmp_path / "m.txt").write_text("0 1 1")
    with pytest.raises(LthError, match=r"expected \.pt or \.npz"):
        load_user_mask(tmp_path / "m.txt", PRUNABLE, ALL)
    (tmp_path / "m.pt").write_text("not a torch file")
    with pytest.raises(LthError, match="could not be read"):
        load_user_mask(tmp_path / "m.pt", PRUNABLE, ALL)


# --- `lth prune --method` ------------------------------------------------------------------


@pytest.fixture(scope="module")
def theta0(tmp_path_factory):
    from lth.cli import main

    folder = tmp_path_factory.mktemp("sources")
    assert (
        main(
            [
                "-q",
                "init",
                "--out",
                str(folder / "init.pt"),
                "--seed",
                "0",
                "--model.width",
                "4",
                "--data.name",
                "digits",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "-q",
                "prune",
                "--weights",
                str(folder / "init.pt"),
                "--out",
                str(folder / "magnitude.pt"),
                "--rounds",
                "3",
            ]
        )
        == 0
    )
    return folder


def draw(folder, name, *flags) -> int:
    from lth.cli import main

    return main(
        [
            "-q",
            "prune",
            "--weights",
            str(folder / "init.pt"),
            "--out",
            str(folder / f"{name}.pt"),
            "--rounds",
            "3",
            "--data.name",
            "digits",
            *flags,
        ]
    )


@pytest.mark.parametrize(
    "method, flags",
    [
        ("random", []),
        ("snip", ["--batch-size", "32"]),
        ("grasp", ["--batch-size", "32"]),
        ("synflow", ["--synflow-rounds", "5"]),
    ],
)
def test_every_source_keeps_the_levels_count_and_records_how(theta0, method, flags):
    from lth.masks import read_sidecar

    assert draw(theta0, method, "--method", method, *flags) == 0
    record, reference = read_sidecar(theta0 / f"{method}.pt"), read_sidecar(theta0 / "magnitude.pt")
    assert record["kept"] == reference["kept"] and record["total"] == reference["total"]
    assert record["provenance"]["method"] == method and record["provenance"]["seconds"] >= 0
    assert record["sha256"] != reference["sha256"]


def test_a_random_mask_follows_its_seed_and_like_keeps_layer_counts(theta0):
    from lth.masks import read_sidecar

    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        assert draw(theta0, name, "--method", "random", "--seed", seed) == 0
    a, b, c = (read_sidecar(theta0 / f"{name}.pt") for name in "abc")
    assert a["sha256"] == b["sha256"] != c["sha256"]
    assert draw(theta0, "like", "--method", "random", "--like", str(theta0 / "magnitude.pt")) == 0
    like, reference = read_sidecar(theta0 / "like.pt"), read_sidecar(theta0 / "magnitude.pt")
    assert {k: v["kept"] for k, v in like["layers"].items()} == {k: v["kept"] for k, v in reference["layers"].items()}
    assert like["sha256"] != reference["sha256"]


def test_a_users_file_becomes_the_same_mask(theta0):
    from lth.masks import load_mask, read_sidecar

    mask = load_mask(theta0 / "magnitude.pt")
    np.savez(theta0 / "mine.npz", **{name: keep.numpy() for name, keep in mask.items()})
    assert draw(theta0, "mine", "--method", "file", "--file", str(theta0 / "mine.npz")) == 0
    record = read_sidecar(theta0 / "mine.pt")
    assert record["sha256"] == read_sidecar(theta0 / "magnitude.pt")["sha256"]
    assert record["provenance"]["file"] == str(theta0 / "mine.npz") and len(record["provenance"]["sha256"]) == 64


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--method", "snip", "--mask", "{folder}/magnitude.pt"], "only --method magnitude prunes an existing mask"),
        (["--method", "file"], "--file: the user's mask file"),
        (["--method", "random", "--file", "x.pt"], "--file: only read with --method file"),
        (["--method", "snip", "--like", "{folder}/magnitude.pt"], "--like: only read with --method random"),
        (["--method", "file", "--file", "{folder}/missing/level3.pt"], "missing/level3.pt not found"),
        (["--method", "rigl"], "holds no mask; --method rigl reads the final.pt of a run trained with"),
        (["--method", "nm", "--nm-n", "4"], "N:M sparsity 4:4 is not allowed: N and M must be whole numbers"),
        (["--method", "nm"], "layer 'conv1.weight' has 3 input channels, not a multiple of M=4"),
    ],
)
def test_bad_source_options_are_refused_before_any_work(theta0, capsys, flags, message):
    assert draw(theta0, "bad", *[flag.format(folder=theta0) for flag in flags]) == 2
    assert message in capsys.readouterr().err
    assert not (theta0 / "bad.pt").exists()


def test_an_n_m_mask_keeps_n_of_every_m_by_magnitude(theta0):
    from lth.checkpoints import load_checkpoint
    from lth.masks import load_mask, read_sidecar

    assert draw(theta0, "nm", "--method", "nm", "--nm-n", "1", "--nm-m", "4", "--nm-indivisible", "dense") == 0
    mask, weights = load_mask(theta0 / "nm.pt"), load_checkpoint(theta0 / "init.pt")["state_dict"]
    assert read_sidecar(theta0 / "nm.pt")["provenance"]["n"] == 1
    for name, keep in mask.items():
        if keep.shape[1] % 4:  # the stem reads three channels: kept dense
            assert keep.all()
            continue
        groups = keep.movedim(1, -1).reshape(-1, 4)
        magnitudes = weights[name].abs().movedim(1, -1).reshape(-1, 4)
        assert (groups.sum(1) == 1).all()
        assert magnitudes[groups].equal(magnitudes.max(1).values)  # the largest of each group


def test_a_sparse_trainings_final_mask_is_exported_as_it_was(theta0, tmp_path):
    from lth.checkpoints import load_checkpoint
    from lth.cli import main
    from lth.masks import load_mask

    run = tmp_path / "rigl"
    argv = ["-q", "train", "--init", str(theta0 / "init.pt"), "--out-dir", str(run), "--seed", "0", "--threads", "1"]
    argv += ["--model.width", "4", "--data.name", "digits", "--data.subset_per_class", "10", "--train.epochs", "1"]
    assert main([*argv, "--sparse-training", "rigl", "--rigl.sparsity", "0.8", "--rigl.update_every", "1"]) == 0
    assert (
        main(["-q", "prune", "--method", "rigl", "--weights", str(run / "final.pt"), "--out", str(tmp_path / "m.pt")])
        == 0
    )
    final = load_checkpoint(run / "final.pt")["mask"]
    exported = load_mask(tmp_path / "m.pt")
    assert exported.keys() == final.keys() and all(exported[name].equal(final[name]) for name in final)
    assert 1 - sum(int(k.sum()) for k in final.values()) / sum(k.numel() for k in final.values()) == pytest.approx(
        0.8, abs=1e-4
    )


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--sparse-training", "rigl", "--mask", "{folder}/magnitude.pt"], "--mask: not with --sparse-training rigl"),
        (["--rigl.sparsity", "0.5"], "--rigl.sparsity: only read with --sparse-training rigl, not without it"),
        (["--sparse-training", "set", "--rigl.sparsity", "0.5"], "only read with --sparse-training rigl, not set"),
        (["--sparse-training", "gmp", "--gmp.start", "0.9"], "gmp.end: 0.75 is not allowed; must be > gmp.start=0.9"),
    ],
)
def test_bad_sparse_training_options_are_refused_before_any_work(theta0, tmp_path, capsys, flags, message):
    from lth.cli import main

    argv = ["-q", "train", "--init", str(theta0 / "init.pt"), "--out-dir", str(tmp_path / "run"), "--seed", "0"]
    assert main([*argv, "--data.name", "digits", *[flag.format(folder=theta0) for flag in flags]]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
