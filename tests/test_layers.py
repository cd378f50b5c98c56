"""The house stays in order: the import graph of ``src/pixelgroup`` (function-level imports included)
has no cycle, and every import points down the layers

    {cli, napari} -> engine -> methods -> {models, losses, grouping, data, metrics} -> base

where *base* is ``registry``, ``types``, ``config``, ``fileio`` and ``ops``. Components do not import
each other except where listed in ``ALLOWED`` (a loss needs no grouper, a grouper no loss, metrics
work on label images)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "pixelgroup"

BASE = {"top", "registry", "types", "config", "fileio", "ops"}
ALLOWED: dict[str, set[str]] = {
    "top": set(),  # pixelgroup/__init__.py imports lazily (importlib), never at import time
    "registry": set(),
    "types": set(),
    "config": {"fileio"},
    "fileio": set(),
    "ops": {"types", "registry"},
    "models": BASE,
    "losses": BASE,
    "grouping": BASE,
    "metrics": BASE,
    "data": BASE,
    "methods": BASE | {"models", "losses", "grouping"},
    "engine": BASE | {"methods", "models", "losses", "grouping", "data", "metrics"},
    "__main__": {"cli"},  # python -m pixelgroup
    "cli": BASE | {"engine", "data", "metrics", "methods"},
    "napari": BASE | {"engine", "data", "metrics", "methods"},  # a front end like the CLI
    "zoo": set(),  # package data only (bundled models)
}


def _modules() -> dict[str, Path]:
    return {".".join(p.relative_to(SRC).with_suffix("").parts): p for p in PKG.rglob("*.py")}


def _room(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "__init__":
        return "top"
    return parts[1]


def _targets(module: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """Modules of the package that ``module`` imports, anywhere in its body."""
    is_pkg = path.name == "__init__.py"
    base = module[: -len(".__init__")] if is_pkg else module.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                target = ".".join(parts + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{a.name}" for a in node.names] + [target]
        else:
            continue
        for name in names:
            for cand in (name, f"{name}.__init__"):
                if cand in mods:
                    out.add(cand)
    out.discard(module)
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: _targets(m, p, mods) for m, p in mods.items() if m.startswith("pixelgroup")}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan); package ``__init__`` files are
    left out, since importing a package for its registrations is not a dependency cycle."""
    nodes = [m for m in graph if not m.endswith("__init__")]
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w.endswith("__init__"):
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in nodes:
        if v not in index:
            visit(v)
    return found


def _crossings(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for m, targets in graph.items():
        a = _room(m)
        for t in targets:
            b = _room(t)
            if b != a and b not in ALLOWED[a]:
                bad.append(f"{m} -> {t} ({a} may import {sorted(ALLOWED[a]) or 'nothing of the package'})")
    return sorted(bad)


def test_every_module_is_in_a_known_room():
    unknown = sorted({_room(m) for m in _graph()} - set(ALLOWED))
    assert not unknown, f"new top-level module(s) {unknown}: add them to ALLOWED with the rooms they may import"


def test_import_graph_has_no_cycle():
    assert _cycles(_graph()) == []


def test_imports_point_down_the_layers():
    assert _crossings(_graph()) == []


@pytest.mark.parametrize(
    "edges, expect_cycle, expect_crossing",
    [
        ({"pixelgroup.engine.a": {"pixelgroup.engine.b"}, "pixelgroup.engine.b": {"pixelgroup.engine.a"}}, True, False),
        ({"pixelgroup.losses.x": {"pixelgroup.grouping.y"}, "pixelgroup.grouping.y": set()}, False, True),
        ({"pixelgroup.grouping.y": {"pixelgroup.engine.z"}, "pixelgroup.engine.z": set()}, False, True),
        ({"pixelgroup.engine.z": {"pixelgroup.grouping.y"}, "pixelgroup.grouping.y": {"pixelgroup.ops.c"},
          "pixelgroup.ops.c": set()}, False, False),
    ],
)
def test_the_checks_catch_what_they_guard(edges, expect_cycle, expect_crossing):
    # the rules themselves, on made-up graphs: a cycle, a loss importing a grouper, a component
    # importing the engine, and a clean downward chain
    assert bool(_cycles(edges)) is expect_cycle
    assert bool(_crossings(edges)) is expect_crossing
