"""What gets installed: dfstream and training (with training.research), not benchmarks, and
nothing installed imports the benchmarks, which exist only in a checkout."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from setuptools import find_packages

REPO = Path(__file__).resolve().parents[1]


def test_benchmarks_are_not_an_installed_package() -> None:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = set(find_packages(str(REPO), include=include))
    assert {"dfstream", "dfstream.faces", "training", "training.research"} <= packages
    assert not {p for p in packages if p.split(".")[0] in ("benchmarks", "tests")}


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_installed_code_never_imports_benchmarks() -> None:
    offenders = {
        str(path.relative_to(REPO)): sorted(
            n for n in _imported(path) if n.split(".")[0] == "benchmarks"
        )
        for package in ("dfstream", "training")
        for path in sorted((REPO / package).rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}
