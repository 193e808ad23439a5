"""`lth info`: say what a checkpoint, a mask, or a run folder holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from lth.artifacts import HPARAMS, MASK, MASK_SIDECAR, RESUME_STATE, SUMMARY
from lth.errors import LthError
from lth.io import load_verified
from lth.manifest import verify_run
from lth.yamlio import DuplicateKeyError, read_yaml


def describe_checkpoint(payload: dict[str, Any]) -> dict[str, Any]:
    from lth.checkpoints import build_model
    from lth.hparams import ModelHparams
    from lth.io import sha256_tensors
    from lth.masks import prunable_names
    from lth.models.skip import jump_params

    state = payload["state_dict"]
    model = build_model(ModelHparams.from_dict(payload["model"]), payload["num_classes"])
    conv_names = prunable_names(model, include_linear=False)
    layers = {}
    for name in conv_names:
        nonzero, total = int(state[name].count_nonzero()), state[name].numel()
        layers[name] = {"nonzero": nonzero, "total": total, "sparsity": 1 - nonzero / total}
    conv_total = sum(layer["total"] for layer in layers.values())
    conv_nonzero = sum(layer["nonzero"] for layer in layers.values())
    param_names = {name for name, _ in model.named_parameters()}
    params = {name: tensor for name, tensor in state.items() if name in param_names}
    return {
        "kind": "checkpoint",
        "model": payload["model"],
        "num_classes": payload["num_classes"],
        "epoch": payload["epoch"],
        "params": sum(t.numel() for t in params.values()),
        "nonzero_params": sum(int(t.count_nonzero()) for t in params.values()),
        "jump_params": jump_params(model),  # dense, in params and nonzero_params, not in conv_sparsity
        "conv_sparsity": 1 - conv_nonzero / conv_total,
        "sha256": sha256_tensors(state),
        "layers": layers,
    }


def describe_file(path: Path) -> dict[str, Any]:
    from lth.checkpoints import FORMAT as CHECKPOINT
    from lth.masks import FORMAT as MASK
    from lth.masks import describe, mask_from_payload

    payload = load_verified(
        path, (CHECKPOINT, MASK), "an lth checkpoint or an lth mask", "rerun the command that wrote it"
    )
    if payload["format"] == MASK:
        return {"kind": "mask", **describe(mask_from_payload(path, payload))}
    return describe_checkpoint(payload)


def describe_folder(path: Path) -> dict[str, Any]:
    """A run folder (its files verified against summary.json), an IMP/OMP level, or a chain of levels."""
    from lth.masks import load_mask, read_sidecar

    info: dict[str, Any] = {"kind": "run folder", "path": str(path)}
    if (path / SUMMARY).exists():
        info["status"] = "finished"
        info["summary"] = verify_run(path, files=True)  # first: hparams.yaml below is then known good
    elif (path / RESUME_STATE).exists():
        from lth.store import load_resume_state

        state = load_resume_state(path)
        info["status"] = f"interrupted or running: {state['epoch']} epochs done; rerun to resume"
    if (path / HPARAMS).exists():
        try:
            info["hparams"] = read_yaml(path / HPARAMS)
        except DuplicateKeyError:
            raise  # its message already names the file, the key and both lines
        except (OSError, ValueError, yaml.YAMLError) as error:
            raise LthError(
                f"{path / HPARAMS} cannot be read ({type(error).__name__}); retrain the run with --force"
            ) from None
    if (path / MASK_SIDECAR).exists():
        load_mask(path / MASK)  # the mask and its sidecar checked against each other
        mask = read_sidecar(path / MASK)
        info["mask"] = {key: mask[key] for key in ("sparsity", "kept", "total", "sha256", "collapsed_layers")}
    levels = sorted((p for p in path.glob("level*") if p.is_dir()), key=lambda p: int(p.name[5:]))
    if levels:
        info["levels"] = {p.name: read_sidecar(p / MASK)["sparsity"] for p in levels if (p / MASK_SIDECAR).exists()}
    info["files"] = sorted(p.name for p in path.iterdir() if not p.name.startswith("."))
    return info


def describe_path(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise LthError(f"{path} does not exist")
    return describe_folder(path) if path.is_dir() else describe_file(path)
