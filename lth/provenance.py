"""Which code made a result: the lth version, a digest of its source files, and the git commit.

The git commit alone says nothing about a run made from a copy of the source (an sdist, a
tarball, a copied tree: `git_commit: unknown`) or from a checkout with uncommitted changes
(`-dirty`). The source digest identifies the code in every case: two runs with the same digest
ran the same lth, byte for byte.
"""

from __future__ import annotations

import functools
import hashlib
import subprocess
from pathlib import Path

import lth

PACKAGE = Path(lth.__file__).resolve().parent


@functools.cache
def source_digest() -> str:
    """sha256 over the relative path and bytes of every .py file of the lth package that runs, in
    path order (compiled caches and data files are not code)."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py"), key=lambda p: p.relative_to(PACKAGE).as_posix()):
        name = path.relative_to(PACKAGE).as_posix().encode()
        data = path.read_bytes()
        digest.update(len(name).to_bytes(8, "big") + name + len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


def git_commit() -> str:
    """The commit of the lth code that ran, marked `-dirty` when it had uncommitted changes;
    `unknown` outside a git checkout."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=PACKAGE, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        return git("rev-parse", "HEAD") + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance() -> dict[str, str]:
    """What summary.json records of the code: version, source digest, git commit."""
    return {"lth": lth.__version__, "lth_source_sha256": source_digest(), "git_commit": git_commit()}
