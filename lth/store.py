"""The run store, `results/runs/`, shared by every experiment that names the same results folder,
and safe under several Snakemake processes at once. Plain files and stdlib only: `snakemake -n`
and `lth ls` stay quick.

- **One producer per artifact.** A command that writes into the store holds an exclusive `flock` on
  the artifact it produces (`claim`): a run folder's `.lock`, or `.<file>.lock` beside a single
  file. The OS releases it when the process dies, so there is never a stale lock to clear. A second
  process waits, saying for whom, and then finds the artifact finished and leaves it untouched.
- **Snakemake never sees a store file as an output.** A job's declared outputs are symbolic links
  under `results/published/` (`link`), made after the artifact is finished. Snakemake deletes a job's
  outputs before it runs it, after it fails and on `--delete-all-output`; deleting a link never
  deletes a run.
- **The store remembers who uses it.** Every workflow run records, when it starts (never on a dry
  run), which run folders each of its experiments references (`record_references`); `lth gc` keeps
  those unless the experiment is forgotten. While a workflow runs it holds the store lock shared;
  `lth gc --yes` takes it exclusively, so it never deletes under a running experiment.
- **One workflow per experiment at a time.** The experiment's tables and figures are its own
  outputs; a second Snakemake process running the same experiment waits for the first
  (`lock_experiment`) and then finds its runs finished.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from lth.errors import LthError
from lth.io import write_json

log = logging.getLogger("lth")

PUBLISHED = "published"  # results/published/<path under results>: the links Snakemake sees
REFERENCES = ".references"  # results/runs/.references/<experiment>.json
STORE_LOCK = ".store.lock"  # results/runs/.store.lock: shared by workflows, exclusive for gc


def lock_file(target: str | os.PathLike, folder: bool) -> Path:
    """Where the lock of producing `target` lives: `<folder>/.lock` in a run folder, `.<name>.lock`
    beside a file."""
    target = Path(target)
    return target / ".lock" if folder else target.with_name(f".{target.name}.lock")


def _holder() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}: " + " ".join(
        ["lth", *sys.argv[1:2]]
    )


def _open_lock(path: Path) -> IO[str]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "a+")
    except OSError as error:
        raise LthError(f"cannot lock {path}: {error.strerror or error}; the results folder must be writable") from None


def _flock(handle: IO[str], mode: int) -> None:
    """fcntl.flock, with a filesystem that cannot lock (Lustre without -o flock, NFS mounted nolock)
    named as such: without locks, two workflows on one store would write the same files."""
    try:
        fcntl.flock(handle, mode)
    except BlockingIOError:
        raise
    except OSError as error:
        raise LthError(
            f"cannot lock {handle.name}: {error.strerror or error}; the results folder's filesystem "
            "must support flock (NFS without nolock, Lustre mounted with -o flock)"
        ) from None


@contextlib.contextmanager
def _locked(path: Path, what: str, *, shared: bool = False, wait: bool = True) -> Iterator[IO[str]]:
    """Hold an flock on `path` (created if missing, never deleted: deleting a lock file lets two
    processes lock two different files). Waiting is logged once, naming the holder."""
    handle = _open_lock(path)
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    try:
        try:
            _flock(handle, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            if not wait:
                raise LthError(f"{what} is in use ({holder})") from None
            log.info("waiting for %s: it is being produced by %s", what, holder)
            _flock(handle, mode)
        if not shared:
            handle.seek(0)
            handle.truncate()
            handle.write(_holder() + "\n")
            handle.flush()
        yield handle
    finally:
        handle.close()  # releases the lock


@contextlib.contextmanager
def claim(target: str | os.PathLike, *, folder: bool = False) -> Iterator[None]:
    """Be the one process producing `target` (a run folder, or a file) until the block ends."""
    target = Path(target)
    with _locked(lock_file(target, folder), str(target)):
        yield


@contextlib.contextmanager
def attempt_log(path: str | os.PathLike) -> Iterator[None]:
    """Append what this process logs meanwhile to `path` too, after a line naming the attempt: a run's
    train.log keeps every attempt at it, whichever job or experiment made it."""
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    logging.getLogger().addHandler(handler)
    log.info("=== attempt by %s", _holder())
    try:
        yield
    except BaseException as error:  # why it ended, into the run's log only: the console gets it from the caller
        handler.handle(
            logging.LogRecord(
                "lth", logging.ERROR, __file__, 0, "attempt failed: %s", (str(error) or type(error).__name__,), None
            )
        )
        raise
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def published_path(results: str | os.PathLike, target: str | os.PathLike) -> Path:
    """The link under `results`/published that stands for `target`, a path under `results`."""
    results, target = Path(results), Path(target)
    try:
        relative = target.relative_to(results)
    except ValueError:
        raise LthError(f"{target} is not under the results folder {results}") from None
    return results / PUBLISHED / relative


def link(results: str | os.PathLike, targets: Iterable[str | os.PathLike]) -> list[Path]:
    """Publish each finished `target` (a file under `results`) as a relative symbolic link under
    `results`/published. A link that already points there is left as it is; another is replaced
    atomically (rename), so a reader never sees it missing."""
    made = []
    for target in map(Path, targets):
        if not target.is_file():
            raise LthError(f"{target} does not exist: only a finished artifact is published")
        path = published_path(results, target)
        relative = os.path.relpath(target, path.parent)
        if path.is_symlink() and os.readlink(path) == relative:
            made.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.link")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(relative, tmp)
        os.replace(tmp, path)
        made.append(path)
    return made


# --- who uses the store -----------------------------------------------------------------


def use(results: str | os.PathLike) -> IO[str]:
    """Mark the store as in use by this process until it exits (a shared lock; keep the handle)."""
    path = Path(results) / "runs" / STORE_LOCK
    handle = _open_lock(path)
    _flock(handle, fcntl.LOCK_SH)  # waits only while `lth gc --yes` deletes
    return handle


@contextlib.contextmanager
def exclusive(results: str | os.PathLike) -> Iterator[None]:
    """The store to oneself (`lth gc --yes`), or an error when a workflow is using it."""
    path = Path(results) / "runs" / STORE_LOCK
    try:
        with _locked(path, f"the run store {path.parent}", wait=False):
            yield
    except LthError as error:
        if "is in use" not in str(error):
            raise
        raise LthError(f"{path.parent} is in use by a running workflow; run this when it has finished") from None


def lock_experiment(results: str | os.PathLike, experiment: str) -> IO[str]:
    """Be the one workflow running `experiment` until this process exits (keep the handle)."""
    path = Path(results) / experiment / ".lock"
    handle = _open_lock(path)
    try:
        _flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        print(
            f"lth: experiment {experiment} is being run by another workflow ({handle.read().strip()}); "
            "waiting for it to finish",
            file=sys.stderr,
            flush=True,
        )
        _flock(handle, fcntl.LOCK_EX)
    handle.seek(0)
    handle.truncate()
    handle.write(f"snakemake pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    handle.flush()
    return handle


def references_file(results: str | os.PathLike, experiment: str) -> Path:
    return Path(results) / "runs" / REFERENCES / f"{experiment}.json"


def record_references(
    results: str | os.PathLike, experiment: str, runs: Iterable[str], configs: Iterable[str | os.PathLike]
) -> None:
    """Record (atomically) that `experiment` uses these run folders (names under runs/); it replaces
    the experiment's earlier record, so runs of settings it no longer has become collectable."""
    write_json(
        references_file(results, experiment),
        {
            "experiment": experiment,
            "runs": sorted(set(runs)),
            "configs": [str(Path(path).resolve()) for path in configs],
            "recorded": time.strftime("%Y-%m-%d %H:%M:%S"),
            "host": socket.gethostname(),
        },
    )


def references(results: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Experiment name -> its record, for every experiment recorded in the store."""
    folder = Path(results) / "runs" / REFERENCES
    found = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise LthError(
                f"{path} cannot be read ({error}); it records which runs an experiment uses: "
                f"restore it, or delete it to forget that experiment"
            ) from None
        if not isinstance(record, dict) or not isinstance(record.get("runs"), list):
            raise LthError(f"{path} is not a record of an experiment's runs; delete it to forget that experiment")
        found[path.stem] = record
    return found
