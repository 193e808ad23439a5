"""lth's units import each other without a cycle, and no library code imports the command line.

A unit is a top-level module (lth/store.py) or a subpackage (lth/plan/). Every import counts,
those inside functions too (a lazy import is still a dependency); only `if TYPE_CHECKING:` imports
do not, since they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "lth"


def unit(module: str) -> str:
    """`lth.analysis.hessian` -> `lth.analysis`; `lth.store` -> `lth.store`."""
    parts = module.split(".")
    return ".".join(parts[:2])


def module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def imported(path: Path, root: Path = REPO) -> set[str]:
    """The lth modules `path` imports at run time (absolute or relative, at any depth)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from lth import plan`
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return {module for module in found if module == "lth" or module.startswith("lth.")}


def unit_graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {unit(name): set() for name in modules if name != "lth"}
    for name, path in modules.items():
        if name == "lth":
            continue
        for target in imported(path):
            # `from lth import x` names a module only when x is one (else an attribute of lth/__init__.py)
            if target in modules and unit(target) != unit(name) and target != "lth":
                graph[unit(name)].add(unit(target))
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one unit (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_no_import_cycle_between_lths_units():
    graph = unit_graph()
    assert len(graph) > 10
    assert cycles(graph) == []


def test_no_library_module_imports_the_command_line():
    users = sorted(
        module_name(path)
        for path in PACKAGE.rglob("*.py")
        if unit(module_name(path)) not in ("lth.cli", "lth.__main__")
        and any(unit(target) == "lth.cli" for target in imported(path))
    )
    assert users == []


def test_the_checks_see_a_cycle_and_a_lazy_import_but_not_a_type_checking_one(tmp_path):
    assert cycles({"lth.a": {"lth.b"}, "lth.b": {"lth.c"}, "lth.c": {"lth.a"}, "lth.d": {"lth.a"}}) == [
        ["lth.a", "lth.b", "lth.c"]
    ]
    module = tmp_path / "lth" / "x.py"
    module.parent.mkdir()
    module.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from lth.cli import main\n"
        "def f():\n    from lth.store import claim\n    from . import io\n"
    )
    assert imported(module, tmp_path) == {"lth.store", "lth.store.claim", "lth", "lth.io"}
