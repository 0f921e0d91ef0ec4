"""The ``dfstream`` package has no import cycle between its modules.

The graph is read statically with ``ast`` from every module under ``dfstream/``, including the
imports inside functions (a deferred import that closes a loop is still a loop, just one that
fails later and only on some paths). Its edges:

- ``import a.b.c`` and ``from a.b.c import name`` depend on ``a.b.c``;
- ``from a.b import c`` depends on ``a.b.c`` when ``c`` is a submodule, else on ``a.b``
  (the package's ``__init__``);
- relative imports are resolved against the importing module's package;
- imports under ``if TYPE_CHECKING:`` are left out: they never run;
- importing ``a.b.c`` also runs ``a/__init__`` and ``a/b/__init__``, but those implicit parent
  imports are not edges: Python initialises a parent before its child, so they cannot deadlock
  an import, and counting them would make every re-export in an ``__init__`` look like a cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "dfstream"


def module_name(path: Path, root: Path) -> str:
    """``dfstream/a/b.py`` -> ``dfstream.a.b``; ``dfstream/a/__init__.py`` -> ``dfstream.a``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def discover(root: Path, package: str) -> dict[str, Path]:
    """Every module of ``package`` under ``root``, by dotted name."""
    return {module_name(p, root): p for p in sorted((root / package).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement in ``tree``, at any depth, except under ``if TYPE_CHECKING:``."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _base(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` statement names."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    anchor = package[: len(package) - (node.level - 1)]
    return ".".join([*anchor, *([node.module] if node.module else [])])


def dependencies(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of the package that ``module`` (at ``path``) imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in _imports(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        base = _base(module, is_package, node)
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            found.add(submodule if submodule in modules else base)
    return {name for name in found if name in modules and name != module}


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """module -> the package modules it imports."""
    modules = discover(root, package)
    return {name: dependencies(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as ``[a, b, ..., a]``, or None when the graph has none (iterative DFS)."""
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        path: list[str] = [start]
        on_path = {start}
        pending = [iter(sorted(graph[start]))]
        while pending:
            child = next(pending[-1], None)
            if child is None:
                pending.pop()
                done.add(path[-1])
                on_path.discard(path.pop())
                continue
            if child in on_path:
                return [*path[path.index(child) :], child]
            if child not in done:
                path.append(child)
                on_path.add(child)
                pending.append(iter(sorted(graph[child])))
    return None


def test_dfstream_has_no_import_cycle() -> None:
    graph = import_graph(ROOT, PACKAGE)
    assert len(graph) > 30  # the whole package was read, not an empty folder
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


CASES = [
    pytest.param({"p/a.py": "import p.b\n", "p/b.py": "x = 1\n"}, None, id="no cycle"),
    pytest.param(
        {"p/a.py": "from p import b\n", "p/b.py": "def f():\n    from p.a import g\n"},
        ["p.a", "p.b", "p.a"],
        id="submodule import and an import inside a function",
    ),
    pytest.param(
        {"p/a.py": "from . import b\n", "p/b.py": "from .a import x\n"},
        ["p.a", "p.b", "p.a"],
        id="relative imports",
    ),
    pytest.param(
        {"p/__init__.py": "from p.a import x\n", "p/a.py": "from p import VERSION\n"},
        ["p", "p.a", "p"],
        id="a name imported from a package is its __init__",
    ),
    pytest.param(
        {"p/__init__.py": "from p.a import x\n", "p/a.py": "import p.b\n", "p/b.py": ""},
        None,
        id="implicit parent imports are not edges",
    ),
    pytest.param(
        {
            "p/a.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from p.b import B\n"
            ),
            "p/b.py": "import p.a\n",
        },
        None,
        id="TYPE_CHECKING imports never run",
    ),
    pytest.param(
        {"p/s/__init__.py": "", "p/s/x.py": "from ..t import y\n", "p/t.py": "import p.s.x\n"},
        ["p.s.x", "p.t", "p.s.x"],
        id="relative import two levels up",
    ),
]


@pytest.mark.parametrize(("files", "expected"), CASES)
def test_cycle_finder(tmp_path: Path, files: dict[str, str], expected: list[str] | None) -> None:
    _write(tmp_path, files)
    assert find_cycle(import_graph(tmp_path, "p")) == expected
