"""End to end: the training-recipe variants (GradInit, label smoothing, distillation) as config lines."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from workflow_helpers import snakemake, write_config

pytestmark = pytest.mark.workflow

VARIANTS = ["trt", "at+trt", "at+trt+rewind", "kd"]


@pytest.fixture(scope="module")
def trt(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("workflow-trt")
    config = {
        "experiment": "trt",
        "seeds": [0],
        "threads": 1,
        "device": "cpu",
        "model": {"name": "resnet18", "width": 8},
        "data": {"name": "digits", "subset_per_class": 30},
        "train": {"epochs": 2, "batch_size": 32},
        "gradinit": {"iterations": 3, "batch_size": 32},
        "prune": {"method": "imp", "levels": 1},
        "save_epochs": [1],
        "rewind_epoch": 1,
        "variants": VARIANTS,
        "resources": {"train": {"mem_mb": 1000, "runtime": 10, "gpu": 1}},
    }
    snakemake(workdir, write_config(workdir, "trt", config))
    return workdir


def runs(workdir: Path) -> dict[str, Path]:
    table = pd.read_csv(workdir / "results" / "trt" / "summary.csv")
    return {row.variant: workdir / row.run for row in table.itertuples()}  # run paths are relative to workdir


def test_summary_gains_a_row_per_variant(trt: Path):
    table = pd.read_csv(trt / "results" / "trt" / "summary.csv")
    assert sorted(table["variant"]) == sorted(["dense", *VARIANTS])
    rows = table.set_index("variant")
    assert rows.loc[VARIANTS, "sparsity"].tolist() == pytest.approx([0.2] * len(VARIANTS), abs=1e-3)
    assert rows.loc["at+trt+rewind", "epochs_trained"] == 1


def test_trt_runs_gradinit_and_label_smoothing_and_keep_the_mask(trt: Path):
    folders = runs(trt)
    mask = torch.load(next((trt / "results" / "runs").glob("imp-*/level1/mask.pt")), weights_only=True)["masks"]
    for variant in ("trt", "at+trt", "at+trt+rewind"):
        summary = json.loads((folders[variant] / "summary.json").read_text())
        assert summary["gradinit"] is True
        assert (summary["label_smoothing"], summary["label_smoothing_form"]) == (0.1, "official")
        saved = json.loads((folders[variant] / "gradinit.json").read_text())
        assert len(saved["history"]) == 3 and saved["alphas"]
        weights = torch.load(folders[variant] / "final.pt", weights_only=True)["state_dict"]
        assert all(torch.all(weights[name][~keep] == 0) for name, keep in mask.items())
    assert not (folders["kd"] / "gradinit.json").exists()


def test_kd_distils_from_the_dense_run_of_the_same_seed(trt: Path):
    folders = runs(trt)
    record = yaml.safe_load((folders["kd"] / "hparams.yaml").read_text())
    assert trt / record["teacher"]["path"] == folders["dense"] / "final.pt"
    summary = json.loads((folders["kd"] / "summary.json").read_text())
    assert (summary["kd_alpha"], summary["kd_reduction"], summary["gradinit"]) == (0.9, "batchmean", False)
