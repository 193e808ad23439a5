"""The analyses a workflow config's `analysis` section may ask for: one `Analysis` entry each.

An entry says how the planner (lth/plan/analyses.py) plans its jobs and how the workflow runs and draws them: its
settings (a dataclass, the one declaration that `lth analyze`'s flags, the planner and the jobs' flags read;
tests/test_schema.py proves the schema agrees), its output, collected CSV, command (or `lth train --track` tracker)
and figures. Torch-free, and it imports nothing from the planner (the planner imports it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from lth.analysis.activations import DEFAULT_THRESHOLDS, THRESHOLD_MINIMUM, THRESHOLD_RULE
from lth.errors import LthError
from lth.hparams import Hparams, hp

MAX_K = 5  # top-k eigenvalues by deflation: each more costs a full power iteration


class AnalysisConfigError(LthError):
    """The `analysis` section asks for something the experiment does not have."""


def option(setting: str, prefix: str = "") -> str:
    """The command-line flag of a setting: `--max-iter`, `--hessian-max-iter` (prefix `hessian-`)."""
    return f"--{prefix}{setting.replace('_', '-')}"


# Each analysis' settings, its command's help as the docstring. They enter the output's hash in field
# order, as the flags do: a new field renames every output, so add one only with a new analysis or on purpose.
@dataclass(frozen=True)
class ActivationsSettings(Hparams):
    """activation sparsity per stage over the test set, at each threshold in one pass"""

    section: ClassVar[str] = "analysis.activations"
    thresholds: tuple[float, ...] = hp(
        DEFAULT_THRESHOLDS,
        f"|a| <= T counts as zero; one row per (threshold, stage), all counted in one pass; each {THRESHOLD_RULE}, "
        "no repeats",
        minimum=THRESHOLD_MINIMUM,
    )


@dataclass(frozen=True)
class PowerIterationSettings(Hparams):
    """the top Hessian eigenvalue after every epoch: the run trained again with tracking"""

    section: ClassVar[str] = "analysis.hessian_per_epoch"
    sample: int = hp(200, "training images in the fixed sample", minimum=1)
    sample_seed: int = hp(0, "seed of the sample and the random directions", minimum=0)
    tol: float = hp(1e-3, "relative tolerance of the power iteration", exclusive_minimum=0.0)
    max_iter: int = hp(100, "power-iteration budget (Hessian-vector products)", minimum=1)


WHOLE_SAMPLE = "training images in the fixed sample; 0 = the whole training split"


@dataclass(frozen=True)
class HessianSettings(PowerIterationSettings):
    """top Hessian eigenvalue(s) of plain cross-entropy by power iteration over the kept coordinates (JSON out)"""

    section: ClassVar[str] = "analysis.hessian"
    sample: int = hp(200, WHOLE_SAMPLE, minimum=0)
    k: int = hp(1, f"top-k eigenvalues by deflation, k <= {MAX_K}", minimum=1, maximum=MAX_K)


@dataclass(frozen=True)
class PerturbationSettings(PowerIterationSettings):
    """test loss along the top Hessian eigenvector: theta + e v/||v||"""

    section: ClassVar[str] = "analysis.perturbation"
    sample: int = hp(200, WHOLE_SAMPLE, minimum=0)
    points: int = hp(21, "values of e", minimum=1)
    extent: float = hp(0.5, "e over [-extent, extent]", exclusive_minimum=0.0)
    test_sample: int = hp(2000, "test images evaluated", minimum=1)


@dataclass(frozen=True)
class LandscapeSettings(Hparams):
    """weight-space loss landscape (Li et al. 2018) on a fixed sample of training images"""

    section: ClassVar[str] = "analysis.landscape"
    points: int = hp(21, "grid points per axis", minimum=1)
    extent: float = hp(1.0, "grid over [-extent, extent]^2", exclusive_minimum=0.0)
    sample: int = hp(2000, "training images in the fixed sample", minimum=1)
    sample_seed: int = hp(0, "seed of the sample and the random directions", minimum=0)


@dataclass(frozen=True)
class InputLandscapeSettings(LandscapeSettings):
    """loss around each image of a fixed test sample along two random input directions"""

    section: ClassVar[str] = "analysis.input_landscape"
    sample: int = hp(2000, "test images in the fixed sample", minimum=1)


def check_activations(prefix: str, options: dict[str, Any]) -> dict[str, Any]:
    """Activations' settings: `thresholds` ascending, as floats: another order or spelling of the same list is the same
    output (lth.analysis.activations.check_thresholds). The old single `threshold` is refused by
    name, not ignored: a config that set it would otherwise get the default list silently."""
    from lth.analysis.activations import ActivationSparsityError, check_thresholds, threshold_text

    if "threshold" in options:
        old = options["threshold"]
        raise AnalysisConfigError(
            f"{prefix}threshold: {old!r} is not allowed; the key is now `thresholds`, a list "
            f"counted in one pass: write `thresholds: [{old}]`, or leave it out for the "
            f"default [{threshold_text(DEFAULT_THRESHOLDS)}]"
        )
    try:
        return {"thresholds": list(check_thresholds(options["thresholds"], f"{prefix}thresholds"))}
    except ActivationSparsityError as error:
        raise AnalysisConfigError(str(error)) from None


@dataclass(frozen=True)
class Analysis:
    """How one analysis is planned, run and drawn."""

    name: str
    settings: type[Hparams]  # each field enters the output's hash and is a flag of its command
    collected: str  # file name in results/<experiment>/analysis/
    figure: str  # its `lth figure` name (lth/report/registry.py)
    suffix: str = ".csv"  # of the per-run output; "" = a folder (a tracked re-training run)
    command: str | None = None  # its `lth analyze` subcommand
    tracker: str | None = None  # or: a re-training run with `lth train --track <tracker>` (lth/trackers.py)
    stem: str | None = None  # the figure's file stem (the final epoch's, where one per epoch) if not `figure`
    epoch_stem: str | None = None  # one figure per epoch asked for: the stem of an earlier epoch's
    epochs: bool = True  # takes `epochs`; False: follows training epoch by epoch
    train_sample: str | None = "sample"  # the setting drawn from the training split
    test_sample: str | None = None  # the setting drawn from the test split
    grid: bool = False  # a points x points grid, split into `jobs` parts
    # (prefix of the names in messages, options) -> the settings as hashed, after the checks the bounds cannot make
    check: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None


ANALYSES: dict[str, Analysis] = {
    a.name: a
    for a in (
        Analysis(
            "activations",
            ActivationsSettings,
            "activation_sparsity.csv",
            "tableA1_activation_sparsity",
            command="activations",
            train_sample=None,
            check=check_activations,
        ),
        Analysis("hessian", HessianSettings, "hessian.csv", "fig2_hessian", suffix=".json", command="hessian"),
        Analysis(
            "hessian_per_epoch",
            PowerIterationSettings,
            "hessian_per_epoch.csv",
            "figA12_hessian_per_epoch",
            suffix="",
            tracker="hessian",
            epochs=False,
        ),
        Analysis(
            "perturbation",
            PerturbationSettings,
            "perturbation.csv",
            "fig10_perturbation",
            command="perturb",
            test_sample="test_sample",
        ),
        Analysis(
            "landscape",
            LandscapeSettings,
            "landscape.csv",
            "fig_landscape",
            command="landscape",
            stem="fig11_landscape_final",
            epoch_stem="fig5_landscape_epoch{}",
            grid=True,
        ),
        Analysis(
            "input_landscape",
            InputLandscapeSettings,
            "input_landscape.csv",
            "fig11_input_landscape",
            command="input-landscape",
            epoch_stem="fig11_input_landscape_epoch{}",
            train_sample=None,
            test_sample="sample",
            grid=True,
        ),
    )
}


def analysis_figures(section: dict[str, Any]) -> dict[str, tuple[str, str, str | None]]:
    """Figure file stem -> (analysis, `lth figure` name, epoch filter), named after the paper, for
    the analyses `section` asks for. Landscapes get one figure per epoch asked for."""
    figures: dict[str, tuple[str, str, str | None]] = {}
    for name, options in section.items():
        analysis = ANALYSES[name]
        final = analysis.stem or analysis.figure
        if analysis.epoch_stem is None:
            figures[final] = (name, analysis.figure, None)
            continue
        for epoch in options["epochs"]:
            stem = final if epoch == "final" else analysis.epoch_stem.format(epoch)
            figures[stem] = (name, analysis.figure, str(epoch))
    return figures
