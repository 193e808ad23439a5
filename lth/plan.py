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

import hashlib
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lth.analysis.jobs import ANALYSES, AnalysisJob, plan_analyses
from lth.data.identity import data_identity
from lth.errors import LthError
from lth.hparams import DataHparams, GradinitHparams, Hparams, ModelHparams, PruneHparams, TrainHparams
from lth.variants import PARTS, Variant, resolve

HASH_LENGTH = 10
CHAIN_KEYS = ("method", "levels", "rewind_epoch")  # workflow keys of `prune`; the rest is PruneHparams


class PlanError(LthError):
    """The config asks for something the workflow cannot build."""


def resolve_data_root(config: dict[str, Any], config_files: list[Path]) -> None:
    """Make a relative `data.root` absolute, relative to the config file that sets it (the last one
    that does, in the experiment's overrides or the base), so an experiment reads the same data from
    any working directory (`snakemake -d`)."""
    root = (config.get("data") or {}).get("root")
    if root is None or Path(root).expanduser().is_absolute():
        return
    base = Path.cwd()  # set by --config on the command line, not by a file

    def sets_root(section: Any) -> bool:
        return isinstance(section, dict) and isinstance(section.get("data"), dict) and "root" in section["data"]

    for path in reversed(config_files):
        content = yaml.safe_load(Path(path).read_text()) or {}
        overrides = (content.get("experiments") or {}).get(config["experiment"]) if isinstance(content, dict) else None
        if sets_root(overrides) or sets_root(content):
            base = Path(path).resolve().parent
            break
    config["data"] = {**config["data"], "root": str((base / Path(root).expanduser()).resolve())}


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
                raise PlanError(f"{key}: {value!r} is not allowed in the config's `{section}` section: it would train "
                                f"the dense network and draw the ticket with a tweak, and tweaks apply only in "
                                f"re-training; leave it at {default!r} and add the `{part}` part to a variant")


def dense_variant(name: str) -> Variant:
    """A `dense_variants` entry: tweaks the dense network is trained with from theta0, as a baseline
    for the tweak's effect on sparse networks (the paper's Figure 1 dashed lines)."""
    variant = resolve(name, source="dense_variants")
    why = ("it has no tweak: it is the dense network itself" if not variant.parts else
           "the dense network trains from theta0, not from a rewind point" if variant.start == "rewind" else
           "distillation's teacher is the dense network itself" if variant.section("train").get("kd_alpha") else None)
    if why:
        allowed = ", ".join(part for part in PARTS if part not in ("rewind", "kd"))
        raise PlanError(f"dense_variants: {name!r} is not allowed; {why}. Parts allowed here: {allowed} "
                        "(and the aliases at, trt)")
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
    """A sequence of masks drawn from one dense run: IMP levels, or one-shot (OMP) levels."""

    key: str
    method: str
    dense: DenseRun
    prune: PruneHparams
    rewind_epoch: int  # where the IMP chain's own training starts (0 = theta0)


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


@dataclass(frozen=True)
class Row:
    """One line of an experiment's summary.csv."""

    seed: int
    variant: str
    level: int
    run: str


@dataclass
class Plan:
    config: dict[str, Any]
    results: Path
    dense: dict[str, DenseRun] = field(default_factory=dict)
    chains: dict[str, Chain] = field(default_factory=dict)
    sparse: dict[str, SparseRun] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    levels: list[int] = field(default_factory=list)  # the experiment's levels (1 = the first mask)
    prune_rate: float = 0.2
    gradinit: GradinitHparams = field(default_factory=GradinitHparams)  # before variants change it
    rewind_epochs: set[int] = field(default_factory=set)  # kept as rewind points by every dense run
    rewind: dict[str, set[int]] = field(default_factory=dict)  # dense run -> its rewind points
    analyses: dict[str, AnalysisJob] = field(default_factory=dict)  # by output path (lth.analysis.jobs)

    # ---- building -------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Plan:
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
        variants = [resolve(name) for name in config["variants"]]
        dense_variants = [dense_variant(name) for name in config.get("dense_variants", [])]
        plan.rewind_epochs = plan._check_epochs(train, chain_settings, variants)
        data_record = data_identity(data)  # before any job: reads (and caches) user files' fingerprints

        for seed in config["seeds"]:
            dense = plan._add_dense(seed, model, data, data_record, train)
            plan.rewind.setdefault(dense.key, set()).update(plan.rewind_epochs)
            plan.rows.append(Row(seed, "dense", 0, plan.folder(dense.key)))
            for variant in dense_variants:
                baseline = plan._add_baseline(dense, data_record, variant)
                plan.rows.append(Row(seed, f"dense+{variant.name}", 0, plan.folder(baseline.key)))
            chain = plan._add_chain(chain_settings["method"], dense, prune, chain_settings["rewind_epoch"])
            if chain.method == "imp":  # the chain trains each level to draw the next, whatever the variants
                for level in range(1, max(plan.levels)):
                    plan.chain_run(chain, level)
            for variant in variants:
                for level in plan.levels:
                    run = plan._add_sparse(chain, level, variant)
                    plan.rows.append(Row(seed, variant.name, level, plan.folder(run.key)))
        if config.get("analysis"):
            from lth.data import split_sizes

            plan.analyses = plan_analyses(plan, config["analysis"], split_sizes(data))
        return plan

    def _check_epochs(self, train: TrainHparams, chain: dict[str, Any], variants: list[Variant]) -> set[int]:
        """The dense epochs (> 0) this experiment keeps as rewind points."""
        needed = {f"save_epochs[{i}]": epoch for i, epoch in enumerate(self.config["save_epochs"])}
        if chain["method"] == "imp":
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

    def _add_dense(self, seed: int, model: ModelHparams, data: DataHparams, data_record: dict[str, Any],
                   train: TrainHparams) -> DenseRun:
        record = self.record(stage="dense", seed=seed, model=model.to_dict(), data=data_record,
                              train=train_identity(train))
        key = f"dense-{short_hash(record)}"
        return self.dense.setdefault(key, DenseRun(key, seed, model, data, train, self.gradinit, key))

    def _add_baseline(self, dense: DenseRun, data_record: dict[str, Any], variant: Variant) -> DenseRun:
        """`dense` trained again from its theta0 with `variant`'s tweaks."""
        model = dense.model.replace(**variant.section("model"))
        train = dense.train.replace(**variant.section("train"))
        gradinit = self.gradinit.replace(**variant.section("gradinit"))
        gradinit_record = {"gradinit": gradinit.to_dict()} if gradinit.enabled else {}
        record = self.record(stage="dense", seed=dense.seed, model=model.to_dict(), data=data_record,
                              train=train_identity(train), init=dense.key, **gradinit_record)
        key = f"dense-{short_hash(record)}"
        return self.dense.setdefault(key, DenseRun(key, dense.seed, model, dense.data, train, gradinit, dense.key))

    def _add_chain(self, method: str, dense: DenseRun, prune: PruneHparams, rewind_epoch: int) -> Chain:
        rewind_epoch = rewind_epoch if method == "imp" else 0  # OMP masks do not depend on any re-training
        record = self.record(stage=method, dense=dense.key, prune=prune.to_dict(), rewind_epoch=rewind_epoch)
        chain = Chain(f"{method}-{short_hash(record)}", method, dense, prune, rewind_epoch)
        return self.chains.setdefault(chain.key, chain)

    def _add_sparse(self, chain: Chain, level: int, variant: Variant) -> SparseRun:
        start = self.config["rewind_epoch"] if variant.start == "rewind" else 0
        model = chain.dense.model.replace(**variant.section("model"))
        train = chain.dense.train.replace(**variant.section("train"))
        gradinit = self.gradinit.replace(**variant.section("gradinit"))
        return self._sparse_run(chain, level, start, model, train, gradinit)

    def _sparse_run(self, chain: Chain, level: int, start_epoch: int, model: ModelHparams,
                    train: TrainHparams, gradinit: GradinitHparams) -> SparseRun:
        # GradInit's settings change nothing while it is off, so only then do they split the cache.
        gradinit_record = {"gradinit": gradinit.to_dict()} if gradinit.enabled else {}
        record = self.record(stage="sparse", dense=chain.dense.key, mask=f"{chain.key}/level{level}",
                              start_epoch=start_epoch, model=model.to_dict(), train=train_identity(train),
                              **gradinit_record)
        run = SparseRun(f"sparse-{short_hash(record)}", chain.dense, chain, level, start_epoch, model, train,
                        gradinit)
        return self.sparse.setdefault(run.key, run)

    def chain_run(self, chain: Chain, level: int) -> SparseRun:
        """The IMP chain's own training at `level`, whose weights the next level prunes."""
        return self._sparse_run(chain, level, chain.rewind_epoch, chain.dense.model, chain.dense.train,
                                self.gradinit)

    # ---- paths the workflow rules ask for -------------------------------------------------
    def folder(self, key: str) -> str:
        return str(self.results / "runs" / key)

    def start_weights(self, dense: DenseRun, epoch: int) -> str:
        folder = self.folder(dense.key)
        return f"{folder}/init.pt" if epoch == 0 else self.rewind_point(dense.key, epoch)

    def rewind_point(self, dense_key: str, epoch: int) -> str:
        """The dense weights after `epoch`: a file of its own (rule rewind_point), so that a new
        rewind point never makes the finished dense run look incomplete."""
        return f"{self.folder(dense_key)}/rewind/epoch{epoch}.pt"

    def rewind_points(self) -> list[str]:
        return [self.rewind_point(key, epoch) for key, epochs in self.rewind.items() for epoch in sorted(epochs)]

    def mask_paths(self) -> list[str]:
        """Every mask a run of the plan trains with (an IMP chain's levels below the last included)."""
        return sorted({self.mask_path(run.chain, run.level) for run in self.sparse.values()})

    def mask_path(self, chain: Chain, level: int) -> str:
        return f"{self.folder(chain.key)}/level{level}/mask.pt"

    def prune_inputs(self, chain_key: str, level: int) -> dict[str, str]:
        chain = self.chains[chain_key]
        if chain.method == "omp" or level == 1:
            return {"weights": f"{self.folder(chain.dense.key)}/final.pt"}
        previous = self.chain_run(chain, level - 1)
        return {"weights": f"{self.folder(previous.key)}/final.pt", "mask": self.mask_path(chain, level - 1)}

    def prune_rounds(self, chain_key: str, level: int) -> int:
        return level if self.chains[chain_key].method == "omp" else 1

    def sparse_inputs(self, key: str) -> dict[str, str]:
        run = self.sparse[key]
        inputs = {"init": self.start_weights(run.dense, run.start_epoch), "mask": self.mask_path(run.chain, run.level)}
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
        return sorted({self.weights(job.run, job.epoch) for job in self.analyses.values()
                       if job.run in self.sparse and job.epoch < self.epoch_range(job.run)[1]})

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
        rows = [f"{s.seed}:{s.variant}:{s.level}:{s.epoch}:{self.folder(job.run)}:"
                f"{job.collected_file}" for job in self.analysis_jobs(name) for s in job.subjects]
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
        return shlex.join(f"{row.seed}:{row.variant}:{row.level}:{row.run}" for row in self.rows)

    def job_count(self) -> dict[str, int]:
        """Jobs the full DAG holds per rule, for checks and the README."""
        theta0 = [run for run in self.dense.values() if not run.baseline]
        return {"init": len(theta0), "train_dense": len(self.dense), "rewind_point": len(self.rewind_points()),
                "prune": len(self.mask_paths()), "train_sparse": len(self.sparse)}

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
