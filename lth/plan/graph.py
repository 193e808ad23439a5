"""`Plan`: the runs of an experiment (or, merged, of a config's experiments) and how they feed each
other: dense runs, the mask chains drawn from them, the sparse runs trained with their masks, the
rows of summary.csv and the analysis jobs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lth.data.identity import data_identity
from lth.hparams import DataHparams, GradinitHparams, ModelHparams, PruneHparams, TrainHparams
from lth.mask_registry import MASK_SOURCES, OWN_RUN, MaskSpec, level_file, one_sparsity, parse_masks
from lth.plan.analyses import AnalysisJob, plan_analyses
from lth.plan.config import (
    CHAIN_KEYS,
    check_base_sections,
    check_results_path,
    check_scope,
    dense_variant,
    level_list,
    rewind_epochs,
)
from lth.plan.identity import file_digest, gradinit_record, run_key
from lth.plan.paths import folder
from lth.sparse.settings import ALGORITHMS, SparseTrainingHparams, nm_sparsity
from lth.variants import Variant, resolve


@dataclass(frozen=True)
class DenseRun:
    """A dense training: the one tickets are drawn from, or a dense-with-tweak baseline (`dense_variants`),
    which starts from the former's theta0 (`init`, its key) and never feeds a mask."""

    key: str
    seed: int
    model: ModelHparams
    data: DataHparams
    train: TrainHparams
    gradinit: GradinitHparams = field(default_factory=GradinitHparams)
    init: str = ""  # the run whose init.pt it starts from: its own key for the ticket's dense run

    @property
    def baseline(self) -> bool:
        """A dense-with-tweak baseline rather than the run tickets are drawn from."""
        return self.init != self.key


@dataclass(frozen=True)
class Chain:
    """A sequence of masks for one dense run: IMP levels, one-shot (OMP) levels, or the levels of
    another mask source (lth.mask_registry), each drawn from theta0 (or read from the user's file), or
    the final masks of a sparse training from theta0 at each level's sparsity."""

    key: str
    method: str  # imp, omp, or a mask source other than magnitude
    dense: DenseRun
    prune: PruneHparams
    rewind_epoch: int  # where the IMP chain's own training starts (0 = theta0)
    settings: Mapping[str, Any] = field(default_factory=dict)  # the source's, as hashed
    like: Chain | None = None  # random: the chain whose per-layer counts it copies
    files: Mapping[int, str] = field(default_factory=dict)  # file: level -> the user's mask file


@dataclass(frozen=True)
class SparseRun:
    key: str
    dense: DenseRun
    chain: Chain
    level: int
    start_epoch: int
    model: ModelHparams
    train: TrainHparams
    gradinit: GradinitHparams
    reinit_seed: int | None = None  # the `reinit` part: initial weights drawn with this seed, not theta0
    sparse_training: SparseTrainingHparams | None = None  # a sparse training's own run: no mask, it draws one


@dataclass(frozen=True)
class Row:
    """One line of an experiment's summary.csv."""

    seed: int
    variant: str
    level: int
    run: str
    mask_source: str = ""  # the `masks` entry's label; empty for the dense rows


@dataclass
class Plan:
    config: dict[str, Any]
    results: Path
    dense: dict[str, DenseRun] = field(default_factory=dict)
    chains: dict[str, Chain] = field(default_factory=dict)
    sparse: dict[str, SparseRun] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    levels: list[int] = field(default_factory=list)  # the experiment's levels (1 = the first mask)
    masks: list[MaskSpec] = field(default_factory=list)  # the experiment's mask sources, in the config's order
    prune_rate: float = 0.2
    gradinit: GradinitHparams = field(default_factory=GradinitHparams)  # before variants change it
    rewind_epochs: set[int] = field(default_factory=set)  # kept as rewind points by every dense run
    rewind: dict[str, set[int]] = field(default_factory=dict)  # dense run -> its rewind points
    analyses: dict[str, AnalysisJob] = field(default_factory=dict)  # by output path (lth.plan.analyses)
    chain_runs: set[str] = field(default_factory=set)  # the IMP chains' own trainings, which the next level prunes

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Plan:
        check_results_path(config["results"])
        plan = cls(config=config, results=Path(config["results"]))
        check_base_sections(config)
        model = ModelHparams.from_dict(config["model"])
        data = DataHparams.from_dict(config["data"])
        train = TrainHparams.from_dict(config["train"])
        plan.gradinit = GradinitHparams.from_dict(config.get("gradinit"))
        prune_section = dict(config["prune"])
        chain_settings = {key: prune_section.pop(key) for key in CHAIN_KEYS}
        prune = PruneHparams.from_dict(prune_section)
        plan.levels = level_list(chain_settings["levels"])
        plan.prune_rate = prune.rate
        plan.masks = parse_masks(config["masks"])
        check_scope(prune, plan.masks)
        # The magnitude chain is drawn when listed, or when a random mask copies its per-layer counts.
        magnitude = any(spec.source == "magnitude" or spec.settings.get("like") == "magnitude" for spec in plan.masks)
        variants = [resolve(name) for name in config["variants"]]
        dense_variants = [dense_variant(name) for name in config.get("dense_variants", [])]
        plan.rewind_epochs = rewind_epochs(config, train, chain_settings, variants, magnitude)
        data_record = data_identity(data)  # before any job: reads (and caches) user files' fingerprints

        for seed in config["seeds"]:
            dense = plan._add_dense(seed, model, data, data_record, train)
            plan.rewind.setdefault(dense.key, set()).update(plan.rewind_epochs)
            plan.rows.append(Row(seed, "dense", 0, folder(plan, dense.key)))
            for variant in dense_variants:
                baseline = plan._add_baseline(dense, data_record, variant)
                plan.rows.append(Row(seed, f"dense+{variant.name}", 0, folder(plan, baseline.key)))
            chain = None
            if magnitude:
                chain = plan._add_chain(chain_settings["method"], dense, prune, chain_settings["rewind_epoch"])
                if chain.method == "imp":  # the chain trains each level to draw the next, whatever the variants
                    for level in range(1, max(plan.levels)):
                        plan.chain_run(chain, level)
            for index, spec in enumerate(plan.masks):
                if MASK_SOURCES[spec.source].algorithm:
                    plan._add_algorithm(spec, dense, prune, variants)
                    continue
                levels = plan.levels[:1] if one_sparsity(spec) else plan.levels
                sources = {
                    level: chain
                    if spec.source == "magnitude"
                    else plan._add_source(index, spec, dense, prune, chain, level)
                    for level in levels
                }
                for variant in variants:
                    for level in levels:
                        run = plan._add_sparse(sources[level], level, variant)
                        plan.rows.append(Row(seed, variant.name, level, folder(plan, run.key), spec.label))
        if config.get("analysis"):
            from lth.data import split_sizes

            plan.analyses = plan_analyses(plan, config["analysis"], split_sizes(data))
        return plan

    def key(self, stage: str, **content: Any) -> str:
        """The name of what `content` builds at `stage`, under this config's `cache_version`."""
        return run_key(stage, self.config["cache_version"], **content)

    def _add_dense(
        self, seed: int, model: ModelHparams, data: DataHparams, data_record: dict[str, Any], train: TrainHparams
    ) -> DenseRun:
        key = self.key("dense", seed=seed, model=model.identity(), data=data_record, train=train.identity())
        return self.dense.setdefault(key, DenseRun(key, seed, model, data, train, self.gradinit, key))

    def _add_baseline(self, dense: DenseRun, data_record: dict[str, Any], variant: Variant) -> DenseRun:
        """`dense` trained again from its theta0 with `variant`'s tweaks."""
        model = dense.model.replace(**variant.section("model"))
        train = dense.train.replace(**variant.section("train"))
        gradinit = self.gradinit.replace(**variant.section("gradinit"))
        key = self.key(
            "dense",
            seed=dense.seed,
            model=model.identity(),
            data=data_record,
            train=train.identity(),
            init=dense.key,
            **gradinit_record(gradinit),
        )
        return self.dense.setdefault(key, DenseRun(key, dense.seed, model, dense.data, train, gradinit, dense.key))

    def _add_chain(self, method: str, dense: DenseRun, prune: PruneHparams, rewind_epoch: int) -> Chain:
        rewind_epoch = rewind_epoch if method == "imp" else 0  # OMP masks do not depend on any re-training
        key = self.key(method, dense=dense.key, prune=prune.identity(), rewind_epoch=rewind_epoch)
        return self.chains.setdefault(key, Chain(key, method, dense, prune, rewind_epoch))

    def _add_source(
        self, index: int, spec: MaskSpec, dense: DenseRun, prune: PruneHparams, magnitude: Chain | None, level: int
    ) -> Chain:
        """The chain of mask source `spec` (`masks[index]`) other than magnitude for `dense`'s seed, which
        holds its mask of `level`. Its hash holds the source's settings. A user's file is a chain of its
        own per level, hashed by its content (never its path) and which tensors are prunable: a changed
        file is a new run, and neither another file nor other levels change it."""
        settings, like, files = dict(spec.settings), None, {}
        prune_record = prune.identity()
        if settings.get("like"):
            like, settings["like"] = magnitude, magnitude.key
        pattern = MASK_SOURCES[spec.source].user_file
        if pattern:
            files = {level: level_file(spec.settings[pattern], level, dense.seed)}
            settings = {"level": level, "sha256": file_digest(f"masks[{index}].{pattern}", files[level], level)}
        if pattern or one_sparsity(spec):  # a user's mask, or an N:M one, has its own sparsity
            prune_record = {"include_linear": prune.include_linear}
        key = self.key(spec.source, dense=dense.key, prune=prune_record, settings=settings)
        return self.chains.setdefault(key, Chain(key, spec.source, dense, prune, 0, settings, like, files))

    def _add_algorithm(self, spec: MaskSpec, dense: DenseRun, prune: PruneHparams, variants: list[Variant]) -> None:
        """Sparse training `spec` from `dense`'s theta0: its own run at each level (the vanilla one
        draws the level's ticket, which every variant spends) and with each variant's tweaks, as rows
        `<label>_run`."""
        record = {"rate": prune.rate, "include_linear": prune.include_linear}
        key = self.key(spec.source, dense=dense.key, prune=record, settings=dict(spec.settings))
        chain = self.chains.setdefault(key, Chain(key, spec.source, dense, prune, 0, spec.settings))
        own = OWN_RUN.format(label=spec.label)
        levels = self.levels[:1] if one_sparsity(spec) else self.levels
        for level in levels:  # drawn whatever the variants, as an IMP chain's trainings are
            self.algorithm_run(chain, level)
        for variant in variants:
            for level in levels:
                ticket = self._add_sparse(chain, level, variant)
                self.rows.append(Row(dense.seed, variant.name, level, folder(self, ticket.key), spec.label))
        for variant in variants:
            for level in levels:
                run = self._add_sparse(chain, level, variant, trains_mask=True)
                self.rows.append(Row(dense.seed, variant.name, level, folder(self, run.key), own))

    def algorithm_run(self, chain: Chain, level: int) -> SparseRun:
        """The sparse training whose final mask is `chain`'s at `level`: its own run without tweaks."""
        return self._add_sparse(chain, level, resolve("lth"), trains_mask=True)

    def _add_sparse(self, chain: Chain, level: int, variant: Variant, trains_mask: bool = False) -> SparseRun:
        start = self.config["rewind_epoch"] if variant.start == "rewind" else 0
        reinit_seed = chain.dense.seed + self.config["reinit_seed_offset"] if variant.start == "reinit" else None
        model = chain.dense.model.replace(**variant.section("model"))
        train = chain.dense.train.replace(**variant.section("train"))
        gradinit = self.gradinit.replace(**variant.section("gradinit"))
        sparse_training = None
        if trains_mask:
            sparsity = round(1 - (1 - chain.prune.rate) ** level, 12)
            if chain.settings.get("nm"):  # GMP to N:M ends at 1 - N/M
                sparsity = nm_sparsity(chain.settings["nm"])
            settings = {**chain.settings, "sparsity": sparsity, "include_linear": chain.prune.include_linear}
            sparse_training = ALGORITHMS[chain.method].from_dict(settings)
        return self._sparse_run(chain, level, start, model, train, gradinit, reinit_seed, sparse_training)

    def _sparse_run(
        self,
        chain: Chain,
        level: int,
        start_epoch: int,
        model: ModelHparams,
        train: TrainHparams,
        gradinit: GradinitHparams,
        reinit_seed: int | None = None,
        sparse_training: SparseTrainingHparams | None = None,
    ) -> SparseRun:
        # A sparse training's own run draws its mask: its settings name it, where other runs name their mask.
        mask = (
            {"sparse_training": {"algorithm": sparse_training.section, **sparse_training.identity()}}
            if sparse_training
            else {"mask": f"{chain.key}/level{level}"}
        )
        key = self.key(
            "sparse",
            dense=chain.dense.key,
            **mask,
            start_epoch=start_epoch,
            model=model.identity(),
            train=train.identity(),
            **gradinit_record(gradinit),
            **({"reinit_seed": reinit_seed} if reinit_seed is not None else {}),
        )
        run = SparseRun(
            key, chain.dense, chain, level, start_epoch, model, train, gradinit, reinit_seed, sparse_training
        )
        return self.sparse.setdefault(key, run)

    def chain_run(self, chain: Chain, level: int) -> SparseRun:
        """The IMP chain's own training at `level`, whose weights the next level prunes."""
        run = self._sparse_run(chain, level, chain.rewind_epoch, chain.dense.model, chain.dense.train, self.gradinit)
        self.chain_runs.add(run.key)
        return run

    def epoch_range(self, key: str) -> tuple[int, int]:
        """(start epoch, last epoch) of run `key`: the epochs after the first are its own training."""
        if key in self.dense:
            return 0, self.dense[key].train.epochs
        run = self.sparse[key]
        return run.start_epoch, run.train.epochs

    def primary_rows(self) -> list[Row]:
        """The rows of the dense runs and of the first mask source: what the analyses read."""
        first = self.masks[0].label
        return [row for row in self.rows if row.mask_source in ("", first)]

    def analysis_jobs(self, name: str) -> list[AnalysisJob]:
        return [job for job in self.analyses.values() if job.analysis.name == name]

    @classmethod
    def merge(cls, plans: list[Plan]) -> Plan:
        """One plan holding every run of `plans` (a config's experiments): the rules look runs up
        here; each experiment's own tables and figures come from its own plan."""
        merged = cls(config=plans[0].config, results=plans[0].results)
        for plan in plans:
            for name in ("dense", "chains", "sparse", "analyses"):
                for key, value in getattr(plan, name).items():
                    getattr(merged, name).setdefault(key, value)
            for key, epochs in plan.rewind.items():
                merged.rewind.setdefault(key, set()).update(epochs)
            merged.chain_runs |= plan.chain_runs
        return merged
