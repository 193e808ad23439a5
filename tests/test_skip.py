"""The architecture tweaks (skip connections, smooth activations) on a ticket: tiny widths and data."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from torch import nn

from lth import models
from lth.checkpoints import load_checkpoint, load_ticket_weights
from lth.cli import main
from lth.errors import LthError
from lth.flops import forward_flops
from lth.hparams import ModelHparams
from lth.info import describe_checkpoint, describe_path
from lth.io import read_json
from lth.masks import load_mask, prunable_names
from lth.models.activations import ACTIVATIONS
from lth.models.resnet import BasicBlock
from lth.models.skip import JUMP_WEIGHT, ConvJump, IdentityJump, jump_branches, jump_factory, jump_params
from lth.variants import VariantError, resolve

WIDTH = 4
TRAIN_WIDTH = 8
ARCHS = ("resnet18", "resnet34", "vgg16", "mobilenet")
# Jump branches: 2 per BasicBlock; one per VGG conv; one per MobileNet block.
JUMPS = {"resnet18": 2 * 8, "resnet34": 2 * 16, "vgg16": 13, "mobilenet": 13}
ACTIVATION_SITES = {"resnet18": 1 + 2 * 8, "resnet34": 1 + 2 * 16, "vgg16": 13, "mobilenet": 1 + 2 * 13}


pytestmark = pytest.mark.usefixtures("one_thread")


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", ARCHS)
@pytest.mark.parametrize("skip", ["conv1x1", "identity"])
def test_jump_branches_keep_output_shape(name: str, skip: str) -> None:
    model = models.build(name, 7, width=WIDTH, skip=skip)
    assert len(jump_branches(model)) == JUMPS[name]
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    assert model(torch.randn(2, 3, 36, 36)).shape == (2, 7)  # odd sizes after striding still line up


@pytest.mark.parametrize("name", ARCHS)
def test_conv1x1_branches_start_as_the_official_code(name: str) -> None:
    model = models.build(name, 7, width=WIDTH, skip="conv1x1")
    for branch in jump_branches(model).values():
        assert isinstance(branch, ConvJump)
        assert branch.conv.bias is None and branch.conv.kernel_size == (1, 1)
        assert torch.equal(branch.conv.weight, torch.full_like(branch.conv.weight, JUMP_WEIGHT))
        default = nn.BatchNorm2d(branch.bn.num_features)
        assert all(torch.equal(a, b) for a, b in zip(branch.bn.state_dict().values(), default.state_dict().values()))
        assert (branch.bn.eps, branch.bn.momentum, branch.bn.affine) == (default.eps, default.momentum, True)


@pytest.mark.parametrize("name", ARCHS)
@pytest.mark.parametrize("include_linear", [False, True])
def test_jump_branches_are_never_prunable(name: str, include_linear: bool) -> None:
    plain = models.build(name, 7, width=WIDTH)
    tweaked = models.build(name, 7, width=WIDTH, skip="conv1x1")
    assert prunable_names(tweaked, include_linear) == prunable_names(plain, include_linear)


@pytest.mark.parametrize("name", ARCHS)
def test_identity_form_adds_no_parameters(name: str) -> None:
    plain = models.build(name, 7, width=WIDTH)
    tweaked = models.build(name, 7, width=WIDTH, skip="identity")
    assert list(tweaked.state_dict()) == list(plain.state_dict())
    assert num_params(tweaked) == num_params(plain) and jump_params(tweaked) == 0


def test_identity_form_is_option_a_where_shapes_differ() -> None:
    x = torch.randn(2, 3, 5, 5)
    assert torch.equal(IdentityJump(3, 3, 1)(x), x)
    out = IdentityJump(3, 5, 2)(x)
    assert out.shape == (2, 5, 3, 3)
    assert torch.equal(out[:, :3], x[:, :, ::2, ::2]) and not out[:, 3:].any()
    with pytest.raises(LthError, match="model.skip: 'identity' cannot map 4 channels to 2"):
        IdentityJump(4, 2, 1)


def test_identity_form_that_would_shrink_channels_is_a_clean_cli_error(tmp_path, capsys) -> None:
    # VGG's first conv maps 3 input channels to `width`: at width 2 option A cannot follow it.
    code = main(
        [
            "init",
            "--out",
            str(tmp_path / "init.pt"),
            "--seed",
            "0",
            "--model.name",
            "vgg16",
            "--model.width",
            "2",
            "--model.skip",
            "identity",
            "--data.name",
            "digits",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "model.skip: 'identity' cannot map 3 channels to 2" in err and "Traceback" not in err
    assert not (tmp_path / "init.pt").exists()


def test_basic_block_follows_the_official_formula() -> None:
    torch.manual_seed(0)
    block = BasicBlock(4, 8, 2, nn.ReLU, jump_factory("conv1x1")).eval()
    for bn in [m for m in block.modules() if isinstance(m, nn.BatchNorm2d)]:  # non-trivial statistics
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 4, 6, 6)
    o1 = block.bn1(block.conv1(x)) + block.jump1.bn(block.jump1.conv(x))
    o2 = torch.relu(o1)
    o4 = block.bn2(block.conv2(o2)) + block.shortcut(x) + block.jump2.bn(block.jump2.conv(o2))
    assert torch.allclose(block(x), torch.relu(o4), atol=1e-6)


def test_resnet18_jump_cost_at_full_width() -> None:
    plain = models.build("resnet18", 100)
    tweaked = models.build("resnet18", 100, skip="conv1x1")
    conv_weights = sum(b.conv.weight.numel() for b in jump_branches(tweaked).values())
    prunable = sum(dict(plain.named_parameters())[n].numel() for n in prunable_names(plain))
    assert conv_weights == 1_220_608  # ~1.23M with their BatchNorms: ~11% of the prunable conv weights
    assert 0.10 < conv_weights / prunable < 0.12
    jump_bn_params = 2 * 4 * (64 + 128 + 256 + 512)  # weight and bias of 4 jump BNs per stage
    assert num_params(tweaked) - num_params(plain) == jump_params(tweaked) == conv_weights + jump_bn_params


@pytest.mark.parametrize("name", ARCHS)
@pytest.mark.parametrize("activation", ["relu", "swish"])
def test_each_activation_call_is_its_own_module_with_skip(name: str, activation: str) -> None:
    model = models.build(name, 7, width=WIDTH, activation=activation, skip="conv1x1")
    calls: dict[nn.Module, int] = {}
    acts = [m for m in model.modules() if isinstance(m, ACTIVATIONS[activation])]
    for act in acts:
        act.register_forward_hook(lambda module, inputs, output: calls.update({module: calls.get(module, 0) + 1}))
    model(torch.randn(2, 3, 32, 32))
    assert len(acts) == ACTIVATION_SITES[name]
    assert len(calls) == len(acts) and set(calls.values()) == {1}


@pytest.mark.parametrize("name", ARCHS)
def test_ticket_weights_load_and_only_jumps_start_fresh(name: str) -> None:
    ticket = models.build(name, 7, width=WIDTH).state_dict()
    model = models.build(name, 7, width=WIDTH, skip="conv1x1")
    load_ticket_weights(model, ticket)
    state = model.state_dict()
    assert all(torch.equal(state[key], value) for key, value in ticket.items())
    for branch in jump_branches(model).values():
        assert torch.equal(branch.conv.weight, torch.full_like(branch.conv.weight, JUMP_WEIGHT))


def test_ticket_weights_must_fit_but_for_the_jumps() -> None:
    ticket = models.build("resnet18", 7, width=WIDTH).state_dict()
    model = models.build("resnet18", 7, width=WIDTH, skip="conv1x1")
    with pytest.raises(LthError, match=r"unexpected: extra\.weight"):
        load_ticket_weights(model, {**ticket, "extra.weight": torch.zeros(1)})
    with pytest.raises(LthError, match=r"missing: layer1\.0\.conv1\.weight"):
        load_ticket_weights(model, {k: v for k, v in ticket.items() if k != "layer1.0.conv1.weight"})


def test_variant_parts_compose() -> None:
    assert resolve("at").settings == resolve("swish+skip").settings
    assert resolve("at").section("model") == {"skip": "conv1x1", "activation": "swish"}
    assert resolve("skip_identity+mish").section("model") == {"skip": "identity", "activation": "mish"}
    for conflicting in ("skip+skip_identity", "at+mish"):
        with pytest.raises(VariantError, match="which both set"):
            resolve(conflicting)


def test_forward_flops_dense_and_effective() -> None:
    plain = models.build("resnet18", 7, width=WIDTH)
    counts = forward_flops(plain, (3, 32, 32))
    with torch.no_grad():
        plain.conv1.weight[: WIDTH // 2] = 0  # half the stem's filters
    stem = 2 * WIDTH * 32 * 32 * 3 * 9  # 2 FLOPs per multiply-add
    assert forward_flops(plain, (3, 32, 32)) == {
        "forward_flops": counts["forward_flops"],
        "forward_flops_effective": counts["forward_flops"] - stem // 2,
    }
    assert plain.training  # the probe leaves the mode as it found it
    tweaked = forward_flops(models.build("resnet18", 7, width=WIDTH, skip="conv1x1"), (3, 32, 32))
    identity = forward_flops(models.build("resnet18", 7, width=WIDTH, skip="identity"), (3, 32, 32))
    assert tweaked["forward_flops"] > counts["forward_flops"] == identity["forward_flops"]


def test_old_checkpoints_without_skip_still_describe() -> None:
    model = models.build("vgg16", 7, width=WIDTH)
    payload = {
        "model": {"name": "vgg16", "width": WIDTH, "activation": "relu"},
        "num_classes": 7,
        "epoch": 0,
        "state_dict": model.state_dict(),
    }
    assert ModelHparams.from_dict(payload["model"]).skip == "none"
    assert describe_checkpoint(payload)["jump_params"] == 0


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module", params=ARCHS)
def ticket(request, tmp_path_factory) -> tuple[str, Path, Path]:
    """theta0 of a plain (ReLU, no jumps) model and a 50% magnitude mask drawn from it."""
    name, folder = request.param, tmp_path_factory.mktemp(request.param)
    common = ["--model.name", name, "--model.width", str(TRAIN_WIDTH), "--data.name", "digits"]
    assert main(["-q", "init", "--out", str(folder / "init.pt"), "--seed", "0", *common]) == 0
    assert (
        main(
            [
                "-q",
                "prune",
                "--weights",
                str(folder / "init.pt"),
                "--out",
                str(folder / "mask.pt"),
                "--prune.rate",
                "0.5",
            ]
        )
        == 0
    )
    return name, folder / "init.pt", folder / "mask.pt"


@pytest.mark.parametrize("variant", ["skip", "skip_identity", "swish", "mish", "at"])
def test_retraining_a_tweaked_ticket(ticket, variant: str, tmp_path: Path) -> None:
    name, init, mask_path = ticket
    overrides = resolve(variant).section("model")
    flags = [word for key, value in overrides.items() for word in (f"--model.{key}", value)]
    before = {path: sha256(path) for path in (mask_path, mask_path.with_suffix(".json"))}
    mask = load_mask(mask_path)
    out = tmp_path / "run"
    assert (
        main(
            [
                "-q",
                "train",
                "--init",
                str(init),
                "--mask",
                str(mask_path),
                "--out-dir",
                str(out),
                "--seed",
                "0",
                "--device",
                "cpu",
                "--threads",
                "1",
                "--data.name",
                "digits",
                "--data.subset_per_class",
                "6",
                "--train.epochs",
                "1",
                "--train.batch_size",
                "16",
                *flags,
                # 0.01: one epoch now runs at train.lr (no milestone before epoch 1), and 0.1 makes ResNet-34
                # with identity jumps diverge on 54 images (NaN validation loss, which stops the run)
                "--train.lr",
                "0.01",
            ]
        )
        == 0
    )

    assert {path: sha256(path) for path in before} == before  # the mask file is untouched
    final = load_checkpoint(out / "final.pt")
    assert {key: final["model"][key] for key in overrides} == overrides
    for key, keep in mask.items():
        assert not final["state_dict"][key][~keep].any(), key  # pruned weights stayed exactly zero
    summary = read_json(out / "summary.json")
    assert summary["sparsity"] == pytest.approx(read_json(mask_path.with_suffix(".json"))["sparsity"])

    plain = models.build(name, 10, width=TRAIN_WIDTH)
    tweaked = models.build(name, 10, width=TRAIN_WIDTH, **overrides)
    added = num_params(tweaked) - num_params(plain)
    assert summary["jump_params"] == added == jump_params(tweaked)
    assert (added > 0) == (overrides.get("skip") == "conv1x1")
    assert summary["total_params"] == num_params(tweaked)
    assert summary["nonzero_params"] == sum(
        int(t.count_nonzero()) for k, t in final["state_dict"].items() if k in dict(tweaked.named_parameters())
    )
    assert 0 < summary["forward_flops_effective"] < summary["forward_flops"]
    info = describe_path(out / "final.pt")
    assert (info["params"], info["nonzero_params"], info["jump_params"]) == (
        summary["total_params"],
        summary["nonzero_params"],
        summary["jump_params"],
    )
