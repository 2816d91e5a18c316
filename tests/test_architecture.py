"""The import rules of docs/architecture.md, enforced on the source (every import, including
those inside functions): which layer may import which, and no import cycles between modules.

A layer is the longest prefix of a module's name found in :data:`LAYERS`.  The table in
docs/architecture.md is checked against :data:`LAYERS` too, so the document cannot drift."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from conftest import ROOT

PACKAGES = ("parsers", "clinical", "analysis", "itb_device", "ward")

# layer -> the layers it may import (besides itself)
LAYERS: dict[str, set[str]] = {
    "parsers": set(),
    "clinical": set(),
    "analysis": {"parsers", "clinical"},
    "analysis.reports": {"analysis", "parsers", "clinical"},
    "analysis.research": {"analysis", "parsers", "clinical"},
    "itb_device": {"itb_device.sim", "itb_device.wire", "parsers", "clinical"},
    "itb_device.wire": {"itb_device", "itb_device.sim", "parsers", "clinical"},
    "itb_device.sim": {"itb_device", "parsers", "clinical"},
    "itb_device.cli": {"itb_device", "itb_device.sim", "itb_device.wire", "analysis", "analysis.reports",
                       "analysis.research", "parsers", "clinical", "ward"},
    "ward": {"itb_device", "itb_device.cli", "analysis", "analysis.reports", "parsers", "clinical"},
}
# entry points that only start the command line
ENTRY_POINTS = {"itb_device.__main__": {"itb_device.cli"}}


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[tuple[str, int]]:
    """Every project module ``path`` imports (resolved, relative imports included), with its line."""
    mod = _module(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            # `from pkg import name`: name is a submodule when a file or folder says so
            targets = []
            for a in node.names:
                sub = f"{stem}.{a.name}"
                p = ROOT / Path(*sub.split("."))
                targets.append(sub if p.with_suffix(".py").exists() or (p / "__init__.py").exists() else stem)
        else:
            continue
        for t in targets:
            if t.split(".")[0] in PACKAGES:
                yield t, node.lineno


def layer(module: str) -> str:
    """The longest prefix of ``module`` in :data:`LAYERS`."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in LAYERS:
            return ".".join(parts[:n])
    raise AssertionError(f"{module} is in no layer of LAYERS")


def _sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in _sources():
        graph.setdefault(_module(path), set()).update(t for t, _ in _imports(path))
    return graph


def test_every_import_follows_the_layer_rules():
    broken = []
    for path in _sources():
        mod = _module(path)
        here = layer(mod)
        allowed = LAYERS[here] | {here} | ENTRY_POINTS.get(mod, set())
        for target, line in _imports(path):
            if layer(target) not in allowed:
                broken.append(f"{path.relative_to(ROOT)}:{line}: {mod} ({here}) imports {target} "
                              f"({layer(target)})")
    assert not broken, "imports that break docs/architecture.md:\n" + "\n".join(broken)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_between_modules():
    """A package's ``__init__`` re-exporting its modules is not a cycle unless a module imports
    the package back; every other cycle (also through imports inside functions) is."""
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_rules_in_docs_architecture_are_these():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([a-z_.]+)` \| ([^|]*) \|", text, flags=re.M)
    documented = {name: set(re.findall(r"`([a-z_.]+)`", may)) for name, may in rows}
    assert documented == LAYERS
