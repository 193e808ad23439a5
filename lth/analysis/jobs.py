"""Which runs get which analysis: a workflow config's `analysis` section, resolved against its plan.

One entry per analysis (the schema, workflow/schemas/config.schema.yaml, lists every key and its
default), for example
    analysis:
      hessian: {variants: all, levels: all}
      landscape: {variants: [lth, skip], levels: [0.91], epochs: [5, final], jobs: 4}
- `variants`: `all`, or names from the experiment's `variants`.
- `levels`: `all` (the dense run and every level), or a list of levels (0 is the dense run, the
  same for every variant) and target sparsities in (0, 1). A target picks the level whose nominal
  sparsity 1 - (1 - prune.rate)^level is nearest on the log scale of remaining weights (at rate
  0.2, 0.91 is level 11 = 91.4%); a target more than half a pruning step from every level is an
  error, as is a level the experiment does not have.
- `epochs` (not for `hessian_per_epoch`, which follows every epoch): `final`, or training epochs
  whose weights are analysed; runs keep those as snapshots. An epoch at or before a run's start
  (a rewinding variant's) is an error.

Each (analysis, run, epoch) is one job writing `<run folder>/analysis/<name>-<hash><suffix>`,
where the hash covers the analysis' settings and the epoch (and, for a grid, the number of parts
it runs as, since the parts are files too): a changed setting writes a new file, a finished one is
never redone, and the training runs it reads never change. Activations' `thresholds` enter it
ascending, as floats: one list in another order or spelling is the same file. The collected CSVs in
`results/<experiment>/analysis/` name the dense run's rows variant `dense`, level 0.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lth.errors import LthError

if TYPE_CHECKING:  # the plan imports this module
    from lth.plan import Plan


class AnalysisConfigError(LthError):
    """The `analysis` section asks for something the experiment does not have."""


@dataclass(frozen=True)
class Analysis:
    """How one analysis is planned: its output, its settings, and the CSV it is collected into."""

    name: str
    suffix: str  # of the per-run output; "" = a folder (a tracked re-training run)
    collected: str  # file name in results/<experiment>/analysis/
    settings: tuple[str, ...]  # enter the output's hash
    epochs: bool = True  # takes `epochs`; False: follows training epoch by epoch
    train_sample: str | None = "sample"  # the setting drawn from the training split
    test_sample: str | None = None  # the setting drawn from the test split
    grid: bool = False  # a points x points grid, split into `jobs` parts


HESSIAN_SETTINGS = ("sample", "sample_seed", "tol", "max_iter")
GRID_SETTINGS = ("points", "extent", "sample", "sample_seed")
ANALYSES: dict[str, Analysis] = {
    a.name: a
    for a in (
        Analysis("activations", ".csv", "activation_sparsity.csv", ("thresholds",), train_sample=None),
        Analysis("hessian", ".json", "hessian.csv", (*HESSIAN_SETTINGS, "k")),
        Analysis("hessian_per_epoch", "", "hessian_per_epoch.csv", HESSIAN_SETTINGS, epochs=False),
        Analysis(
            "perturbation",
            ".csv",
            "perturbation.csv",
            (*HESSIAN_SETTINGS, "points", "extent", "test_sample"),
            test_sample="test_sample",
        ),
        Analysis("landscape", ".csv", "landscape.csv", GRID_SETTINGS, grid=True),
        Analysis(
            "input_landscape",
            ".csv",
            "input_landscape.csv",
            GRID_SETTINGS,
            train_sample=None,
            test_sample="sample",
            grid=True,
        ),
    )
}


@dataclass(frozen=True)
class Subject:
    """One row of the experiment that an analysis covers."""

    seed: int
    variant: str  # `dense` for level 0
    level: int
    epoch: int  # of the weights analysed (for hessian_per_epoch: the run's last)


@dataclass
class AnalysisJob:
    analysis: Analysis
    run: str  # run key (dense-... or sparse-...)
    epoch: int
    settings: dict[str, Any]
    output: str  # the per-run file (or folder) the job writes
    parts: int = 1  # grid jobs
    subjects: list[Subject] = field(default_factory=list)

    @property
    def collected_file(self) -> str:
        """The file the collector reads, relative to the run folder."""
        relative = self.output.split(f"/{self.run}/", 1)[1]
        return f"{relative}/metrics.csv" if not self.analysis.suffix else relative

    def flags(self, prefix: str = "") -> str:
        """The settings as shell-quoted `lth` flags (`--{prefix}max-iter 100`; a list's items follow its
        flag: `--thresholds 0.0 0.001`)."""
        return shlex.join(
            word
            for key, value in self.settings.items()
            for word in (
                f"--{prefix}{key.replace('_', '-')}",
                *map(str, value if isinstance(value, (list, tuple)) else [value]),
            )
        )

    def part_outputs(self) -> list[str]:
        stem = self.output.removesuffix(self.analysis.suffix)
        return [f"{stem}.parts/part{i}-of-{self.parts}.csv" for i in range(self.parts)]


def analysis_figures(section: dict[str, Any]) -> dict[str, tuple[str, str, str | None]]:
    """Figure file stem -> (analysis, `lth figure` name, epoch filter), named after the paper, for
    the analyses `section` asks for. Landscapes get one figure per epoch asked for."""
    figures: dict[str, tuple[str, str, str | None]] = {}
    singles = {
        "activations": ("tableA1_activation_sparsity", "tableA1_activation_sparsity"),
        "hessian": ("fig2_hessian", "fig2_hessian"),
        "hessian_per_epoch": ("figA12_hessian_per_epoch", "figA12_hessian_per_epoch"),
        "perturbation": ("fig10_perturbation", "fig10_perturbation"),
    }
    for name, options in section.items():
        if name in singles:
            stem, figure = singles[name]
            figures[stem] = (name, figure, None)
            continue
        figure, final, early = {
            "landscape": ("fig_landscape", "fig11_landscape_final", "fig5_landscape_epoch{}"),
            "input_landscape": ("fig11_input_landscape", "fig11_input_landscape", "fig11_input_landscape_epoch{}"),
        }[name]
        for epoch in options["epochs"]:
            figures[final if epoch == "final" else early.format(epoch)] = (name, figure, str(epoch))
    return figures


def nominal_sparsity(rate: float, level: int) -> float:
    return 1 - (1 - rate) ** level


def resolve_levels(key: str, items: Any, levels: list[int], rate: float) -> list[int]:
    """Levels (0 = dense) from `all` or a list of levels and target sparsities; `levels` are the
    experiment's (`prune.levels`)."""
    available = [0, *levels]
    if items == "all":
        return available
    chosen = []
    listed = ", ".join(f"{level} ({100 * nominal_sparsity(rate, level):.1f}%)" for level in available)
    for i, item in enumerate(items):
        if isinstance(item, int) or (isinstance(item, float) and item.is_integer() and item >= 1):
            level = int(item)
            if level not in available:
                raise AnalysisConfigError(
                    f"{key}[{i}]: level {item} is not allowed; this experiment has levels "
                    f"{', '.join(map(str, available))} (0 = dense)"
                )
        else:
            remaining = math.log(1 - item)
            level = min(available, key=lambda k: abs(math.log(1 - nominal_sparsity(rate, k)) - remaining))
            if abs(math.log(1 - nominal_sparsity(rate, level)) - remaining) > abs(math.log(1 - rate)) / 2:
                raise AnalysisConfigError(
                    f"{key}[{i}]: sparsity {item} is not allowed; it is more than half a "
                    f"pruning step from every level of this experiment: {listed}"
                )
        chosen.append(level)
    return sorted(set(chosen))


def plan_analyses(plan: Plan, section: dict[str, Any], sizes: dict[str, int]) -> dict[str, AnalysisJob]:
    """Every analysis job the `analysis` section asks for, keyed by output path. `sizes` are the
    data's split sizes (`lth.data.split_sizes`), to check the samples before any job runs."""
    from lth.plan import short_hash  # the plan imports this module

    jobs: dict[str, AnalysisJob] = {}
    variants = list(dict.fromkeys(row.variant for row in plan.primary_rows() if row.level > 0))
    for name, options in section.items():
        analysis = ANALYSES[name]  # the schema allows no other name
        key = f"analysis.{name}"
        settings = _check_settings(key, analysis, options, sizes)
        chosen = _variants(f"{key}.variants", options["variants"], variants)
        levels = resolve_levels(f"{key}.levels", options["levels"], plan.levels, plan.prune_rate)
        for row in plan.primary_rows():
            if row.level not in levels or row.variant not in (chosen if row.level > 0 else {"dense"}):
                continue
            run = row.run.rsplit("/", 1)[-1]
            first, last = plan.epoch_range(run)
            epochs = [last] if not analysis.epochs else _epochs(f"{key}.epochs", options["epochs"], row, first, last)
            for epoch in epochs:
                # A grid's parts are outputs too: a new `jobs` is a new file, never a finished one redone.
                parts = {"parts": options["jobs"]} if analysis.grid else {}
                record = plan.record(stage=name, settings=settings, epoch=epoch, **parts)
                output = f"{plan.folder(run)}/analysis/{name}-{short_hash(record)}{analysis.suffix}"
                job = jobs.setdefault(
                    output, AnalysisJob(analysis, run, epoch, settings, output, options.get("jobs", 1))
                )
                subject = Subject(row.seed, row.variant, row.level, epoch)
                if subject not in job.subjects:
                    job.subjects.append(subject)
    return jobs


def _check_settings(key: str, analysis: Analysis, options: dict[str, Any], sizes: dict[str, int]) -> dict[str, Any]:
    """The analysis' settings as its output's hash and its flags take them, after the checks the
    schema cannot make."""
    settings = {setting: options[setting] for setting in analysis.settings}
    if analysis.name == "activations":
        settings["thresholds"] = _thresholds(key, options)
    for setting, split in ((analysis.train_sample, "train"), (analysis.test_sample, "test")):
        if setting and options[setting] > sizes[split]:
            raise AnalysisConfigError(
                f"{key}.{setting}: {options[setting]} is not allowed; the {split} split has "
                f"{sizes[split]} images (must be <= {sizes[split]})"
            )
    if analysis.grid and options["jobs"] > options["points"] ** 2:
        raise AnalysisConfigError(
            f"{key}.jobs: {options['jobs']} is not allowed; the grid has "
            f"{options['points'] ** 2} points (must be <= {options['points'] ** 2})"
        )
    return settings


def _thresholds(key: str, options: dict[str, Any]) -> list[float]:
    """`thresholds` ascending, as floats: another order or spelling of the same list is the same
    output (lth.analysis.activations.check_thresholds). The old single `threshold` is refused by
    name, not ignored: a config that set it would otherwise get the default list silently."""
    from lth.analysis.activations import (
        DEFAULT_THRESHOLDS,
        ActivationSparsityError,
        check_thresholds,
        threshold_text,
    )

    if "threshold" in options:
        old = options["threshold"]
        raise AnalysisConfigError(
            f"{key}.threshold: {old!r} is not allowed; the key is now `thresholds`, a list "
            f"counted in one pass: write `thresholds: [{old}]`, or leave it out for the "
            f"default [{threshold_text(DEFAULT_THRESHOLDS)}]"
        )
    try:
        return list(check_thresholds(options["thresholds"], f"{key}.thresholds"))
    except ActivationSparsityError as error:
        raise AnalysisConfigError(str(error)) from None


def _variants(key: str, items: Any, variants: list[str]) -> set[str]:
    from lth.variants import resolve

    if items == "all":
        return set(variants)
    chosen = set()
    for i, item in enumerate(items):
        try:
            name = resolve(item).name
        except LthError:
            name = None
        if name not in variants:
            raise AnalysisConfigError(
                f"{key}[{i}]: {item!r} is not allowed; this experiment's variants are {', '.join(variants)} (or `all`)"
            )
        chosen.add(name)
    return chosen


def _epochs(key: str, items: Iterable[Any], row: Any, first: int, last: int) -> list[int]:
    epochs = []
    for i, item in enumerate(items):
        epoch = last if item == "final" else item
        if not first < epoch <= last:
            what = "the dense run" if row.level == 0 else f"variant {row.variant!r}"
            raise AnalysisConfigError(
                f"{key}[{i}]: epoch {item} is not allowed for {what}, which trains epochs "
                f"{first + 1} to {last}; give an epoch in that range or `final`"
            )
        epochs.append(epoch)
    return sorted(set(epochs))
