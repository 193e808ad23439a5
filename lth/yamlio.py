"""Reading YAML: the one loader lth uses for every YAML it reads (configs, `--config` files, flag
values, run records), which refuses a key given twice in one mapping.

PyYAML, and Snakemake's config loader, keep the last of two equal keys without a word: a config
with `train:` twice, or `train: {epochs: 2, epochs: 7}`, would run something other than the file
appears to say.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from lth.errors import LthError

_MERGE_TAG = "tag:yaml.org,2002:merge"  # `<<: *base`: explicit keys may override merged ones


class DuplicateKeyError(LthError, yaml.YAMLError):
    """A mapping sets one key twice; the message names the file, the key and both places.
    A YAMLError too, so code that treats unreadable YAML as such treats this the same."""


class StrictLoader(yaml.SafeLoader):
    """yaml.SafeLoader that raises DuplicateKeyError when a mapping has one key twice."""

    def construct_document(self, node: yaml.Node) -> Any:
        # Checked over the whole node tree before construction, where the path to each mapping is
        # known (SafeLoader builds nested mappings lazily, out of document order).
        self._check_keys(node, "", set())
        return super().construct_document(node)

    def _check_keys(self, node: yaml.Node, path: str, visited: set[int]) -> None:
        if id(node) in visited:  # an alias: its anchor was checked, and it may be recursive
            return
        visited.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self._check_keys(item, f"{path}[{index}]", visited)
        elif isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Node] = {}
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:
                    self._check_keys(value_node, path, visited)
                    continue
                name = path
                if isinstance(key_node, yaml.ScalarNode):
                    key = self.construct_object(key_node)  # `1` and `0x1`, `yes` and `true` are one key
                    name = f"{path}.{key}" if path else str(key)
                    if key in seen:
                        raise DuplicateKeyError(
                            f"{key_node.start_mark.name}: key {name!r} is given twice, at {_place(seen[key])} and "
                            f"at {_place(key_node)}; keep one (YAML would silently use the last)"
                        )
                    seen[key] = key_node
                self._check_keys(value_node, name, visited)


def _place(node: yaml.Node) -> str:
    return f"line {node.start_mark.line + 1}, column {node.start_mark.column + 1}"


def load_yaml(text: str, source: str) -> Any:
    """The YAML document in `text`, read by StrictLoader; `source` names it in errors (a path or a flag)."""
    loader = StrictLoader(text)
    loader.name = source  # what every mark, so every error message, calls the stream
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_yaml(path: str | os.PathLike) -> Any:
    """The YAML file at `path` (None when empty); OSError when it cannot be read, yaml.YAMLError
    (DuplicateKeyError for a key given twice) when it is not valid."""
    return load_yaml(Path(path).read_text(), str(path))
