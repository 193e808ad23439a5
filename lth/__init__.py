"""lth: draw lottery tickets (IMP/OMP) and spend them better (ToST tweaks).

The Python API (README.md, "Python API"): `lth.load_ticket`, `lth.find_ticket`, `lth.runs`
(lth/api.py), `lth.to_prune`, `lth.mask_from_prune` (lth/interop.py), and the workflow's steps
`lth.init_weights`, `lth.draw_mask`, `lth.train_run` (lth/cli/steps.py). They are imported on first
use, so `import lth` stays torch-free: the Snakefile imports lth's modules while it parses.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Ticket": "lth.api",
    "load_ticket": "lth.api",
    "find_ticket": "lth.api",
    "runs": "lth.api",
    "to_prune": "lth.interop",
    "mask_from_prune": "lth.interop",
    "init_weights": "lth.cli.steps",
    "draw_mask": "lth.cli.steps",
    "train_run": "lth.cli.steps",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lth' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
