"""What a dataset *is*, independent of where it lives: the data part of a run's content hash.

`data.root` says where the files are, not what they hold, so it must not key a run: moving a
dataset would otherwise invalidate every cached run. The identity is instead the settings that
shape the data plus, for sources read from the user's own files (npz, imagefolder), a sha256
fingerprint of those files. The canonical datasets (cifar10, cifar100, tinyimagenet: fixed
public releases checked by md5 on download; digits: bundled with scikit-learn) are identified
by their name alone, without touching the disk, so their root need not exist yet.

File digests are cached by (absolute path, size, mtime_ns) in a small JSON file, so only the
first call after a file changes reads it; later calls only stat the files. Like rsync's quick
check, this trusts that a file whose size and mtime are unchanged has unchanged content.

This module imports nothing heavy itself: `lth.data.sources` (which imports torch) is imported
only for the sources that need its layout helpers and error messages.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lth.io import atomic_write_text, sha256_file

if TYPE_CHECKING:
    from lth.hparams import DataHparams

__all__ = ["CANONICAL", "FINGERPRINTED", "data_identity", "default_cache_path"]

# Named explicitly (not "everything but npz/imagefolder") so that a new source must be placed
# in one set or the other: silently treating user files as canonical would let two different
# folders share an identity. tests/test_data_identity.py checks that sources.SOURCES is covered.
CANONICAL = frozenset({"cifar10", "cifar100", "tinyimagenet", "digits"})
FINGERPRINTED = frozenset({"npz", "imagefolder"})

_CACHE_VERSION = 1


def default_cache_path() -> Path:
    """`$LTH_CACHE_DIR/fingerprints.json`, else `$XDG_CACHE_HOME/lth/...`, else `~/.cache/lth/...`.

    A per-user cache, not one inside the data folder: shared data folders are often read-only
    (a lab's dataset mount, a container's read-only volume), and the cache is keyed by absolute path anyway.
    """
    folder = os.environ.get("LTH_CACHE_DIR")
    if not folder:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        folder = Path(base) / "lth"
    return Path(folder).expanduser() / "fingerprints.json"


def data_identity(hparams: DataHparams, cache: Path | None = None) -> dict[str, Any]:
    """A JSON-serialisable dict that is equal for equal data and differs for different data.

    It holds the DataHparams fields that say what the data is (`identity()`: not `root`, `download`),
    plus for npz and imagefolder a `fingerprint` (sha256 over the files the loader reads). `cache` is the JSON file of
    per-file digests (default: `default_cache_path()`). Raises DataError when the files of a
    fingerprinted source are missing, and ValueError for a source this module does not know.
    """
    identity = hparams.identity()
    if hparams.name in CANONICAL:
        return identity
    if hparams.name not in FINGERPRINTED:
        raise ValueError(
            f"data_identity does not know dataset {hparams.name!r}: add it to "
            "CANONICAL or FINGERPRINTED in lth/data/identity.py"
        )
    root = _root(hparams)
    files = _npz_files(root) if hparams.name == "npz" else _imagefolder_files(root)
    digests = _FileDigests(Path(cache) if cache is not None else default_cache_path())
    combined = hashlib.sha256()
    for relative, path in files:  # already sorted by relative path
        combined.update(f"{relative}\0{digests.get(path)}\n".encode())
    digests.save()
    identity["fingerprint"] = "sha256:" + combined.hexdigest()
    return identity


# --- which files a source reads ----------------------------------------------------------


def _root(hparams: DataHparams) -> Path:
    from lth.data import data_root, sources

    # Same expansion as lth.data.load; _require_root raises the sources' "set data.root" error.
    # A root that is not there fails in the per-source checks, whose messages name the
    # expected layout.
    return sources._require_root(data_root(hparams), hparams.name)


def _with_root(root: Path, error: Exception) -> Exception:
    """The sources' own message (path and expected layout), prefixed with the setting to fix."""
    from lth.data.sources import DataError

    return DataError(f"data.root {root}: {error}")


def _npz_files(root: Path) -> list[tuple[str, Path]]:
    from lth.data import sources

    try:
        paths = [sources._npz_path(root, split) for split in ("train", "test")]
    except sources.DataError as e:
        raise _with_root(root, e) from e
    return sorted((path.name, path) for path in paths)


def _imagefolder_files(root: Path) -> list[tuple[str, Path]]:
    """Exactly the files `_load_imagefolder` decodes: root/{train,test}/<class>/<image>."""
    from lth.data import sources

    files = []
    for split in ("train", "test"):
        split_dir = root / split
        try:
            classes = sources._class_dirs(split_dir)
        except sources.DataError as e:
            raise _with_root(root, e) from e
        found = [
            path
            for name in classes
            for path in (split_dir / name).glob("*")  # the loader's own selection
            if path.suffix.lower() in sources._IMAGE_SUFFIXES and path.is_file()
        ]
        if not found:
            raise _with_root(
                root,
                sources.DataError(
                    f"{split_dir} holds no images ({', '.join(sorted(sources._IMAGE_SUFFIXES))}): "
                    f"{sources._FOLDER_LAYOUT}"
                ),
            )
        files += found
    # Relative POSIX paths: independent of the root, and they carry the class (the label).
    return sorted((path.relative_to(root).as_posix(), path) for path in files)


# --- per-file digests, cached ------------------------------------------------------------


def _read_cache(path: Path) -> dict[str, dict[str, Any]]:
    """The cached entries; {} for a missing, unreadable, corrupt or foreign-version file."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # ValueError covers bad JSON and bad UTF-8
        return {}
    if not isinstance(data, dict) or data.get("version") != _CACHE_VERSION:
        return {}
    files = data.get("files")
    return files if isinstance(files, dict) else {}


def _valid(entry: Any, size: int, mtime_ns: int) -> str | None:
    """The cached digest if `entry` is well-formed and matches the file's stat, else None."""
    if (
        isinstance(entry, dict)
        and entry.get("size") == size
        and entry.get("mtime_ns") == mtime_ns
        and isinstance(entry.get("sha256"), str)
        and len(entry["sha256"]) == 64
    ):
        return entry["sha256"]
    return None


class _FileDigests:
    """sha256 per file through the JSON cache; `save` writes back only if something was hashed."""

    def __init__(self, cache: Path) -> None:
        self.cache = cache
        self.entries = _read_cache(cache)
        self.new: dict[str, dict[str, Any]] = {}

    def get(self, path: Path) -> str:
        key = str(path.resolve())  # resolved: a retargeted symlink is a different file
        before = os.stat(key)
        cached = _valid(self.entries.get(key), before.st_size, before.st_mtime_ns)
        if cached is not None:
            return cached
        digest = sha256_file(Path(key))  # hashlib.file_digest: chunked reads, flat memory
        after = os.stat(key)
        # A file written while we read it has no trustworthy digest: do not cache it.
        if (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns):
            self.new[key] = {"size": before.st_size, "mtime_ns": before.st_mtime_ns, "sha256": digest}
        return digest

    def save(self) -> None:
        if not self.new:
            return
        # Re-read just before writing so entries another process added meanwhile survive; a
        # writer that races us between this read and our rename can still lose entries (they
        # are simply re-hashed later), but the rename is atomic, so the file is never corrupt.
        entries = {**_read_cache(self.cache), **self.new}
        # Drop entries of files that no longer exist, so the cache does not grow forever.
        entries = {key: value for key, value in entries.items() if key in self.new or os.path.exists(key)}
        text = json.dumps({"version": _CACHE_VERSION, "files": entries}, separators=(",", ":"))
        try:
            atomic_write_text(self.cache, text + "\n")
        except OSError:  # read-only or otherwise unwritable location: the cache is an optimisation
            pass
