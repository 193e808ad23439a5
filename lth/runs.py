"""The run cache, `results/runs/`: what each folder is and how far it got (`lth ls`), and which folders no
config still plans (`lth gc`). Reads files only, never torch: listing thousands of runs stays quick.

A folder is named `<kind>-<hash>`: dense and sparse runs (`final.pt`, `summary.json` last), and mask
chains (`imp-`, `omp-`: one `level<k>/mask.pt` per level).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from lth.errors import LthError

COLUMNS = ("kind", "hash", "status", "settings", "test_acc", "age", "size")


@dataclass(frozen=True)
class RunFolder:
    path: str
    kind: str
    hash: str
    status: str  # finished, resumable, empty; for chains: "<n> levels"
    settings: str
    test_acc: float | None
    age_seconds: float
    size_bytes: int

    def row(self) -> dict[str, str]:
        return {"kind": self.kind, "hash": self.hash, "status": self.status, "settings": self.settings,
                "test_acc": "" if self.test_acc is None else f"{100 * self.test_acc:.2f}%",
                "age": _age(self.age_seconds), "size": human_size(self.size_bytes)}


def scan(results: Path) -> list[RunFolder]:
    """Every run folder under `results`/runs, sorted by name."""
    runs = Path(results) / "runs"
    if not runs.is_dir():
        raise LthError(f"{runs} does not exist: give the results folder of a workflow (default: results)")
    return [describe(path) for path in sorted(runs.iterdir()) if path.is_dir() and "-" in path.name]


def describe(path: Path) -> RunFolder:
    kind, _, digest = path.name.partition("-")
    files = [entry for entry in path.rglob("*") if entry.is_file()]
    newest = max((entry.stat().st_mtime for entry in files), default=path.stat().st_mtime)
    size = sum(entry.stat().st_size for entry in files)
    test_acc = None
    if kind in ("dense", "sparse"):
        summary = _read_json(path / "summary.json")
        if summary is not None:
            status, test_acc = "finished", summary.get("final_test_acc")
        elif (path / ".resume" / "state.pt").is_file():
            status = "resumable"
        else:
            status = "empty"
        settings = _settings(path / "hparams.yaml")
    else:
        levels = sorted(int(level.name[5:]) for level in path.glob("level*")
                        if level.name[5:].isdigit() and (level / "mask.json").is_file())
        status = f"{len(levels)} levels" if levels else "empty"
        settings = f"levels {levels[0]}-{levels[-1]}" if levels else ""
    return RunFolder(str(path), kind, digest, status, settings, test_acc, time.time() - newest, size)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return content if isinstance(content, dict) else None


def _settings(path: Path) -> str:
    """model, width, data, epochs (and the start epoch of a rewound run) from the run's record."""
    try:
        record = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return ""
    if not isinstance(record, dict):
        return ""
    model, data, train = (record.get(key) or {} for key in ("model", "data", "train"))
    text = f"{model.get('name', '?')} w{model.get('width', '?')} {data.get('name', '?')} {train.get('epochs', '?')} ep"
    return text + (f" from {record['start_epoch']}" if record.get("start_epoch") else "")


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


def table(folders: list[RunFolder]) -> str:
    rows = [dict(zip(COLUMNS, COLUMNS)), *(folder.row() for folder in folders)]
    widths = {column: max(len(row[column]) for row in rows) for column in COLUMNS}
    return "\n".join("  ".join(row[column].ljust(widths[column]) for column in COLUMNS).rstrip() for row in rows)


def as_json(folders: list[RunFolder]) -> str:
    return json.dumps([asdict(folder) for folder in folders], indent=2)


# --- garbage collection --------------------------------------------------------------------


def referenced(config_paths: list[Path]) -> tuple[Path, set[str]]:
    """(results folder, names of the run folders) that the configs' experiments plan. Every config
    must plan, or nothing is known to be unused."""
    from snakemake.utils import validate

    from lth.experiments import experiment_configs
    from lth.plan import Plan, resolve_data_root

    schema = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"
    results: set[str] = set()
    names: set[str] = set()
    for path in config_paths:
        try:
            config = yaml.safe_load(Path(path).read_text())
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
        raise LthError(f"the configs write to different results folders ({', '.join(sorted(results))}); "
                       "collect one at a time")
    return Path(results.pop()), names


def unused(results: Path, names: set[str]) -> list[RunFolder]:
    return [folder for folder in scan(results) if Path(folder.path).name not in names]


def delete(folder: RunFolder) -> None:
    """Remove a run folder. Its files may be write-protected (Snakemake's `protected()`); removing them
    needs write access to their folders only, which protection leaves."""
    shutil.rmtree(folder.path)
