"""README's two commands own their environment, and system changes are opt-in.

The Makefile runs for real, in a scratch copy of the project, with stand-in interpreters: small shell
scripts that log every call and act as Python would where it matters (the version check runs a real
Python; `-m venv` makes a folder with another stand-in; `-m pip` on the "system" Python fails as
Debian's does, PEP 668). So these tests read which interpreter installed what, and install nothing.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO

TORCH = "torch==2.14.1 torchvision==0.29.1"
# Variables the Makefile reads from the environment, and make's own, which a `make test` running
# these tests would pass on (MAKEFLAGS carries its command-line variables).
MAKE_INPUTS = (
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "VENV",
    "PYTHON",
    "TORCH",
    "PYTEST_ARGS",
    "LTH_TEST_SLURM",
    "MAKEFLAGS",
    "MFLAGS",
    "MAKELEVEL",
)

# One stand-in interpreter. @LABEL@ names it in the log ("system", or its environment's absolute folder).
FAKE_PYTHON = r"""#!/bin/sh
printf '%s\t%s\t%s\n' '@LABEL@' "$*" "${LTH_TEST_SLURM:-}" >> '@LOG@'
case "$1" in
  -c) PYTHONPATH='@SITE@' exec '@REAL@' "$@" ;;
  -m) case "$2" in
        venv) @VENV@
              exit $? ;;
        pip) @PIP@ ;;
        *) exit 0 ;;
      esac ;;
esac
echo "stand-in python: unexpected call: $*" >&2
exit 2
"""
# What `-m venv DIR` does: a folder with a stand-in python that installs (so, not externally managed).
MAKE_VENV = r"""mkdir -p "$3/bin" && sed "s|@ENV@|$(cd "$3" && pwd)|" '@TEMPLATE@' > "$3/bin/python" \
              && chmod +x "$3"/bin/python"""
# Debian's python3 without python3-venv: ensurepip is missing, the folder is left half made.
VENV_FAILS = r"""mkdir -p "$3/bin" && : > "$3/bin/python" \
              && echo "The virtual environment was not created successfully because ensurepip is not available." \
              && exit 1"""
EXTERNALLY_MANAGED = r"""echo "error: externally-managed-environment" >&2; exit 1"""


@dataclass(frozen=True)
class Call:
    python: str  # "system", or the absolute folder of the environment whose python ran
    args: str
    lth_test_slurm: str


class Machine:
    """A scratch copy of the project's Makefile and pyproject.toml; on PATH, as `python3` and `python`,
    an externally managed system Python (a stand-in: nothing the Makefile runs reaches a real
    interpreter's pip); and the log of every call the stand-ins received."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.project = root / "project"
        self.project.mkdir()
        for name in ("Makefile", "pyproject.toml"):
            shutil.copy2(REPO / name, self.project / name)
        self.log = root / "calls.log"
        self.log.touch()
        # What `-m venv` copies, its label filled in with the new environment's folder.
        self.env_template = self._script(root / "env-python.in", "@ENV@", pip="exit 0", venv="exit 2")
        self.system_python()

    def _script(self, path: Path, label: str, pip: str, venv: str, version: str | None = None) -> Path:
        site = path.parent / f"{path.name}.site"
        site.mkdir(parents=True, exist_ok=True)
        (site / "sitecustomize.py").unlink(missing_ok=True)
        if version:  # a real Python that reports another version to every Python-level query
            numbers = tuple(int(part) for part in version.split("."))
            (site / "sitecustomize.py").write_text(
                f"import sys\nsys.version_info = {(*numbers, 'final', 0)!r}\n"
                f"sys.version = {version + ' (stand-in)'!r}\n"
            )
        text = FAKE_PYTHON.replace("@VENV@", venv).replace("@PIP@", pip)
        for key, value in {
            "@LABEL@": label,
            "@LOG@": self.log,
            "@SITE@": site,
            "@REAL@": sys.executable,
            "@TEMPLATE@": getattr(self, "env_template", ""),
        }.items():
            text = text.replace(key, str(value))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        return path

    def system_python(self, version: str | None = None, venv_fails: bool = False) -> None:
        """Make the system's `python3` (and `python`) externally managed, as Debian's, Ubuntu's and
        Homebrew's are; `version`: the version it reports; `venv_fails`: without the venv module."""
        for name in ("python3", "python"):
            self._script(
                self.root / "system" / name,
                "system",
                pip=EXTERNALLY_MANAGED,
                venv=VENV_FAILS if venv_fails else MAKE_VENV,
                version=version,
            )

    def environment(self, name: str, version: str | None = None) -> Path:
        """An environment the user made and activated (its folder), with a python that installs."""
        folder = self.root / name
        self._script(folder / "bin" / "python", str(folder), pip="exit 0", venv="exit 2", version=version)
        return folder

    def make(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        base = {key: value for key, value in os.environ.items() if key not in MAKE_INPUTS}
        path = f"{self.root / 'system'}{os.pathsep}{base['PATH']}"
        return subprocess.run(
            ["make", *args],
            cwd=self.project,
            env={**base, "PATH": path, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )

    def calls(self) -> list[Call]:
        """The calls logged since the last `calls()`."""
        lines = self.log.read_text().splitlines()
        self.log.write_text("")
        return [Call(*line.split("\t")) for line in lines]


def installs(calls: list[Call], python: str) -> list[str]:
    return [call.args for call in calls if call.python == python and call.args.startswith("-m pip")]


def expected_installs(torch: str = TORCH) -> list[str]:
    return [f"-m pip install --quiet {torch}", "-m pip install --quiet -e .[test,lint]"]


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    return Machine(tmp_path)


def test_without_an_active_environment_make_creates_dot_venv_and_installs_there(machine: Machine) -> None:
    result = machine.make("test")
    assert result.returncode == 0, result.stderr
    calls, venv = machine.calls(), str(machine.project / ".venv")
    # The system's python3 only makes the venv: it is never asked to install.
    assert [call.args for call in calls if call.python == "system" and call.args.startswith("-m")] == ["-m venv .venv"]
    assert installs(calls, venv) == expected_installs()
    assert calls[-1] == Call(venv, "-m pytest", "")


def test_a_second_call_installs_nothing_and_an_edited_pyproject_or_another_torch_reinstalls(machine: Machine) -> None:
    assert machine.make("install").returncode == 0
    machine.calls()
    result = machine.make("quickstart")
    assert result.returncode == 0, result.stderr
    venv = str(machine.project / ".venv")
    assert machine.calls() == [Call(venv, "-m snakemake --cores all --configfile configs/quickstart.yaml", "")]

    # pyproject.toml edited a minute after the install
    edited = time.time()
    os.utime(machine.project / ".venv" / ".lth-installed", (edited - 60, edited - 60))
    os.utime(machine.project / "pyproject.toml", (edited, edited))
    assert machine.make("install").returncode == 0
    calls = machine.calls()
    assert installs(calls, venv) == expected_installs()
    assert not [call for call in calls if call.args.startswith("-m venv")]  # the venv is reused, not made again

    assert machine.make("install", "TORCH=torch torchvision").returncode == 0
    assert installs(machine.calls(), venv) == expected_installs("torch torchvision")


@pytest.mark.parametrize("variable", ["VIRTUAL_ENV", "CONDA_PREFIX"])
def test_an_active_environment_is_used_as_is_and_no_dot_venv_is_made(machine: Machine, variable: str) -> None:
    active = machine.environment("active")
    result = machine.make("test", **{variable: str(active)})
    assert result.returncode == 0, result.stderr
    calls = machine.calls()
    assert installs(calls, str(active)) == expected_installs()
    assert calls[-1] == Call(str(active), "-m pytest", "")
    assert not [call for call in calls if call.python == "system"]
    assert not (machine.project / ".venv").exists()


def test_venv_puts_the_virtual_environment_elsewhere(machine: Machine) -> None:
    result = machine.make("test", "VENV=other")
    assert result.returncode == 0, result.stderr
    assert installs(machine.calls(), str(machine.project / "other")) == expected_installs()
    assert not (machine.project / ".venv").exists()


@pytest.mark.parametrize("where", ["system", "active environment"])
def test_a_python_older_than_3_11_stops_with_one_line_naming_both_versions(machine: Machine, where: str) -> None:
    if where == "system":
        machine.system_python(version="3.10.12")
        active = {}
    else:
        active = {"VIRTUAL_ENV": str(machine.environment("old", version="3.10.12"))}
    result = machine.make("test", **active)
    assert result.returncode != 0
    message = [line for line in result.stderr.splitlines() if "3.10.12" in line]
    assert len(message) == 1 and "Python >= 3.11" in message[0], result.stderr
    calls = machine.calls()
    assert not [call for call in calls if call.args.startswith("-m")], calls  # no venv, no pip, no pytest
    assert not (machine.project / ".venv").exists()


def test_a_python_without_venv_says_what_to_install_and_leaves_no_half_made_folder(machine: Machine) -> None:
    machine.system_python(venv_fails=True)
    result = machine.make("quickstart")
    assert result.returncode != 0
    message = [line for line in result.stderr.splitlines() if "python3-venv" in line]
    assert len(message) == 1 and "apt install python3-venv" in message[0] and "PYTHON=" in message[0], result.stderr
    assert not (machine.project / ".venv").exists()  # so the next call tries again
    assert not [call for call in machine.calls() if call.args.startswith("-m pip")]


def test_make_test_slurm_asks_for_the_slurm_test_and_make_test_does_not(machine: Machine) -> None:
    active = machine.environment("active")
    assert machine.make("test-slurm", VIRTUAL_ENV=str(active)).returncode == 0
    assert machine.make("test", VIRTUAL_ENV=str(active)).returncode == 0
    runs = [call for call in machine.calls() if call.args.startswith("-m pytest")]
    assert runs == [Call(str(active), "-m pytest tests/test_slurm.py", "1"), Call(str(active), "-m pytest", "")]


def test_ci_checks_the_formatting_then_runs_readmes_test_command_with_the_system_tests_asked_for(
    tmp_path: Path,
) -> None:
    """The real-SLURM test and the disk-full cases on a real tmpfs change the system: CI asks for both."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "make.log"
    make = bin_dir / "make"
    make.write_text(
        f'#!/bin/sh\necho "$(pwd) $* LTH_TEST_SLURM=${{LTH_TEST_SLURM:-}} '
        f"LTH_TEST_TMPFS=${{LTH_TEST_TMPFS:-}}\" >> '{log}'\n"
    )
    make.chmod(0o755)
    env = {key: value for key, value in os.environ.items() if key not in ("LTH_TEST_SLURM", "LTH_TEST_TMPFS")}
    result = subprocess.run(
        [str(REPO / ".ci" / "run")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}"},
    )
    assert result.returncode == 0, result.stderr
    asked = "LTH_TEST_SLURM=1 LTH_TEST_TMPFS=1"
    assert log.read_text().splitlines() == [f"{REPO} lint {asked}", f"{REPO} test {asked}"]


def test_without_lth_test_slurm_the_slurm_test_is_skipped_and_nothing_is_installed_or_started(tmp_path: Path) -> None:
    # SLURM "installed" (stand-ins on PATH), where the session used to start a cluster even unasked;
    # every tool the set-up would reach for logs its call.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    for tool in ("slurmctld", "slurmd", "sbatch", "munged", "apt-get", "pgrep", "bash"):
        (bin_dir / tool).write_text(f"#!/bin/sh\necho \"{tool} $*\" >> '{log}'\nexit 1\n")
        (bin_dir / tool).chmod(0o755)
    env = {key: value for key, value in os.environ.items() if key != "LTH_TEST_SLURM"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/test_slurm.py", "-rs", "-p", "no:cacheprovider"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**env, "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}"},
    )
    assert not log.exists(), log.read_text()
    assert result.returncode == 0, result.stdout[-3000:]
    assert "1 skipped" in result.stdout, result.stdout[-3000:]
    skipped = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(skipped) == 1 and "LTH_TEST_SLURM=1" in skipped[0] and "make test-slurm" in skipped[0], skipped
