"""The public API is what ``sslzoo`` exports (``__all__``) plus the test kit ``sslzoo.testing`` and the
labeling sessions ``sslzoo.labeling``; the example plugin and every Python block of the docs use
nothing else, and the old module paths still import."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

import sslzoo
import sslzoo.labeling
import sslzoo.testing
from tests.test_docs import fenced_blocks

ROOT = Path(__file__).resolve().parent.parent
PUBLIC = {"sslzoo": set(sslzoo.__all__), "sslzoo.testing": set(sslzoo.testing.__all__),
          "sslzoo.labeling": set(sslzoo.labeling.__all__)}
#: Public modules exported by name: their public attributes are public too (``sslzoo.scores.bald``).
NAMESPACES = {"scores": sslzoo.scores}


def _is_ours(module: str) -> bool:
    return module == "sslzoo" or module.startswith("sslzoo.")


def private_uses(source: str) -> list[str]:
    """What ``source`` takes from sslzoo outside the public API, as ``line: what``."""
    tree = ast.parse(source)
    found: list[str] = []
    aliases: dict[str, str] = {}  # local name -> the public module it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not _is_ours(alias.name):
                    continue
                if alias.name not in PUBLIC:
                    found.append(f"{node.lineno}: import {alias.name}")
                elif alias.asname or "." not in alias.name:
                    aliases[alias.asname or alias.name] = alias.name
                else:  # ``import sslzoo.testing`` binds ``sslzoo``
                    aliases["sslzoo"] = "sslzoo"
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level and _is_ours(node.module):
            if node.module not in PUBLIC:
                found.append(f"{node.lineno}: from {node.module} import ...")
                continue
            for alias in node.names:
                if alias.name not in PUBLIC[node.module]:
                    found.append(f"{node.lineno}: from {node.module} import {alias.name}")
                elif alias.name in NAMESPACES:
                    aliases[alias.asname or alias.name] = alias.name
    found += AttributeCheck(aliases).uses(tree)
    return found


class AttributeCheck(ast.NodeVisitor):
    """``sslzoo.X``, ``sslzoo.scores.Y`` and ``scores.Y`` must be public; a function parameter of the
    same name (``def f(scores)``) shadows the import inside that function."""

    def __init__(self, aliases: dict[str, str]) -> None:
        self.aliases = aliases
        self.shadowed: list[set[str]] = [set()]
        self.found: list[str] = []

    def uses(self, tree: ast.AST) -> list[str]:
        self.visit(tree)
        return self.found

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        args = node.args
        names = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg] if a}
        for default in [*args.defaults, *args.kw_defaults]:
            if default is not None:
                self.visit(default)
        self.shadowed.append(self.shadowed[-1] | names)
        for child in ([node.body] if isinstance(node, ast.Lambda) else node.body):
            self.visit(child)
        self.shadowed.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def _public(self, module: str) -> set[str]:
        if module in PUBLIC:
            return PUBLIC[module] | ({"testing"} if module == "sslzoo" else set())
        return {n for n in vars(NAMESPACES[module]) if not n.startswith("_")}

    def visit_Attribute(self, node: ast.Attribute) -> None:
        chain, inner = [node.attr], node.value
        while isinstance(inner, ast.Attribute):
            chain.insert(0, inner.attr)
            inner = inner.value
        if isinstance(inner, ast.Name) and inner.id in self.aliases and inner.id not in self.shadowed[-1]:
            module = self.aliases[inner.id]
            for attr in chain:
                if attr not in self._public(module):
                    self.found.append(f"{node.lineno}: {inner.id}.{'.'.join(chain[:chain.index(attr) + 1])}")
                    return
                if attr not in NAMESPACES:
                    return
                module = attr
            return
        self.generic_visit(node)


def _parsable(body: str) -> str:
    """A documented signature (``def f(...) -> X:``) parses with a body added."""
    return body + "    ...\n" if body.rstrip().endswith(":") else body


def python_sources() -> list[tuple[str, str]]:
    """(where, source) of every file of the example plugin and every Python block of the docs."""
    sources = [(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8"))
               for p in sorted((ROOT / "plugins" / "sslzoo-example").rglob("*.py"))]
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for block in fenced_blocks(path.read_text(encoding="utf-8")):
            if block.lang == "python":
                sources.append((f"{path.relative_to(ROOT)}:{block.line}", _parsable(block.body)))
    return sources


def test_every_exported_name_exists():
    assert len(set(sslzoo.__all__)) == len(sslzoo.__all__)
    for module, names in PUBLIC.items():
        missing = [n for n in names if not hasattr(importlib.import_module(module), n)]
        assert not missing, f"{module}.__all__ names what it does not define: {missing}"


def test_a_plugin_needs_nothing_but_the_package():
    """What the hook reference and the tutorial build on is exported by ``sslzoo`` itself."""
    for name in ("Strategy", "TrainOptions", "Context", "Labels", "Batch", "EpochPlan", "hookimpl", "scores",
                 "top_k", "ActiveStrategy", "UncertaintyStrategy", "MCDropoutStrategy", "Dataset", "Arrays",
                 "weighted_cross_entropy", "Registry", "make_plugins", "PresetError", "OracleError"):
        assert name in sslzoo.__all__, name
    assert callable(sslzoo.scores.bald) and callable(sslzoo.top_k)


@pytest.mark.parametrize(("where", "source"), python_sources(), ids=[w for w, _ in python_sources()])
def test_the_example_plugin_and_the_docs_use_only_the_public_api(where, source):
    assert private_uses(source) == [], f"{where} uses sslzoo outside its public API (sslzoo.__all__)"


@pytest.mark.parametrize(("source", "expected"), [
    ("from sslzoo.active import UncertaintyStrategy", ["1: from sslzoo.active import ..."]),
    ("from sslzoo import engine", ["1: from sslzoo import engine"]),
    ("import sslzoo.registry", ["1: import sslzoo.registry"]),
    ("import sslzoo\nsslzoo.picking.top_k", ["2: sslzoo.picking"]),
    ("import sslzoo as z\nz.scores._entropy", ["2: z.scores._entropy"]),
    ("from sslzoo import scores\nscores.bald, scores._as_float", ["2: scores._as_float"]),
    ("import sslzoo\nfrom sslzoo import Strategy\nfrom sslzoo.testing import tiny_run\nsslzoo.scores.bald", []),
    ("import sslzoo_example\nfrom sslzoo_example.information_density import information_density", []),
])
def test_the_check_catches_private_names(source, expected):
    assert private_uses(source) == expected


@pytest.mark.parametrize(("module", "name"), [
    ("sslzoo.active", "UncertaintyStrategy"), ("sslzoo.context", "Context"), ("sslzoo.strategy", "EpochPlan"),
    ("sslzoo.picking", "top_k"), ("sslzoo.registry", "Registry"), ("sslzoo.plugins", "make_plugins"),
])
def test_old_import_paths_keep_working_with_a_deprecation_warning(module, name):
    sys.modules.pop(module, None)
    with pytest.warns(DeprecationWarning, match=f"{module} moved to .*from sslzoo itself"):
        moved = importlib.import_module(module)
    assert getattr(moved, name) is getattr(sslzoo, name)


@pytest.mark.parametrize(("module", "name"), [("sslzoo.errors", "PresetError"), ("sslzoo.scores", "bald")])
def test_the_public_modules_keep_their_paths(module, name):
    public = sslzoo.scores if module == "sslzoo.scores" else sslzoo
    assert getattr(importlib.import_module(module), name) is getattr(public, name)
