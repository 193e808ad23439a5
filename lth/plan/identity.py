"""What a run's hash covers: its stage, its settings as `Hparams.identity` gives them, its upstream
runs' keys and `cache_version`; a user's mask file by its content, never its path."""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from lth.hparams import GradinitHparams
from lth.plan.config import PlanError

HASH_LENGTH = 10


def short_hash(record: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:HASH_LENGTH]


def run_key(stage: str, cache_version: Any, **content: Any) -> str:
    """`<stage>-<hash>`: the name of a run folder (dense, sparse, a chain) or of an analysis output."""
    return f"{stage}-{short_hash({'cache_version': cache_version, 'stage': stage, **content})}"


def gradinit_record(gradinit: GradinitHparams) -> dict[str, Any]:
    """GradInit's settings change nothing while it is off, so only then do they split the cache."""
    return {"gradinit": gradinit.identity()} if gradinit.enabled else {}


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
