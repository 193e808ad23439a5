"""`lth info`: say what a checkpoint, a mask, or a run folder holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from lth.errors import LthError
from lth.io import read_json


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
    import torch

    from lth.masks import describe

    payload = torch.load(path, map_location="cpu", weights_only=True)
    kind = payload.get("format") if isinstance(payload, dict) else None
    if kind == "lth-mask":
        return {"kind": "mask", **describe(payload["masks"])}
    if kind == "lth-checkpoint":
        return describe_checkpoint(payload)
    raise LthError(f"{path} is neither an lth checkpoint nor an lth mask")


def describe_folder(path: Path) -> dict[str, Any]:
    info: dict[str, Any] = {"kind": "run folder", "path": str(path)}
    if (path / "hparams.yaml").exists():
        info["hparams"] = yaml.safe_load((path / "hparams.yaml").read_text())
    if (path / "summary.json").exists():
        info["status"] = "finished"
        info["summary"] = read_json(path / "summary.json")
    elif (path / ".resume" / "state.pt").exists():
        import torch

        state = torch.load(path / ".resume" / "state.pt", map_location="cpu", weights_only=False)
        info["status"] = f"interrupted or running: {state['epoch']} epochs done; rerun to resume"
    if (path / "mask.json").exists():
        mask = read_json(path / "mask.json")
        info["mask"] = {key: mask[key] for key in ("sparsity", "kept", "total", "sha256", "collapsed_layers")}
    levels = sorted((p for p in path.glob("level*") if p.is_dir()), key=lambda p: int(p.name[5:]))
    if levels:
        info["levels"] = {p.name: read_json(p / "mask.json")["sparsity"] for p in levels if (p / "mask.json").exists()}
    info["files"] = sorted(p.name for p in path.iterdir() if not p.name.startswith("."))
    return info


def describe_path(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise LthError(f"{path} does not exist")
    return describe_folder(path) if path.is_dir() else describe_file(path)
