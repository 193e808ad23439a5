"""The names of every file and folder in a run folder of the store (results/runs/<kind>-<hash>/).

The one place these names are spelled: the commands that write them, the plan that asks for them,
the readers and the workflow rules all take them from here. Torch-free (the Snakefile imports it).

    dense-<hash>/                 a dense run (the ticket's, or a dense-with-tweak baseline)
        init.pt                   theta0 (`lth init`)
        final.pt metrics.csv hparams.yaml gradinit.json train.log
        summary.json              written last: the run is finished (lth/manifest.py)
        epoch<k>.pt               weights kept after epoch k (rewind points, snapshots)
        rewind/epoch<k>.pt        a rewind point, published on its own
        reinit/seed<s>.pt         a fresh initialisation drawn with seed s
        .resume/state.pt          what an interrupted training resumes from
    sparse-<hash>/                a re-training: as a dense run, and
        snapshots/epoch<k>.pt     weights an analysis reads at epoch k
        analysis/                 one file per analysis job
    <source>-<hash>/level<k>/     a mask chain's level: mask.pt and its sidecar mask.json
"""

from __future__ import annotations

from pathlib import Path

INIT = "init.pt"
FINAL = "final.pt"
METRICS = "metrics.csv"
HPARAMS = "hparams.yaml"
GRADINIT = "gradinit.json"
SUMMARY = "summary.json"
TRAIN_LOG = "train.log"
MASK = "mask.pt"
MASK_SIDECAR = "mask.json"
RESUME_STATE = Path(".resume") / "state.pt"
ANALYSIS = "analysis"

# What `lth train` writes into a run folder (epoch<k>.pt besides); summary.json first, so that
# removing them in this order makes the folder stop looking finished at once.
RUN_FILES = (SUMMARY, FINAL, METRICS, HPARAMS, GRADINIT)


def kept_epoch(epoch: int) -> str:
    """The weights a training keeps after `epoch`, in its own folder."""
    return f"epoch{epoch}.pt"


def rewind_point(epoch: int) -> str:
    """A dense run's weights after `epoch`, relative to its folder."""
    return f"rewind/{kept_epoch(epoch)}"


def snapshot(epoch: int) -> str:
    """A sparse run's weights after `epoch`, relative to its folder."""
    return f"snapshots/{kept_epoch(epoch)}"


def reinit(seed: int) -> str:
    """A fresh initialisation of a dense run's network drawn with `seed`, relative to its folder."""
    return f"reinit/seed{seed}.pt"


def level_mask(level: int) -> str:
    """Level `level`'s mask, relative to its chain's folder."""
    return f"level{level}/{MASK}"
