"""Typed hyperparameters: unknown keys, bad values, precedence of sources, the LR schedule."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from lth.errors import LthError
from lth.hparams import SECTIONS, DataHparams, HparamError, ModelHparams, PruneHparams, TrainHparams


def test_unknown_key_names_key_and_lists_allowed_keys():
    with pytest.raises(HparamError) as info:
        ModelHparams.from_dict({"widht": 8})
    message = str(info.value)
    assert message.startswith("model.widht: unknown key")
    for allowed in ("name", "width", "activation"):
        assert allowed in message.split("allowed keys in 'model':")[1]


def test_hparam_error_is_a_user_error():
    assert issubclass(HparamError, LthError) and issubclass(HparamError, ValueError)


@pytest.mark.parametrize(
    ("cls", "data", "key", "value", "allowed"),
    [
        (TrainHparams, {"lr": -1}, "train.lr", "-1", "> 0"),
        (TrainHparams, {"lr": 0}, "train.lr", "0", "> 0"),
        (TrainHparams, {"milestones": [0.5, 1.5]}, "train.milestones", "1.5", "< 1"),
        (TrainHparams, {"precision": "fp16"}, "train.precision", "'fp16'", "fp32, bf16"),
        (TrainHparams, {"epochs": 2.0}, "train.epochs", "2.0", "integer"),
        (TrainHparams, {"lr": None}, "train.lr", "None", "number"),
        (PruneHparams, {"rate": 1.5}, "prune.rate", "1.5", "< 1"),
        (PruneHparams, {"scope": "foo"}, "prune.scope", "'foo'", "global, layerwise"),
        (PruneHparams, {"include_linear": "true"}, "prune.include_linear", "'true'", "true or false"),
        (ModelHparams, {"name": "nope"}, "model.name", "'nope'", "resnet18"),
        (ModelHparams, {"width": 4.5}, "model.width", "4.5", "integer"),
        (ModelHparams, {"width": True}, "model.width", "True", "integer"),
        (ModelHparams, {"width": 0}, "model.width", "0", ">= 1"),
        (DataHparams, {"subset_per_class": 0}, "data.subset_per_class", "0", ">= 1"),
        (DataHparams, {"val_fraction": 1.0}, "data.val_fraction", "1.0", "< 1"),
        (DataHparams, {"download": 1}, "data.download", "1", "true or false"),
    ],
)
def test_bad_value_names_key_value_and_allowed(cls, data, key, value, allowed):
    with pytest.raises(HparamError) as info:
        cls.from_dict(data)
    message = str(info.value)
    assert message.startswith(f"{key}: ")
    assert value in message.split(":", 1)[1]
    assert "not allowed" in message and allowed in message


def test_model_name_error_lists_every_model():
    from lth import models

    with pytest.raises(HparamError) as info:
        ModelHparams.from_dict({"name": "nope"})
    assert all(name in str(info.value) for name in models.names())


def test_good_values_are_kept_and_ints_become_floats():
    hp = TrainHparams.from_dict({"lr": 1, "milestones": [0.25, 0.5], "epochs": 10})
    assert hp.lr == 1.0 and isinstance(hp.lr, float)
    assert hp.milestones == (0.25, 0.5) and hp.epochs == 10
    assert DataHparams.from_dict({"subset_per_class": None}).subset_per_class is None
    assert TrainHparams.from_dict(None) == TrainHparams()


def test_replace_validates_and_round_trips():
    hp = TrainHparams().replace(lr=0.2)
    assert hp.lr == 0.2 and TrainHparams.from_dict(hp.to_dict()) == hp
    with pytest.raises(HparamError, match="train.lr"):
        hp.replace(lr=-0.1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        hp.lr = 0.3  # type: ignore[misc]


def _train_flags(*flags: str) -> argparse.Namespace:
    from lth.cli import build_parser

    return build_parser().parse_args(["train", "--init", "x.pt", "--out-dir", "run", "--seed", "0", *flags])


def test_flags_override_config_override_defaults():
    config = {"train": {"lr": 0.05, "epochs": 10}, "model": {"width": 16}}
    args = _train_flags("--train.lr", "0.2", "--train.milestones", "[0.25, 0.5]", "--threads", "1")
    train = TrainHparams.from_sources(config, args)
    assert train.lr == 0.2  # flag beats config
    assert train.epochs == 10  # config beats default (a flag not given must not override it)
    assert train.milestones == (0.25, 0.5)  # flags are parsed as YAML
    assert train.batch_size == TrainHparams().batch_size == 128  # default
    model = ModelHparams.from_sources(config, args)
    assert model.width == 16 and model.name == "resnet18"
    assert PruneHparams.from_sources(config, args) == PruneHparams()


def test_from_sources_accepts_plain_namespace_and_checks_flag_values():
    args = argparse.Namespace(**{"prune.rate": "0.5", "prune.scope": "layerwise", "seed": 3})
    assert PruneHparams.from_sources(None, args) == PruneHparams(rate=0.5, scope="layerwise")
    with pytest.raises(HparamError, match=r"prune\.rate: 1\.5 is not allowed"):
        PruneHparams.from_sources({"prune": {"rate": 0.5}}, argparse.Namespace(**{"prune.rate": "1.5"}))
    with pytest.raises(HparamError, match=r"model\.width: 4\.0 is not allowed; expected an integer"):
        ModelHparams.from_sources(None, argparse.Namespace(**{"model.width": "4.0"}))


@pytest.mark.parametrize("root", ["/data/run #2", "/data/a: b", "/data/[x]", "/data/y'q$x;y", "yes"])
def test_a_text_flag_is_taken_as_typed_not_read_as_yaml(root):
    """A folder named `run #2` is not `run` (YAML would read the rest as a comment), `a: b` is not a
    mapping and `yes` not a boolean: the rules pass paths through these flags."""
    flags = argparse.Namespace(**{"data.root": root, "data.name": "npz", "data.subset_per_class": "12"})
    assert DataHparams.from_sources(None, flags) == DataHparams(name="npz", root=root, subset_per_class=12)
    assert DataHparams.from_sources(None, argparse.Namespace(**{"data.root": "null"})).root is None


def test_scientific_notation_flag_is_a_number():
    args = _train_flags("--train.lr", "1e-3", "--train.weight_decay", "5e-4")
    train = TrainHparams.from_sources(None, args)
    assert train.lr == 1e-3 and train.weight_decay == 5e-4


def test_lr_at_paper_schedule():
    hp = TrainHparams(epochs=180)
    assert hp.milestone_epochs() == [90, 135]
    expected = {0: 0.1, 89: 0.1, 90: 0.01, 134: 0.01, 135: 0.001, 179: 0.001}
    for epoch, lr in expected.items():
        assert hp.lr_at(epoch) == pytest.approx(lr, rel=1e-12, abs=0), epoch
    assert hp.lr_at(0) == 0.1


def test_lr_at_rounds_milestones_and_sorts_them():
    hp = TrainHparams(epochs=4, lr=1.0, milestones=(0.75, 0.5), gamma=0.5)
    assert hp.milestone_epochs() == [2, 3]
    assert [hp.lr_at(e) for e in range(4)] == [1.0, 1.0, 0.5, 0.25]


# The fields of each section when the run names were pinned (tests/data/planned_runs.json): they enter a
# run's hash as they always did. Never add to this list: a new field passes hashed="unless_default".
PINNED_FIELDS = {
    "model": {"name", "width", "activation", "skip"},
    "data": {"name", "root", "download", "subset_per_class", "val_fraction"},
    "train": {
        "epochs",
        "batch_size",
        "lr",
        "momentum",
        "nesterov",
        "weight_decay",
        "milestones",
        "gamma",
        "precision",
        "compile",
        "label_smoothing",
        "label_smoothing_form",
        "kd_alpha",
        "kd_temperature",
        "kd_reduction",
    },
    "prune": {"rate", "scope", "include_linear"},
    "gradinit": {
        "enabled",
        "algorithm",
        "normalize_grad",
        "eta",
        "gamma",
        "lr",
        "min_scale",
        "iterations",
        "grad_clip",
        "batch_size",
        "weights",
    },
}


@pytest.mark.parametrize("cls", SECTIONS, ids=lambda cls: cls.section)
def test_every_setting_added_since_the_names_were_pinned_keeps_them_at_its_default(cls):
    new = [field.name for field in dataclasses.fields(cls) if field.name not in PINNED_FIELDS[cls.section]]
    unmarked = [name for name in new if cls.__dataclass_fields__[name].metadata["hashed"] == "always"]
    assert unmarked == [], f"{cls.section}: pass hashed='unless_default' (or 'never') to hp() for {unmarked}"


def test_identity_drops_what_changes_nothing():
    train = TrainHparams()
    assert {"compile", "label_smoothing_form", "kd_temperature", "kd_reduction"}.isdisjoint(train.identity())
    assert train.replace(compile=True).identity() == train.identity()
    assert "label_smoothing_form" in train.replace(label_smoothing=0.1).identity()
    assert {"kd_temperature", "kd_reduction"} <= set(train.replace(kd_alpha=0.5).identity())
    assert ModelHparams().identity() == ModelHparams().to_dict()
    assert TrainHparams.what_it_computes(train.to_dict()) == {
        k: v for k, v in train.to_dict().items() if k != "compile"
    }
