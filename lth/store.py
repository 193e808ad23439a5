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
- **An artifact's lifecycle.** A command checks its output before any work (`output_path`), keeps an
  intact one (--reuse) or replaces only a damaged one (--force) (`produce`); a
  training resumes from `.resume/` and publishes its files, summary.json last (`publish_run`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from lth.artifacts import HPARAMS, METRICS, RESUME_STATE, SUMMARY, TRAIN_LOG
from lth.errors import LthError, UsageError
from lth.io import (
    WrongKindError,
    atomic_link,
    atomic_write_text,
    check_output,
    load_verified,
    save_verified,
    write_json,
    write_yaml,
)
from lth.manifest import run_files, write_summary

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


# --- producing an artifact: checked first, kept with --reuse, replaced when damaged with --force ---


def output_path(path: str | os.PathLike, flag: str, force: bool, folder: bool = False) -> Path:
    """Checked before any work: `path` can be written, and a file is not replaced unless --force."""
    path = Path(path)
    try:
        check_output(path, folder=folder)
    except LthError as error:
        raise UsageError(f"{flag}: {error}") from None
    if path.exists() and not force and not folder:
        raise UsageError(f"{flag}: {path} already exists; pass --force to replace it, or choose another path")
    return path


# What `keep_existing` says about a file, and about a run folder (its summary.json marks it finished).
_DAMAGED = {
    False: ("{flag}: {path} exists but is damaged ({damage}); pass --force to replace it", "replacing %s: %s"),
    True: ("{flag}: {path} holds a damaged run ({damage}); pass --force to train it again", "training %s again: %s"),
}
_KEPT = {
    False: (
        "{flag}: {path} already exists; pass --reuse to keep it, or delete it to write it again",
        "%s is already there and intact: kept as it is",
    ),
    True: (
        "{flag}: {path} already holds this finished run; pass --reuse to keep it, or delete the folder to train "
        "it again",
        "%s already holds this finished run (verified): kept as it is",
    ),
}


def produce(
    path: str | os.PathLike,
    flag: str,
    *,
    reuse: bool,
    force: bool,
    intact: Callable[[Path], Any],
    prepare: Callable[[], Callable[[], None]],
    folder: bool = False,
) -> None:
    """Write `path` unless it is already there, as the one process writing it (`claim`).
    An intact `path` is never replaced: it is kept with --reuse (at once, reading files only) and
    refused without. `intact` raises UsageError for a file of other settings (refused) and LthError
    for a damaged one, which only --force replaces. `prepare` checks every input and returns the
    writing itself: a refused command writes nothing, not even its lock. A run `folder` (`lth train`)
    is held from the first look at it to the last file published, and every attempt's log is
    appended to its train.log."""
    path = output_path(path, flag, force=True, folder=folder)  # writable; an existing one is judged below
    if keep_existing(path, flag, reuse=reuse, force=force, intact=intact, folder=folder, locked=False):
        return  # finished already: no lock needed to read it
    write = prepare()
    with claim(path, folder=folder):
        if keep_existing(path, flag, reuse=reuse, force=force, intact=intact, folder=folder):
            return  # finished by the process this one waited for
        with attempt_log(path / TRAIN_LOG) if folder else contextlib.nullcontext():
            write()


def keep_existing(
    path: Path,
    flag: str,
    *,
    reuse: bool,
    force: bool,
    intact: Callable[[Path], Any],
    folder: bool = False,
    locked: bool = True,
) -> bool:
    """Whether `path` (a run `folder`: its summary.json) exists, intact, and --reuse keeps it; False
    when there is nothing (or, with --force, only a damaged one) to keep; a UsageError otherwise."""
    if not (path / SUMMARY if folder else path).exists():
        return False
    try:
        intact(path)
    except UsageError:
        raise  # intact, but of other settings: never replaced
    except LthError as damage:
        if isinstance(damage, WrongKindError) and not folder:
            raise UsageError(
                f"{flag}: {path} is another kind of file than {damage.what}, never replaced; delete it or "
                "choose another path"
            ) from None
        if not force:
            raise UsageError(_DAMAGED[folder][0].format(flag=flag, path=path, damage=damage)) from None
        if locked:  # said once, by the process that replaces it
            log.warning(_DAMAGED[folder][1], path, damage)
        return False
    if not reuse:
        raise UsageError(_KEPT[folder][0].format(flag=flag, path=path))
    log.info(_KEPT[folder][1], path)
    return True


def check_complete(path: Path) -> None:
    """An output written whole or not at all (an analysis's): one that reads back as CSV or JSON is done."""
    try:
        text = path.read_text()
        if path.suffix == ".json":
            json.loads(text)
        elif not text.strip():
            raise ValueError("empty")
    except (OSError, ValueError) as error:
        raise LthError(f"unreadable ({error})") from None


# --- a training's run folder: opened, resumed, published ---------------------------------------

RESUME_FORMAT = "lth-resume"


class RunFinishedError(LthError):
    """The output folder already holds a finished run, or files of an earlier one."""


def resume_dir(out_dir: str | os.PathLike) -> Path:
    """Where a training keeps everything until it publishes: its resume state, metrics, kept epochs."""
    return Path(out_dir) / RESUME_STATE.parent


def check_run_folder(out_dir: Path, force: bool) -> None:
    """`out_dir` can take this training: writable, no finished run and no earlier run's files
    (unless --force), and a resume state there is intact."""
    check_output(out_dir, folder=True)
    if (out_dir / SUMMARY).exists() and not force:
        raise RunFinishedError(f"{out_dir} already holds a finished run; pass --force to train it again")
    resuming = (out_dir / RESUME_STATE).exists()
    if resuming:
        load_resume_state(out_dir)  # a damaged state fails here, before the data is loaded
    stale = [] if resuming or force else run_files(out_dir)
    if stale:  # a new run beside them would leave a folder mixing two runs' files
        raise RunFinishedError(
            f"{out_dir} holds files of an earlier run ({', '.join(p.name for p in stale)}); "
            "pass --force to remove them and train, or choose another folder"
        )


def load_resume_state(out_dir: str | os.PathLike) -> dict[str, Any]:
    """The resume state of the run in `out_dir`, its embedded digest checked."""
    folder = resume_dir(out_dir)
    return load_verified(
        Path(out_dir) / RESUME_STATE,
        (RESUME_FORMAT,),
        "an lth resume state",
        f"delete {folder} to start the run over",
    )


def save_resume_state(out_dir: str | os.PathLike, state: dict[str, Any], metrics_csv: str) -> None:
    """What a training resumes from after an epoch, and its metrics so far."""
    save_verified(Path(out_dir) / RESUME_STATE, {"format": RESUME_FORMAT, **state})
    atomic_write_text(resume_dir(out_dir) / METRICS, metrics_csv)


def clear_run(out_dir: Path) -> None:
    """Remove an earlier run's files (--force): a new run replaces it whole."""
    shutil.rmtree(resume_dir(out_dir), ignore_errors=True)
    for stale in run_files(out_dir):
        stale.unlink(missing_ok=True)  # summary.json first: the folder stops looking finished


def _link_kept(out_dir: Path, names: Sequence[str]) -> None:
    for name in names:
        atomic_link(resume_dir(out_dir) / name, out_dir / name)


def publish_kept(out_dir: Path, names: Sequence[str]) -> None:
    """Publish files the training kept in its resume folder under `names`, then drop that folder (a
    training stopped early for its rewind points)."""
    _link_kept(out_dir, names)
    shutil.rmtree(resume_dir(out_dir), ignore_errors=True)


def publish_run(
    out_dir: Path,
    summary: dict[str, Any],
    record: dict[str, Any],
    metrics_csv: str,
    *,
    written: Sequence[str],
    kept: Sequence[str],
) -> dict[str, Any]:
    """Seal a finished training: `written` (already in `out_dir`), the `kept` files of its resume
    folder, metrics.csv and hparams.yaml (`record`), then summary.json, last, listing their digests."""
    _link_kept(out_dir, kept)
    atomic_write_text(out_dir / METRICS, metrics_csv)
    write_yaml(out_dir / HPARAMS, record)
    summary = write_summary(out_dir, summary, [*written, *kept, METRICS, HPARAMS])  # last: marks it finished
    shutil.rmtree(resume_dir(out_dir), ignore_errors=True)
    return summary
