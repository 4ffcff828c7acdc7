"""The package's layout: layers without cycles, nothing hidden from the import graph, a small root.

The layers themselves are import-linter contracts (``lint-imports``, ``[tool.importlinter]`` in
pyproject.toml); these tests hold what the contracts do not: no cycle anywhere, also inside one
layer, and no import of sslzoo placed inside a function or a ``TYPE_CHECKING`` block, where it
could hide one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sslzoo"
MODULES = sorted(PACKAGE.rglob("*.py"))


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in edges[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_of_sslzoo_imports_itself_back():
    graph = grimp.build_graph("sslzoo", include_external_packages=False)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert cycles(edges) == []


def hidden_imports(source: str) -> list[int]:
    """Lines that import sslzoo inside a function, a class or an ``if`` block (``TYPE_CHECKING``)."""
    lines = []

    def walk(node: ast.AST, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)) and nested:
                names = [child.module or ""] if isinstance(child, ast.ImportFrom) else [a.name for a in child.names]
                if any(n == "sslzoo" or n.startswith("sslzoo.") for n in names):
                    lines.append(child.lineno)
            walk(child, nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.If)))

    walk(ast.parse(source), False)
    return lines


def test_the_hidden_import_check_sees_functions_and_type_checking_blocks():
    source = ("from sslzoo import errors\nif TYPE_CHECKING:\n    from sslzoo._contract import context\n"
              "def f():\n    import sslzoo._engine\n    import json\n")
    assert hidden_imports(source) == [3, 5]


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(PACKAGE)) for p in MODULES])
def test_sslzoo_is_imported_at_the_top_of_every_module(path):
    assert hidden_imports(path.read_text(encoding="utf-8")) == [], f"{path.name}: import sslzoo at the top"


def test_the_package_root_holds_at_most_a_dozen_modules():
    root = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(root) <= 12, root


@pytest.mark.parametrize("package", sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py")))
def test_every_subpackage_says_what_lives_there_and_what_it_may_import(package):
    doc = ast.get_docstring(ast.parse((PACKAGE / package / "__init__.py").read_text(encoding="utf-8")))
    assert doc and "May import" in doc, f"sslzoo/{package}/__init__.py: say what lives there and what it may import"
