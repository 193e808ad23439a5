"""Files that are whole or absent, and files that can tell when they were changed.

Every write goes to a temp file beside its destination and is renamed into place, so a killed
job never leaves a file that looks complete; a failed write (disk full, no permission) is a
`WriteError` naming the path. Artifacts embed a sha256 of their own content (`save_verified`,
`write_sealed_json`), checked on every read, so cut or flipped bytes stop the reader with an
`IntegrityError` naming the file instead of feeding it wrong numbers; tables, which must stay plain
CSV, carry theirs in a sidecar (`write_sealed_csv`, `check_sealed`).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import io
import json
import os
import sys
import tempfile
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import yaml

from lth.errors import LthError

_UMASK = os.umask(0)
os.umask(_UMASK)
DIGEST_KEY = "content_sha256"  # in a .pt payload or a sealed JSON: sha256_content of everything else


class WriteError(LthError, OSError):
    """A file could not be written; the message names the path, the system's reason and the fix.
    Still an OSError (same errno), so callers that tolerate a failed write keep catching it."""


class IntegrityError(LthError):
    """A file is unreadable, of the wrong kind, or not what was written (its digest does not match)."""


class WrongKindError(IntegrityError):
    """A readable file of another kind than expected (a checkpoint where a mask should be): not
    damaged, so a writer never replaces it, even with --force."""

    def __init__(self, path: Path, what: str, fix: str) -> None:
        super().__init__(f"{path} is not {what}; {fix}")
        self.path, self.what = path, what


_WRITE_FIXES = {
    errno.ENOSPC: "free disk space (or write elsewhere) and rerun",
    errno.EDQUOT: "free space within your disk quota and rerun",
    errno.EACCES: "make the folder writable or choose another path",
    errno.EPERM: "make the folder writable or choose another path",
    errno.EROFS: "the file system is read-only: choose another path",
    errno.ENOTDIR: "a part of the path is a file, not a folder: choose another path",
    errno.EEXIST: "a part of the path is a file, not a folder: choose another path",
    errno.EISDIR: "the path is a folder: give a file path",
}


def _os_error_behind(error: BaseException | None) -> OSError | None:
    """`error` if it is an OSError, or the OSError a RuntimeError was raised while handling. torch's zip
    writer, when a write fails on a full disk, raises `RuntimeError: [enforce fail at inline_container.cc]
    unexpected pos` from its cleanup while the file's OSError unwinds: that OSError is the cause."""
    for _ in range(8):  # a short chain: a cycle or a long one is no disk error
        if isinstance(error, OSError):
            return error
        if not isinstance(error, RuntimeError):
            return None
        error = error.__cause__ or error.__context__
    return None


@contextlib.contextmanager
def _write_errors(path: Path) -> Iterator[None]:
    try:
        yield
    except WriteError:
        raise  # already names its path
    except (OSError, RuntimeError) as error:
        cause = _os_error_behind(error)
        if cause is None:  # a RuntimeError of the writer itself (e.g. an object torch cannot save): a bug, not the disk
            raise
        fix = _WRITE_FIXES.get(cause.errno, "check the path and the disk, then rerun")
        failure = WriteError(f"cannot write {path}: {cause.strerror or cause}; {fix}")
        failure.errno = cause.errno
        raise failure from error


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temp file beside `path`; on clean exit fsync it and rename it over `path`.

    The temp file lives in the destination folder so the rename is atomic (same file system).
    On any failure the temp file is removed and `path` is left as it was.
    """
    path = Path(path)
    with _write_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the permissions open() would
            with os.fdopen(fd, mode) as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as handle:
        handle.write(text)


def write_json(path: str | os.PathLike, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_yaml(path: str | os.PathLike, data: Any) -> None:
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))


def write_csv(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """A header line of `columns`, then one line per row, written atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def torch_save(obj: Any, path: str | os.PathLike) -> None:
    import torch

    with atomic_open(path, "wb") as handle:
        torch.save(obj, handle)


def atomic_link(source: str | os.PathLike, destination: str | os.PathLike) -> None:
    """Publish `source` at `destination` without copying and without removing `source`, so a
    job killed halfway through publishing can redo it from the untouched source."""
    destination = Path(destination)
    tmp = destination.parent / f".{destination.name}.{os.getpid()}.link"
    with _write_errors(destination):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.link(source, tmp)
        os.replace(tmp, destination)


def sha256_tensors(tensors: dict[str, Any], transform: Callable[[Any], bytes] | None = None) -> str:
    """A content hash of named tensors that does not depend on pickling details."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(transform(tensor) if transform else tensor.numpy().tobytes())
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def sha256_content(obj: Any) -> str:
    """sha256 of nested dicts, lists, scalars and tensors, independent of how they were stored.

    The same value comes back after a torch.save/torch.load or a JSON round trip (dict order is
    kept by both; tuples count as lists because JSON has no tuples), so a file can embed the
    digest of what it holds and a reader can check it.
    """
    digest = hashlib.sha256()
    _feed(digest, obj)
    return digest.hexdigest()


def _feed(digest: Any, obj: Any) -> None:
    torch = sys.modules.get("torch")  # not imported means no tensor can be here: JSON stays torch-free
    if isinstance(obj, dict):
        digest.update(b"{%d" % len(obj))
        for key, value in obj.items():
            _feed(digest, key)
            _feed(digest, value)
    elif isinstance(obj, (list, tuple)):
        digest.update(b"[%d" % len(obj))
        for item in obj:
            _feed(digest, item)
    elif obj is None:
        digest.update(b"None")
    elif isinstance(obj, (bool, int, float, str)):
        # As the plain type (a str subclass such as torch.__version__ comes back from JSON as str);
        # the type's name tells 1, 1.0, '1' and True apart, and repr round-trips floats exactly.
        base = next(t for t in (bool, int, float, str) if isinstance(obj, t))  # bool first: it is an int
        text = repr(base(obj)).encode()
        digest.update(b"%s%d:%s" % (base.__name__.encode(), len(text), text))
    elif torch is not None and isinstance(obj, torch.Tensor):
        tensor = obj.detach().cpu().contiguous()
        digest.update(f"tensor{tensor.dtype}{tuple(tensor.shape)}:".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())  # raw bytes, whatever the dtype
    else:
        raise TypeError(f"sha256_content: cannot hash {type(obj).__name__}")


def save_verified(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """torch.save `payload` (which names its "format") atomically, with the digest of its content."""
    torch_save({**payload, DIGEST_KEY: sha256_content(payload)}, path)


def load_verified(path: str | os.PathLike, formats: Collection[str], what: str, fix: str) -> dict[str, Any]:
    """Load a file written by `save_verified` whose format is one of `formats`, and check its digest.

    `what` names the expected kind of file ("an lth checkpoint"), `fix` says how to get a good
    one; both go into the error, which also names the path.
    """
    import torch

    path = Path(path)
    if not path.is_file():  # a mistyped path, most likely: nothing to regenerate
        raise IntegrityError(f"{path} does not exist or is not a file: give the path of {what}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load fails on bad bytes with any of a dozen exception types
        # torch's own message is long and about pickling; its exception type is enough for a bug report
        raise IntegrityError(
            f"{path} cannot be read as {what}: it is truncated, corrupt or another kind of "
            f"file (torch.load: {type(error).__name__}); {fix}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") not in formats:
        raise WrongKindError(path, what, fix)
    return _unsealed(path, payload, fix)


def _unsealed(path: Path, content: dict[str, Any], fix: str) -> dict[str, Any]:
    """`content` without its embedded digest, once the digest is checked against the rest."""
    stored = content.pop(DIGEST_KEY, None)
    if stored is None:
        raise IntegrityError(
            f"{path} has no embedded sha256 (it was written by an lth before files were verified, or by hand); {fix}"
        )
    if stored != sha256_content(content):
        raise IntegrityError(
            f"{path} does not match the sha256 it was written with: its bytes were changed or "
            f"damaged after it was written; {fix}"
        )
    return content


def write_sealed_json(path: str | os.PathLike, data: dict[str, Any]) -> dict[str, Any]:
    """Write `data` as JSON with the digest of its content as the last key; return what was written."""
    sealed = {**data, DIGEST_KEY: sha256_content(data)}
    write_json(path, sealed)
    return sealed


def read_sealed_json(path: str | os.PathLike, what: str, fix: str) -> dict[str, Any]:
    """Read a file written by `write_sealed_json` and check its digest (the digest key is removed)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise IntegrityError(f"{path} does not exist; {fix}") from None
    except (OSError, ValueError) as error:  # ValueError: bad JSON or bad UTF-8, i.e. cut or flipped bytes
        raise IntegrityError(
            f"{path} cannot be read as {what}: it is truncated, corrupt or not JSON ({error}); {fix}"
        ) from None
    if not isinstance(data, dict):
        raise IntegrityError(f"{path} is not {what}; {fix}")
    return _unsealed(path, data, fix)


def check_output(path: str | os.PathLike, *, folder: bool = False) -> None:
    """Fail now, naming `path`, where writing it later would fail: a file where a folder belongs (or
    a folder where a file belongs) on the way to it, or a folder without write permission."""
    path = Path(path)
    if path.exists():
        if folder and not path.is_dir():
            raise WriteError(f"{path} is a file, not a folder; give a folder path")
        if not folder and path.is_dir():
            raise WriteError(f"{path} is a folder; give a file path (e.g. {path / 'NAME'})")
    nearest = path if folder and path.is_dir() else path.parent
    while not nearest.exists() and nearest != nearest.parent:
        nearest = nearest.parent
    if not nearest.is_dir():
        raise WriteError(f"cannot write {path}: {nearest} is a file, not a folder; choose a path outside it")
    if not os.access(nearest, os.W_OK | os.X_OK):
        raise WriteError(f"cannot write {path}: {nearest} is not writable; make it writable or choose another path")


# Tables (summary.csv, tickets.csv, collected analysis CSVs) stay plain CSV for pandas and
# spreadsheets, so their digest is a sidecar `<table>.sha256` in sha256sum's format (`sha256sum -c`
# checks it too), written after the table by the same writer; every reader checks it.
SEAL_SUFFIX = ".sha256"


def seal_path(path: str | os.PathLike) -> Path:
    """Where the seal of table `path` is: `<path>.sha256` beside it."""
    path = Path(path)
    return path.with_name(path.name + SEAL_SUFFIX)


def seal_file(path: str | os.PathLike) -> None:
    """Write the seal of the table `path` as it is now (the one way a table gets a seal)."""
    path = Path(path)
    atomic_write_text(seal_path(path), f"{sha256_file(path)}  {path.name}\n")


def write_sealed_csv(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """`write_csv`, then the table's seal. An old seal goes first, so a writer stopped in between
    leaves a table without a seal, which readers refuse, never a new table under an old seal."""
    with _write_errors(seal_path(path)), contextlib.suppress(FileNotFoundError):
        os.unlink(seal_path(path))
    write_csv(path, rows, columns)
    seal_file(path)


def check_sealed(path: str | os.PathLike, writer: str) -> None:
    """An IntegrityError unless the table `path` is byte for byte what `writer` (the lth command
    that writes it, e.g. "lth aggregate") sealed: edited by hand, damaged, or written without a
    seal (by an older lth). The message says how to regenerate it."""
    path, seal = Path(path), seal_path(path)
    fix = (
        f"regenerate it: delete it and rerun snakemake with the same --configfile (outside the workflow: "
        f"rerun `{writer} ... --force`)"
    )
    if not path.is_file():  # a mistyped path, most likely: nothing to regenerate
        raise IntegrityError(f"{path} does not exist or is not a file: give the path of a table `{writer}` wrote")
    if not seal.is_file():
        raise IntegrityError(
            f"{path} has no seal ({seal.name}): it was written by hand or by an lth before "
            f"tables were sealed, so it is not trusted; {fix}"
        )
    try:
        recorded = seal.read_text().split()[:1]
        actual = sha256_file(path)
    except (OSError, UnicodeDecodeError) as error:
        raise IntegrityError(f"{path} or its seal {seal.name} cannot be read ({error}); {fix}") from None
    if recorded != [actual]:
        raise IntegrityError(
            f"{path} does not match the sha256 in its seal {seal.name}: it was edited or damaged "
            f"after `{writer}` wrote it, so it is not trusted; {fix}"
        )
