"""Which runs get which analysis: a workflow config's `analysis` section, resolved against its plan.

One entry per analysis (lth/analysis/registry.py, whose settings dataclasses give every setting's
default and bounds; the schema, workflow/schemas/config.schema.yaml, agrees), for example
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

import dataclasses
import math
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lth import artifacts
from lth.analysis.registry import ANALYSES, Analysis, AnalysisConfigError, option
from lth.errors import LthError
from lth.hparams import HparamError
from lth.plan.paths import folder
from lth.variants import resolve

if TYPE_CHECKING:  # the graph imports this module
    from lth.plan.graph import Plan, Row


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
        return f"{relative}/{artifacts.METRICS}" if not self.analysis.suffix else relative

    def flags(self) -> str:
        """The settings as shell-quoted flags of its command (`--max-iter 100`, or its tracker's
        `--hessian-max-iter 100`; a list's items follow its flag: `--thresholds 0.0 0.001`)."""
        prefix = f"{self.analysis.tracker}-" if self.analysis.tracker else ""
        return shlex.join(
            word
            for key, value in self.settings.items()
            for word in (option(key, prefix), *map(str, value if isinstance(value, (list, tuple)) else [value]))
        )

    def part_outputs(self) -> list[str]:
        stem = self.output.removesuffix(self.analysis.suffix)
        return [f"{stem}.parts/part{i}-of-{self.parts}.csv" for i in range(self.parts)]


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
                output_key = plan.key(name, settings=settings, epoch=epoch, **parts)
                output = f"{folder(plan, run)}/{artifacts.ANALYSIS}/{output_key}{analysis.suffix}"
                job = jobs.setdefault(
                    output, AnalysisJob(analysis, run, epoch, settings, output, options.get("jobs", 1))
                )
                subject = Subject(row.seed, row.variant, row.level, epoch)
                if subject not in job.subjects:
                    job.subjects.append(subject)
    return jobs


def _check_settings(key: str, analysis: Analysis, options: dict[str, Any], sizes: dict[str, int]) -> dict[str, Any]:
    """The analysis' settings as its output's hash and its flags take them (its dataclass' defaults
    where the schema has not filled them in), checked by the dataclass, then as the schema cannot."""
    settings = {field.name: options.get(field.name, field.default) for field in dataclasses.fields(analysis.settings)}
    if analysis.check:
        settings.update(analysis.check(f"{key}.", {**settings, **options}))
    try:
        analysis.settings.from_dict(settings)
    except HparamError as error:
        raise AnalysisConfigError(str(error)) from None
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


def _variants(key: str, items: Any, variants: list[str]) -> set[str]:
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


def _epochs(key: str, items: Iterable[Any], row: Row, first: int, last: int) -> list[int]:
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
