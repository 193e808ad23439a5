"""From a validated workflow config to the content-addressed runs it needs.

Every run folder is named by a short hash of everything its result depends on (its own
settings and its upstream runs' hashes, plus `cache_version`), so experiments that share a
dense recipe or a mask chain share those artifacts, a changed setting writes a new folder, and
switching back finds the old results. The IMP chain's own masked training at each level is an
ordinary sparse run: the vanilla variant hashes to the same folder and is not trained twice.
Data enters a hash by what it is (`lth.data.identity`), never by where it lives, and how a job
runs (threads, device, which rewind points a dense run keeps) never enters one.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shlex
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lth.analysis.jobs import ANALYSES, AnalysisJob, plan_analyses
from lth.data.identity import data_identity
from lth.errors import LthError
from lth.hparams import DataHparams, GradinitHparams, Hparams, ModelHparams, PruneHparams, TrainHparams
from lth.mask_config import MaskSpec, level_file, parse_masks, ranks_across_layers
from lth.variants import PARTS, Variant, resolve
from lth.yamlio import read_yaml

HASH_LENGTH = 10
CHAIN_KEYS = ("method", "levels", "rewind_epoch")  # workflow keys of `prune`; the rest is PruneHparams


class PlanError(LthError):
    """The config asks for something the workflow cannot build."""


def resolve_data_root(config: dict[str, Any], config_files: list[Path]) -> None:
    """Make a relative `data.root`, and the relative paths of `file` mask sources, absolute, relative to
    the config file that sets them (the last one that does, in the experiment's overrides or the base),
    so an experiment reads the same files from any working directory (`snakemake -d`)."""
    root = (config.get("data") or {}).get("root")
    if root is not None and not Path(root).expanduser().is_absolute():
        base = _setting_folder(config, config_files, lambda section: "root" in (section.get("data") or {}))
        config["data"] = {**config["data"], "root": str((base / Path(root).expanduser()).resolve())}
    entries = config.get("masks") or []
    if any(isinstance(entry, dict) and "path" in entry for entry in entries):
        base = _setting_folder(config, config_files, lambda section: "masks" in section)
        config["masks"] = [
            {**entry, "path": str(base / Path(entry["path"]).expanduser())}
            if isinstance(entry, dict) and "path" in entry
            else entry
            for entry in entries
        ]


def _setting_folder(config: dict[str, Any], config_files: list[Path], sets: Callable[[dict[str, Any]], bool]) -> Path:
    """The folder of the config file whose value of a setting the experiment has: the last file that
    `sets` it in the experiment's overrides (they are merged over the base), else the last that sets
    it in its base; the working directory when none does (it came from --config on the command line)."""
    contents = [(path, read_yaml(path) or {}) for path in config_files]
    contents = [(path, content) for path, content in contents if isinstance(content, dict)]
    overrides = [(path, (content.get("experiments") or {}).get(config["experiment"])) for path, content in contents]
    for candidates in (overrides, contents):
        for path, section in reversed(candidates):
            if isinstance(section, dict) and sets(section):
                return Path(path).resolve().parent
    return Path.cwd()


def check_results_path(results: str) -> None:
    """Refuse what a results folder cannot hold: braces, which Snakemake reads as wildcards in every
    rule's file names, and control characters (a newline), which the one-line messages and logs that
    name paths cannot show. Anything else (spaces, unicode, quotes, `$`, `;`) is quoted in every shell
    command (workflow/rules/common.smk)."""
    bad = sorted({char for char in results if char in "{}" or unicodedata.category(char) == "Cc"})
    if bad:
        raise PlanError(
            f"results: {results!r} holds {', '.join(map(repr, bad))}, which a results folder cannot: "
            "Snakemake reads braces as wildcards, and logs cannot show control characters; choose a "
            "folder name without them (spaces, unicode, quotes, $ and ; are fine)"
        )


def check_base_sections(config: dict[str, Any]) -> None:
    """Tweaks apply only in re-training (the paper's protocol): a setting that a variant part
    controls must keep its default in the base sections, or the dense run, every mask and the
    vanilla baseline would carry the tweak too."""
    sections = {"model": ModelHparams, "train": TrainHparams, "gradinit": GradinitHparams}
    for part, settings in PARTS.items():
        for key in settings:
            section, _, name = key.partition(".")
            if section not in sections:
                continue
            value = (config.get(section) or {}).get(name)
            default = getattr(sections[section](), name)
            if value is not None and value != default:
                raise PlanError(
                    f"{key}: {value!r} is not allowed in the config's `{section}` section: it would train "
                    f"the dense network and draw the ticket with a tweak, and tweaks apply only in "
                    f"re-training; leave it at {default!r} and add the `{part}` part to a variant"
                )


def dense_variant(name: str) -> Variant:
    """A `dense_variants` entry: tweaks the dense network is trained with from theta0, as a baseline
    for the tweak's effect on sparse networks (the paper's Figure 1 dashed lines)."""
    variant = resolve(name, source="dense_variants")
    why = (
        "it has no tweak: it is the dense network itself"
        if not variant.parts
        else f"the dense network trains from theta0, not from a {variant.start} start"
        if variant.start != "theta0"
        else "distillation's teacher is the dense network itself"
        if variant.section("train").get("kd_alpha")
        else None
    )
    if why:
        allowed = ", ".join(part for part in PARTS if part not in ("rewind", "reinit", "kd"))
        raise PlanError(
            f"dense_variants: {name!r} is not allowed; {why}. Parts allowed here: {allowed} (and the aliases at, trt)"
        )
    return variant


def level_list(levels: int | list[int]) -> list[int]:
    """`prune.levels`: a count (levels 1 to n) or the levels themselves (e.g. OMP at [1, 4, 7])."""
    return list(range(1, levels + 1)) if isinstance(levels, int) else sorted(set(levels))


def short_hash(record: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:HASH_LENGTH]


def flags(*sections: Hparams) -> str:
    """Shell-quoted `--section.key value` flags that rebuild these hparams in `lth`."""
    words = []
    for hparams in sections:
        for key, value in hparams.to_dict().items():
            text = value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True).strip()
            text = text.removesuffix("\n...").strip()
            words += [f"--{hparams.section}.{key}", text]
    return shlex.join(words)


def train_identity(train: TrainHparams) -> dict[str, Any]:
    """The training settings that shape a result: the details of a loss term that is off (its form,
    temperature, reduction) are dropped, so that they do not split the cache, and so is how the job runs
    (`TrainHparams.EXECUTION_ONLY`: torch.compile)."""
    settings = TrainHparams.what_it_computes(train.to_dict())
    if train.label_smoothing == 0:
        del settings["label_smoothing_form"]
    if train.kd_alpha == 0:
        del settings["kd_temperature"], settings["kd_reduction"]
    return settings


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
    another mask source (lth.mask_config), each drawn from theta0 (or read from the user's file)."""

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
    analyses: dict[str, AnalysisJob] = field(default_factory=dict)  # by output path (lth.analysis.jobs)

    # ---- building -------------------------------------------------------------------------
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
        plan._check_masks(prune)
        # The magnitude chain is drawn when listed, or when a random mask copies its per-layer counts.
        magnitude = any(spec.source == "magnitude" or spec.settings.get("like") == "magnitude" for spec in plan.masks)
        variants = [resolve(name) for name in config["variants"]]
        dense_variants = [dense_variant(name) for name in config.get("dense_variants", [])]
        plan.rewind_epochs = plan._check_epochs(train, chain_settings, variants, magnitude)
        data_record = data_identity(data)  # before any job: reads (and caches) user files' fingerprints

        for seed in config["seeds"]:
            dense = plan._add_dense(seed, model, data, data_record, train)
            plan.rewind.setdefault(dense.key, set()).update(plan.rewind_epochs)
            plan.rows.append(Row(seed, "dense", 0, plan.folder(dense.key)))
            for variant in dense_variants:
                baseline = plan._add_baseline(dense, data_record, variant)
                plan.rows.append(Row(seed, f"dense+{variant.name}", 0, plan.folder(baseline.key)))
            chain = None
            if magnitude:
                chain = plan._add_chain(chain_settings["method"], dense, prune, chain_settings["rewind_epoch"])
                if chain.method == "imp":  # the chain trains each level to draw the next, whatever the variants
                    for level in range(1, max(plan.levels)):
                        plan.chain_run(chain, level)
            for index, spec in enumerate(plan.masks):
                sources = {
                    level: chain
                    if spec.source == "magnitude"
                    else plan._add_source(index, spec, dense, prune, chain, level)
                    for level in plan.levels
                }
                for variant in variants:
                    for level in plan.levels:
                        run = plan._add_sparse(sources[level], level, variant)
                        plan.rows.append(Row(seed, variant.name, level, plan.folder(run.key), spec.label))
        if config.get("analysis"):
            from lth.data import split_sizes

            plan.analyses = plan_analyses(plan, config["analysis"], split_sizes(data))
        return plan

    def _check_masks(self, prune: PruneHparams) -> None:
        if prune.scope == "layerwise":
            ranked = [spec.label for spec in self.masks if ranks_across_layers(spec.source, spec.settings.get("like"))]
            if ranked:
                raise PlanError(
                    f"prune.scope: 'layerwise' is not allowed with the mask sources {', '.join(ranked)}, "
                    "which rank weights across layers as their papers do; use scope global, or "
                    "{source: random, like: magnitude} for a random mask with the magnitude mask's "
                    "per-layer counts"
                )

    def _check_epochs(
        self, train: TrainHparams, chain: dict[str, Any], variants: list[Variant], magnitude: bool
    ) -> set[int]:
        """The dense epochs (> 0) this experiment keeps as rewind points."""
        needed = {f"save_epochs[{i}]": epoch for i, epoch in enumerate(self.config["save_epochs"])}
        if magnitude and chain["method"] == "imp":
            needed["prune.rewind_epoch"] = chain["rewind_epoch"]
        if any(variant.start == "rewind" for variant in variants):
            needed["rewind_epoch"] = self.config["rewind_epoch"]
        for key, epoch in needed.items():
            if epoch >= train.epochs:
                raise PlanError(f"{key}: {epoch} is not allowed; must be < train.epochs={train.epochs}")
        return {epoch for epoch in needed.values() if epoch > 0}

    def record(self, **content: Any) -> dict[str, Any]:
        """What a hash covers: `content` and the cache version."""
        return {"cache_version": self.config["cache_version"], **content}

    def _add_dense(
        self, seed: int, model: ModelHparams, data: DataHparams, data_record: dict[str, Any], train: TrainHparams
    ) -> DenseRun:
        record = self.record(
            stage="dense", seed=seed, model=model.to_dict(), data=data_record, train=train_identity(train)
        )
        key = f"dense-{short_hash(record)}"
        return self.dense.setdefault(key, DenseRun(key, seed, model, data, train, self.gradinit, key))

    def _add_baseline(self, dense: DenseRun, data_record: dict[str, Any], variant: Variant) -> DenseRun:
        """`dense` trained again from its theta0 with `variant`'s tweaks."""
        model = dense.model.replace(**variant.section("model"))
        train = dense.train.replace(**variant.section("train"))
        gradinit = self.gradinit.replace(**variant.section("gradinit"))
        gradinit_record = {"gradinit": gradinit.to_dict()} if gradinit.enabled else {}
        record = self.record(
            stage="dense",
            seed=dense.seed,
            model=model.to_dict(),
            data=data_record,
            train=train_identity(train),
            init=dense.key,
            **gradinit_record,
        )
        key = f"dense-{short_hash(record)}"
        return self.dense.setdefault(key, DenseRun(key, dense.seed, model, dense.data, train, gradinit, dense.key))

    def _add_chain(self, method: str, dense: DenseRun, prune: PruneHparams, rewind_epoch: int) -> Chain:
        rewind_epoch = rewind_epoch if method == "imp" else 0  # OMP masks do not depend on any re-training
        record = self.record(stage=method, dense=dense.key, prune=prune.to_dict(), rewind_epoch=rewind_epoch)
        chain = Chain(f"{method}-{short_hash(record)}", method, dense, prune, rewind_epoch)
        return self.chains.setdefault(chain.key, chain)

    def _add_source(
        self, index: int, spec: MaskSpec, dense: DenseRun, prune: PruneHparams, magnitude: Chain | None, level: int
    ) -> Chain:
        """The chain of mask source `spec` (`masks[index]`) other than magnitude for `dense`'s seed, which
        holds its mask of `level`. Its hash holds the source's settings. A user's file is a chain of its
        own per level, hashed by its content (never its path) and which tensors are prunable: a changed
        file is a new run, and neither another file nor other levels change it."""
        settings, like, files = dict(spec.settings), None, {}
        prune_record = prune.to_dict()
        if settings.get("like"):
            like, settings["like"] = magnitude, magnitude.key
        if spec.source == "file":
            files = {level: level_file(spec.settings["path"], level, dense.seed)}
            settings = {"level": level, "sha256": file_digest(f"masks[{index}].path", files[level], level)}
            prune_record = {"include_linear": prune.include_linear}  # a user's mask has its own sparsity
        record = self.record(stage=spec.source, dense=dense.key, prune=prune_record, settings=settings)
        chain = Chain(f"{spec.source}-{short_hash(record)}", spec.source, dense, prune, 0, settings, like, files)
        return self.chains.setdefault(chain.key, chain)

    def _add_sparse(self, chain: Chain, level: int, variant: Variant) -> SparseRun:
        start = self.config["rewind_epoch"] if variant.start == "rewind" else 0
        reinit_seed = chain.dense.seed + self.config["reinit_seed_offset"] if variant.start == "reinit" else None
        model = chain.dense.model.replace(**variant.section("model"))
        train = chain.dense.train.replace(**variant.section("train"))
        gradinit = self.gradinit.replace(**variant.section("gradinit"))
        return self._sparse_run(chain, level, start, model, train, gradinit, reinit_seed)

    def _sparse_run(
        self,
        chain: Chain,
        level: int,
        start_epoch: int,
        model: ModelHparams,
        train: TrainHparams,
        gradinit: GradinitHparams,
        reinit_seed: int | None = None,
    ) -> SparseRun:
        # GradInit's settings change nothing while it is off, so only then do they split the cache.
        gradinit_record = {"gradinit": gradinit.to_dict()} if gradinit.enabled else {}
        reinit_record = {"reinit_seed": reinit_seed} if reinit_seed is not None else {}
        record = self.record(
            stage="sparse",
            dense=chain.dense.key,
            mask=f"{chain.key}/level{level}",
            start_epoch=start_epoch,
            model=model.to_dict(),
            train=train_identity(train),
            **gradinit_record,
            **reinit_record,
        )
        run = SparseRun(
            f"sparse-{short_hash(record)}", chain.dense, chain, level, start_epoch, model, train, gradinit, reinit_seed
        )
        return self.sparse.setdefault(run.key, run)

    def chain_run(self, chain: Chain, level: int) -> SparseRun:
        """The IMP chain's own training at `level`, whose weights the next level prunes."""
        return self._sparse_run(chain, level, chain.rewind_epoch, chain.dense.model, chain.dense.train, self.gradinit)

    # ---- paths the workflow rules ask for -------------------------------------------------
    def folder(self, key: str) -> str:
        return str(self.results / "runs" / key)

    def start_weights(self, dense: DenseRun, epoch: int, reinit_seed: int | None = None) -> str:
        folder = self.folder(dense.key)
        if reinit_seed is not None:
            return self.reinit_weights(dense.key, reinit_seed)
        return f"{folder}/init.pt" if epoch == 0 else self.rewind_point(dense.key, epoch)

    def reinit_weights(self, dense_key: str, seed: int) -> str:
        """A fresh initialisation of `dense_key`'s network drawn with `seed` (rule reinit)."""
        return f"{self.folder(dense_key)}/reinit/seed{seed}.pt"

    def rewind_point(self, dense_key: str, epoch: int) -> str:
        """The dense weights after `epoch`: a file of its own (rule rewind_point), so that a new
        rewind point never makes the finished dense run look incomplete."""
        return f"{self.folder(dense_key)}/rewind/epoch{epoch}.pt"

    def rewind_points(self) -> list[str]:
        return [self.rewind_point(key, epoch) for key, epochs in self.rewind.items() for epoch in sorted(epochs)]

    def reinit_points(self) -> list[str]:
        return sorted(
            {
                self.reinit_weights(run.dense.key, run.reinit_seed)
                for run in self.sparse.values()
                if run.reinit_seed is not None
            }
        )

    def mask_paths(self) -> list[str]:
        """Every mask a run of the plan trains with (an IMP chain's levels below the last included), and
        the masks whose per-layer counts a random mask copies."""
        used = [(run.chain, run.level) for run in self.sparse.values()]
        used += [(chain.like, level) for chain, level in used if chain.like]
        return sorted({self.mask_path(chain, level) for chain, level in used})

    def mask_path(self, chain: Chain, level: int) -> str:
        return f"{self.folder(chain.key)}/level{level}/mask.pt"

    def prune_inputs(self, chain_key: str, level: int) -> dict[str, str]:
        """What level `level` of a chain is drawn from: the trained weights magnitude pruning ranks (and
        the previous IMP level), or another source's theta0 (and its reference mask, or the user's file)."""
        chain = self.chains[chain_key]
        if chain.method not in ("imp", "omp"):
            inputs = {"weights": f"{self.folder(chain.dense.key)}/init.pt"}
            if chain.like:
                inputs["like"] = self.mask_path(chain.like, level)
            return inputs
        if chain.method == "omp" or level == 1:
            return {"weights": f"{self.folder(chain.dense.key)}/final.pt"}
        previous = self.chain_run(chain, level - 1)
        return {"weights": f"{self.folder(previous.key)}/final.pt", "mask": self.mask_path(chain, level - 1)}

    def prune_rounds(self, chain_key: str, level: int) -> int:
        """`lth prune --rounds`: one more IMP round, else straight to the level's count."""
        return 1 if self.chains[chain_key].method == "imp" else level

    def prune_options(self, chain_key: str, level: int) -> str:
        """`lth prune` flags of a chain's source at `level`: --method and its settings (the workflow files
        it reads come from prune_inputs). A user's file is passed by path, not as a Snakemake input:
        its content is in the chain's hash, and a moved file must not look like a changed input."""
        chain = self.chains[chain_key]
        if chain.method in ("imp", "omp"):
            return f"--method magnitude {flags(chain.prune)}"
        words = ["--method", chain.method, "--seed", str(chain.dense.seed)]
        if chain.method == "file":
            words += ["--file", chain.files[level]]
        elif chain.method in ("snip", "grasp"):
            words += ["--batches", str(chain.settings["batches"]), "--batch-size", str(chain.settings["batch_size"])]
        elif chain.method == "synflow":
            words += ["--synflow-rounds", str(chain.settings["rounds"])]
        return f"{shlex.join(words)} {flags(chain.prune)}"

    def sparse_inputs(self, key: str) -> dict[str, str]:
        run = self.sparse[key]
        inputs = {
            "init": self.start_weights(run.dense, run.start_epoch, run.reinit_seed),
            "mask": self.mask_path(run.chain, run.level),
        }
        if run.train.kd_alpha > 0:
            inputs["teacher"] = f"{self.folder(run.dense.key)}/final.pt"  # the dense network of the same seed
        return inputs

    # ---- analyses ---------------------------------------------------------------------------
    def epoch_range(self, key: str) -> tuple[int, int]:
        """(start epoch, last epoch) of run `key`: the epochs after the first are its own training."""
        if key in self.dense:
            return 0, self.dense[key].train.epochs
        run = self.sparse[key]
        return run.start_epoch, run.train.epochs

    def kept_epochs(self, key: str) -> list[int]:
        """Epochs run `key` keeps as by-products (epoch<k>.pt): its rewind points and snapshots.
        Not declared outputs, so asking for more later never makes a finished run look incomplete."""
        epochs = set(self.rewind.get(key, ()))
        last = self.epoch_range(key)[1]
        epochs |= {job.epoch for job in self.analyses.values() if job.run == key and job.epoch < last}
        return sorted(epochs)

    def weights(self, key: str, epoch: int) -> str:
        """The weights of run `key` after `epoch`: final.pt, a dense rewind point or a sparse snapshot."""
        if epoch == self.epoch_range(key)[1]:
            return f"{self.folder(key)}/final.pt"
        return self.rewind_point(key, epoch) if key in self.dense else self.snapshot(key, epoch)

    def snapshot(self, sparse_key: str, epoch: int) -> str:
        """A sparse run's weights after `epoch`, a file of its own (rule snapshot), like a rewind point."""
        return f"{self.folder(sparse_key)}/snapshots/epoch{epoch}.pt"

    def snapshots(self) -> list[str]:
        return sorted(
            {
                self.weights(job.run, job.epoch)
                for job in self.analyses.values()
                if job.run in self.sparse and job.epoch < self.epoch_range(job.run)[1]
            }
        )

    def training_inputs(self, key: str) -> dict[str, str]:
        """The files run `key`'s training reads (init weights, mask, teacher)."""
        if key in self.dense:
            return {"init": f"{self.folder(self.dense[key].init)}/init.pt"}
        return self.sparse_inputs(key)

    def analysis_inputs(self, output: str) -> dict[str, str]:
        """The files analysis job `output` reads: the weights analysed and the run's mask."""
        job = self.analyses[output]
        if not job.analysis.suffix:  # a tracked re-training of the run
            return self.training_inputs(job.run)
        inputs = {"weights": self.weights(job.run, job.epoch)}
        if job.run in self.sparse:
            run = self.sparse[job.run]
            inputs["mask"] = self.mask_path(run.chain, run.level)
        return inputs

    def analysis_rows(self, name: str) -> str:
        """`lth analyze collect` rows of analysis `name`: SEED:VARIANT:LEVEL:EPOCH:RUN_FOLDER:FILE."""
        rows = [
            f"{s.seed}:{s.variant}:{s.level}:{s.epoch}:{self.folder(job.run)}:{job.collected_file}"
            for job in self.analysis_jobs(name)
            for s in job.subjects
        ]
        return shlex.join(dict.fromkeys(rows))

    def analysis_jobs(self, name: str) -> list[AnalysisJob]:
        return [job for job in self.analyses.values() if job.analysis.name == name]

    def collected(self) -> dict[str, str]:
        """Analysis name -> the collected CSV, for the analyses this experiment asks for."""
        names = dict.fromkeys(job.analysis.name for job in self.analyses.values())
        return {name: str(self.experiment_dir() / "analysis" / ANALYSES[name].collected) for name in names}

    def experiment_dir(self) -> Path:
        return self.results / self.config["experiment"]

    def run_folders(self) -> list[str]:
        """Every run folder the experiment's summary.csv reads."""
        return sorted({row.run for row in self.rows})

    def row_args(self) -> str:
        return shlex.join(f"{row.seed}:{row.variant}:{row.level}:{row.mask_source}:{row.run}" for row in self.rows)

    def primary_rows(self) -> list[Row]:
        """The rows of the dense runs and of the first mask source: what the analyses read."""
        first = self.masks[0].label
        return [row for row in self.rows if row.mask_source in ("", first)]

    def job_count(self) -> dict[str, int]:
        """Jobs the full DAG holds per rule, for checks and the README."""
        theta0 = [run for run in self.dense.values() if not run.baseline]
        return {
            "init": len(theta0),
            "train_dense": len(self.dense),
            "rewind_point": len(self.rewind_points()),
            "reinit": len(self.reinit_points()),
            "prune": len(self.mask_paths()),
            "train_sparse": len(self.sparse),
        }

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
        return merged


@functools.cache
def _digest(path: str, mtime_ns: int, size: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def file_digest(key: str, path: str, level: int) -> str:
    """sha256 of a user's mask file (read once per version of the file in a process)."""
    if not Path(path).is_file():
        raise PlanError(
            f"{key}: {path} does not exist: the mask of level {level} (prune.levels asks for levels "
            "whose files must all exist)"
        )
    stat = Path(path).stat()
    return _digest(path, stat.st_mtime_ns, stat.st_size)
