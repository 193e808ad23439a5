"""The run cache, `results/runs/`: what each folder is and how far it got (`lth ls`), and which folders no
config still plans (`lth gc`). Reads files only, never torch: listing thousands of runs stays quick.

A folder is named `<kind>-<hash>`: dense and sparse runs (`final.pt`, `summary.json` last), and mask
chains (`imp-`, `omp-`: one `level<k>/mask.pt` per level).

`lth ls` names what each run trained as a variant (`trained_as`: `lth`, `at+trt`, `dense`,
`dense+swish`, ...; read from its record, since one folder serves every variant spelling that
resolves to the same settings) and its test accuracy as summary.csv does: `test_acc_pct`, in % at
the epoch of best validation accuracy (`final_test_acc_pct`, after the last epoch, in --json).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from lth.artifacts import HPARAMS, MASK_SIDECAR, RESUME_STATE, SUMMARY
from lth.errors import LthError
from lth.yamlio import DuplicateKeyError, read_yaml

COLUMNS = ("kind", "hash", "status", "variant", "settings", "test_acc_pct", "age", "size")


@dataclass(frozen=True)
class RunFolder:
    path: str
    kind: str
    hash: str
    status: str  # finished, resumable, empty; for chains: "<n> levels"
    variant: str  # trained_as (empty for a mask chain or an unreadable record)
    settings: str
    test_acc_pct: float | None  # at the epoch of best validation accuracy, as summary.csv's test_acc_pct
    final_test_acc_pct: float | None  # after the last epoch
    age_seconds: float
    size_bytes: int

    def row(self) -> dict[str, str]:
        accuracy = "" if self.test_acc_pct is None else f"{self.test_acc_pct:.2f}"
        return {
            "kind": self.kind,
            "hash": self.hash,
            "status": self.status,
            "variant": self.variant,
            "settings": self.settings,
            "test_acc_pct": accuracy,
            "age": _age(self.age_seconds),
            "size": human_size(self.size_bytes),
        }


def scan(results: Path) -> list[RunFolder]:
    """Every run folder under `results`/runs, sorted by name."""
    runs = Path(results) / "runs"
    if not runs.is_dir():
        raise LthError(f"{runs} does not exist: give the results folder of a workflow (default: results)")
    return [
        describe(path)
        for path in sorted(runs.iterdir())
        if path.is_dir() and "-" in path.name and not path.name.startswith(".")
    ]


def describe(path: Path) -> RunFolder:
    kind, _, digest = path.name.partition("-")
    files = [entry for entry in path.rglob("*") if entry.is_file()]
    newest = max((entry.stat().st_mtime for entry in files), default=path.stat().st_mtime)
    size = sum(entry.stat().st_size for entry in files)
    accuracy: dict[str, float | None] = {"test_acc_at_best_val": None, "final_test_acc": None}
    variant = ""
    if kind in ("dense", "sparse"):
        summary = _read_json(path / SUMMARY)
        if summary is not None:
            status = "finished"
            accuracy = {key: _percent(summary.get(key)) for key in accuracy}
        elif (path / RESUME_STATE).is_file():
            status = "resumable"
        else:
            status = "empty"
        record = _read_record(path / HPARAMS)
        settings = _settings(record)
        variant = trained_as(record) if record is not None else ""
    else:
        levels = sorted(
            int(level.name[5:])
            for level in path.glob("level*")
            if level.name[5:].isdigit() and (level / MASK_SIDECAR).is_file()
        )
        status = f"{len(levels)} levels" if levels else "empty"
        settings = f"levels {levels[0]}-{levels[-1]}" if levels else ""
    return RunFolder(
        str(path),
        kind,
        digest,
        status,
        variant,
        settings,
        accuracy["test_acc_at_best_val"],
        accuracy["final_test_acc"],
        time.time() - newest,
        size,
    )


def _percent(fraction: Any) -> float | None:
    from lth.report.summary import percent

    return percent(fraction) if isinstance(fraction, (int, float)) and not isinstance(fraction, bool) else None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return content if isinstance(content, dict) else None


def _read_record(path: Path) -> dict[str, Any] | None:
    """A run's hparams.yaml, or None when it is missing or not a mapping."""
    try:
        record = read_yaml(path)
    except (OSError, yaml.YAMLError):
        return None
    return record if isinstance(record, dict) else None


def _section(record: dict[str, Any], key: str) -> dict[str, Any]:
    section = record.get(key)
    return section if isinstance(section, dict) else {}


def _settings(record: dict[str, Any] | None) -> str:
    """model, width, data, epochs (the start epoch of a rewound run; the mask's level) from the run's record."""
    if record is None:
        return ""
    model, data, train = (_section(record, key) for key in ("model", "data", "train"))
    text = f"{model.get('name', '?')} w{model.get('width', '?')} {data.get('name', '?')} {train.get('epochs', '?')} ep"
    text += f" from {record['start_epoch']}" if record.get("start_epoch") else ""
    level = Path(str(_section(record, "mask").get("path", ""))).parent.name  # a plan's chain: <chain>/level<k>/mask.pt
    trained = _section(record, "sparse_training")  # a sparse training: its algorithm and final sparsity
    if trained:
        text += f", {trained.get('algorithm', '?')} to {100 * float(trained.get('sparsity', 0)):.4g}%"
    return text + (f", level {level[5:]}" if level.startswith("level") and level[5:].isdigit() else "")


def trained_as(record: dict[str, Any]) -> str:
    """The variant a run's record (hparams.yaml) trained, named as a config names it: `dense` or
    `dense+<tweaks>` without a mask, else `lth` or its parts (lth.variants.PARTS), the aliases `at`
    and `trt` first where all their parts are present, then the other parts in alphabetical order,
    e.g. `at+trt+rewind`, `at+gradinit+kd`. A part is present when the
    record holds its setting (the base sections keep every part's default: lth.plan.config.check_base_sections);
    `rewind` is a masked run's start epoch above 0, `reinit` weights from the plan's `reinit/` folder.
    A tweak's setting at a value no part sets (a run trained by hand) is named `<field>=<value>`."""
    from lth.hparams import GradinitHparams, ModelHparams, TrainHparams
    from lth.variants import ALIASES, PARTS

    defaults = {"model": ModelHparams(), "train": TrainHparams(), "gradinit": GradinitHparams()}
    masked = bool(record.get("mask") or record.get("sparse_training"))  # a sparse training draws its own
    reinit = Path(str(_section(record, "init").get("path", ""))).parent.name == "reinit"  # Plan.reinit_weights
    start = "reinit" if reinit else "rewind" if masked and (record.get("start_epoch") or 0) > 0 else "theta0"

    def value(key: str) -> Any:  # "start" or "<section>.<field>", its default where the record lacks it
        if key == "start":
            return start
        section, _, field = key.partition(".")
        return _section(record, section).get(field, getattr(defaults[section], field))

    parts = [part for part, settings in PARTS.items() if all(value(k) == v for k, v in settings.items())]
    matched = {key for part in parts for key in PARTS[part]}
    others = [
        f"{key.partition('.')[2]}={value(key)}"
        for key in dict.fromkeys(key for settings in PARTS.values() for key in settings if key != "start")
        if key not in matched and value(key) != getattr(defaults[key.partition(".")[0]], key.partition(".")[2])
    ]
    names = []
    for alias, alias_parts in ALIASES.items():
        if alias_parts and set(alias_parts) <= set(parts):
            names.append(alias)
            parts = [part for part in parts if part not in alias_parts]
    names += sorted(parts) + others
    return "+".join(["dense", *names]) if not masked else "+".join(names) or "lth"


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def human_size(count: int) -> str:
    for unit, size in (("GB", 2**30), ("MB", 2**20), ("kB", 2**10)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} B"


def table(folders: list[RunFolder], why: dict[str, str] | None = None) -> str:
    """`lth ls`'s table; with `why` (folder name -> text), a last column saying it (`lth gc`)."""
    columns = (*COLUMNS, "why") if why is not None else COLUMNS
    rows = [
        dict(zip(columns, columns)),
        *({**folder.row(), **({"why": why[Path(folder.path).name]} if why is not None else {})} for folder in folders),
    ]
    widths = {column: max(len(row[column]) for row in rows) for column in columns}
    return "\n".join("  ".join(row[column].ljust(widths[column]) for column in columns).rstrip() for row in rows)


def as_json(folders: list[RunFolder]) -> str:
    return json.dumps([asdict(folder) for folder in folders], indent=2)


# --- garbage collection --------------------------------------------------------------------


def referenced(config_paths: list[Path]) -> tuple[Path, set[str]]:
    """(results folder, names of the run folders) that the configs' experiments plan. Every config
    must plan, or nothing is known to be unused."""
    from snakemake.utils import validate

    from lth.experiments import experiment_configs
    from lth.plan.config import resolve_data_root
    from lth.plan.graph import Plan

    schema = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"
    results: set[str] = set()
    names: set[str] = set()
    for path in config_paths:
        try:
            config = read_yaml(path)
        except DuplicateKeyError:
            raise  # it names the file, the key and both lines
        except (OSError, yaml.YAMLError) as error:
            raise LthError(f"config {path} cannot be read ({error})") from None
        for experiment in experiment_configs(config).values():
            try:
                validate(experiment, str(schema))
            except Exception as error:  # snakemake's WorkflowError carries the schema's message
                raise LthError(f"config {path}: {error}") from None
            resolve_data_root(experiment, [Path(path)])
            plan = Plan.from_config(experiment)
            results.add(str(plan.results))
            names.update([*plan.dense, *plan.chains, *plan.sparse])
    if len(results) != 1:
        raise LthError(
            f"the configs write to different results folders ({', '.join(sorted(results))}); collect one at a time"
        )
    return Path(results.pop()), names


@dataclass
class Collection:
    """What `lth gc` would delete and why, and what it keeps."""

    results: Path
    unused: list[RunFolder]
    why: dict[str, str]  # folder name -> why it is unused
    kept_by: dict[str, int]  # who keeps runs -> how many of the store's folders

    @property
    def size(self) -> int:
        return sum(folder.size_bytes for folder in self.unused)

    def report(self) -> str:
        lines = [f"kept: {count} run folders used by {who}" for who, count in self.kept_by.items()]
        if not self.unused:
            return "\n".join([*lines, f"nothing to delete under {self.results / 'runs'}"])
        return "\n".join(
            [*lines, f"unused: {len(self.unused)} run folders ({human_size(self.size)})", table(self.unused, self.why)]
        )


def collection(results: Path, planned: set[str], recorded: dict[str, dict[str, Any]], forget: list[str]) -> Collection:
    """The run folders of `results` that no config plans (`planned`) and no recorded experiment uses,
    the experiments in `forget` left out."""
    users: dict[str, list[str]] = {}
    for experiment, record in recorded.items():
        for name in record["runs"]:
            users.setdefault(name, []).append(experiment)
    kept_by: dict[str, int] = {}
    unused, why = [], {}
    for folder in scan(results):
        name = Path(folder.path).name
        keepers = [f"experiment {e}" for e in users.get(name, []) if e not in forget]
        if name in planned:
            keepers.append("the configs given")
        for keeper in keepers:
            kept_by[keeper] = kept_by.get(keeper, 0) + 1
        if keepers:
            continue
        unused.append(folder)
        forgotten = [e for e in users.get(name, []) if e in forget]
        why[name] = (
            f"used only by {', '.join(forgotten)} (forgotten)"
            if forgotten
            else "no recorded experiment uses it" + (", no config given plans it" if planned else "")
        )
    return Collection(results, unused, why, dict(sorted(kept_by.items())))


def delete(results: Path, folder: RunFolder) -> None:
    """Remove a run folder and the links that published its files (lth/store.py)."""
    from lth.store import PUBLISHED

    shutil.rmtree(Path(results) / PUBLISHED / "runs" / Path(folder.path).name, ignore_errors=True)
    shutil.rmtree(folder.path)
