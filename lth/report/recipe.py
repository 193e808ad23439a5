"""An experiment's training recipe in words, for the report's captions and landing page.

A figure's caption names what was compared (model, data, epochs, seeds, variants); a reviewer also
needs how it was trained: the optimizer and its schedule, the batch size, and the settings of the
tweaks the variants turn on (label smoothing, distillation, GradInit, rewinding). Only what the
experiment's runs use is said: GradInit's settings appear when a variant runs GradInit. Torch-free:
the Snakefile calls it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lth.hparams import TrainHparams
from lth.variants import resolve


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _variants_with(config: Mapping[str, Any], key: str) -> list[str]:
    """The experiment's variants and dense baselines (`dense+<name>`) whose parts set `key`."""
    names = [*config["variants"], *(f"dense+{name}" for name in config["dense_variants"])]
    sources = [*config["variants"], *config["dense_variants"]]
    return [name for name, source in zip(names, sources) if key in resolve(source).settings]


def optimizer_text(train: Mapping[str, Any]) -> str:
    """SGD, its learning rate, schedule, batch size and weight decay, e.g. `SGD (momentum 0.9) for 180
    epochs, learning rate 0.1, x0.1 after epochs 90 and 135, batch size 128, weight decay 0.0002`."""
    hparams = TrainHparams.from_dict(train)
    # A drop at or past the last epoch never applies (milestone 0.75 of 2 epochs is epoch 2).
    drops = [str(epoch) for epoch in dict.fromkeys(hparams.milestone_epochs()) if epoch < hparams.epochs]
    schedule = f", x{_number(hparams.gamma)} after epoch{'s' if len(drops) > 1 else ''} {_join(drops)}" if drops else ""
    momentum = f"momentum {_number(hparams.momentum)}{', Nesterov' if hparams.nesterov else ''}"
    precision = "" if hparams.precision == "fp32" else f", {hparams.precision} autocast"
    epochs = f"{hparams.epochs} epoch{'s' if hparams.epochs != 1 else ''}"
    return (
        f"SGD ({momentum}) for {epochs}, learning rate {_number(hparams.lr)}{schedule}, "
        f"batch size {hparams.batch_size}, weight decay {_number(hparams.weight_decay)}{precision}"
    )


def gradinit_text(gradinit: Mapping[str, Any]) -> str:
    """GradInit's settings (lth.hparams.GradinitHparams), in the order its docs list them."""
    g = gradinit
    normalized = ", normalized gradient" if g["algorithm"] == "sgd" and g["normalize_grad"] else ""
    return (
        f"GradInit ({g['algorithm']}{normalized}, {g['iterations']} iterations of batch size {g['batch_size']}, "
        f"eta {_number(g['eta'])}, gamma {_number(g['gamma'])}, learning rate {_number(g['lr'])}, "
        f"min scale {_number(g['min_scale'])}, grad clip {_number(g['grad_clip'])}, rescaling the "
        f"{'dense starting weights before the mask' if g['weights'] == 'dense' else 'masked weights'})"
    )


def recipe_text(config: Mapping[str, Any]) -> str:
    """The training recipe of a validated experiment config (the schema's defaults filled in), as
    one sentence: optimizer and schedule, the data split, then each tweak the variants use."""
    train, prune = config["train"], config["prune"]
    parts = [f"Training: {optimizer_text(train)}"]
    data = config["data"]
    subset = f", {data['subset_per_class']} training images per class" if data["subset_per_class"] else ""
    parts.append(f"validation {_number(100 * data['val_fraction'])}% of the training set{subset}")
    if train["label_smoothing"] > 0:
        parts.append(f"label smoothing {_number(train['label_smoothing'])} ({train['label_smoothing_form']} form)")
    smoothing = _variants_with(config, "train.label_smoothing")
    if smoothing:
        value = resolve(smoothing[0].removeprefix("dense+")).settings["train.label_smoothing"]
        parts.append(f"{', '.join(smoothing)}: label smoothing {_number(value)} ({train['label_smoothing_form']} form)")
    distilled = _variants_with(config, "train.kd_alpha")
    if distilled:
        alpha = resolve(distilled[0].removeprefix("dense+")).settings["train.kd_alpha"]
        parts.append(
            f"{', '.join(distilled)}: distillation from the dense network, alpha {_number(alpha)}, "
            f"temperature {_number(train['kd_temperature'])}, {train['kd_reduction']} reduction"
        )
    gradinit = _variants_with(config, "gradinit.enabled")
    if gradinit:
        parts.append(f"{', '.join(gradinit)}: {gradinit_text(config['gradinit'])}")
    rewound = [name for name in config["variants"] if resolve(name).start == "rewind"]
    if rewound:
        parts.append(f"{', '.join(rewound)}: weights rewound to dense epoch {config['rewind_epoch']}")
    reinit = [name for name in config["variants"] if resolve(name).start == "reinit"]
    if reinit:
        parts.append(f"{', '.join(reinit)}: fresh weights of seed + {config['reinit_seed_offset']}")
    magnitude = any(
        entry == "magnitude" or (isinstance(entry, Mapping) and entry.get("source") == "magnitude")
        for entry in config["masks"]
    )
    if magnitude and prune["method"] == "imp":
        start = "theta0" if prune["rewind_epoch"] == 0 else f"dense epoch {prune['rewind_epoch']}"
        scope = f"{prune['scope']}{', linear layers included' if prune['include_linear'] else ''}"
        parts.append(f"IMP rounds re-train from {start}, pruning {_number(prune['rate'])} per round ({scope})")
    return "; ".join(parts) + "."
