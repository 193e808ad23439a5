"""A command's inputs: the --config file of settings sections, and the files its flags name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from lth.errors import LthError, UsageError
from lth.hparams import SECTIONS
from lth.yamlio import DuplicateKeyError, read_yaml


def load_config(path: str | None) -> dict[str, Any]:
    """The --config file: a mapping of known sections, each a mapping (or empty)."""
    if path is None:
        return {}
    sections = [cls.section for cls in SECTIONS]
    try:
        config = read_yaml(path) or {}
    except FileNotFoundError:
        raise UsageError(f"--config: {path} does not exist") from None
    except (OSError, ValueError) as error:  # a folder, no permission, bytes that are not text
        raise UsageError(f"--config: {path} cannot be read ({error}); give a YAML file") from None
    except DuplicateKeyError as error:  # names the file, the key and both lines
        raise UsageError(f"--config: {error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise UsageError(
            f"--config: {path} is not valid YAML ({where}{getattr(error, 'problem', None) or error}); fix the syntax"
        ) from None
    if not isinstance(config, dict):
        raise UsageError(f"--config: {path} must hold a mapping with sections {', '.join(sections)}")
    unknown = [key for key in config if key not in sections]
    if unknown:  # a misspelt section would otherwise be ignored without a word
        raise UsageError(f"--config: {path}: unknown section {unknown[0]!r}; allowed sections: {', '.join(sections)}")
    for section, values in config.items():
        if values is not None and not isinstance(values, dict):
            raise UsageError(
                f"--config: {path}: section {section!r} must be a mapping of keys to values "
                f"(e.g. `{section}: {{key: value}}`), not {values!r}"
            )
    return config


def require_file(path: str | None, flag: str) -> Path | None:
    """`path` as a Path (None stays None), which must be an existing file."""
    if path is not None and not Path(path).is_file():
        raise UsageError(f"{flag}: {path} does not exist or is not a file")
    return Path(path) if path is not None else None


def read_input(flag: str, path: Path, load: Callable[[Path], Any]) -> Any:
    """`load(path)`, with the flag that named the file in front of any error."""
    try:
        return load(path)
    except LthError as error:
        raise UsageError(f"{flag}: {error}") from None
