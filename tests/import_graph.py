"""The import graph of the project's packages, read from their source (no import is run).

Every import statement counts: at module level, inside functions and under
``if TYPE_CHECKING:``, so a function-local or type-only import cannot hide a circle.
``from a.b import c`` is an edge to ``a.b.c`` when that is a module, else to ``a.b``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

Graph = Mapping[str, frozenset[str]]


def module_files(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Dotted module name -> source file, for every .py file under `root`/<package>."""
    modules: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _imported_names(node: ast.Import | ast.ImportFrom, module: str, is_package: bool,
                    modules: Mapping[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    names = []
    for alias in node.names:
        candidate = f"{source}.{alias.name}"
        names.append(candidate if candidate in modules else source)
    return names


def import_graph(root: Path, packages: Iterable[str]) -> dict[str, frozenset[str]]:
    """Module -> the project modules it imports anywhere in its source."""
    modules = module_files(root, packages)
    graph: dict[str, frozenset[str]] = {}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                targets.update(name for name in _imported_names(node, module, is_package, modules)
                               if name in modules and name != module)
        graph[module] = frozenset(targets)
    return graph


def package_graph(graph: Graph, depth: int = 2) -> dict[str, frozenset[str]]:
    """The graph between the `depth`-component prefixes of module names (htmengine.runtime,
    htmengine.adapters, ...): an edge wherever one of their modules imports the other's."""
    def group(name: str) -> str:
        return ".".join(name.split(".")[:depth])

    edges: dict[str, set[str]] = {group(m): set() for m in graph}
    for module, targets in graph.items():
        edges[group(module)].update(group(t) for t in targets if group(t) != group(module))
    return {name: frozenset(targets) for name, targets in edges.items()}


def circles(graph: Graph) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(start: str) -> None:
        # Iterative Tarjan: (node, iterator over its successors).
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph.get(succ, ())))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def edges_within(graph: Graph, members: Iterable[str]) -> list[tuple[str, str]]:
    """The edges among `members` (to say what makes a circle)."""
    inside = set(members)
    return sorted((a, b) for a in inside for b in graph.get(a, ()) if b in inside)
