"""No import circles in htmengine, nta_utils and influxhtm, and the layers point one way.

The graph counts every import (function-local and TYPE_CHECKING ones too), so an import moved
into a function to dodge a circle fails here as the circle it is.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from import_graph import circles, edges_within, import_graph, package_graph

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("htmengine", "nta_utils", "influxhtm")
# Services (and their entry points) sit above the library they share; none of the library
# packages may import them.
SERVICES = ("htmengine.runtime", "htmengine.api", "htmengine.alerts", "htmengine.cli",
            "htmengine.monitors")
LIBRARY = ("htmengine.pipeline", "htmengine.repository", "htmengine.algorithms",
           "htmengine.adapters", "htmengine.model_swapper", "nta_utils")


@pytest.fixture(scope="module")
def graph() -> dict[str, frozenset[str]]:
    return import_graph(ROOT, PACKAGES)


def _describe(graph: dict[str, frozenset[str]], found: list[list[str]]) -> str:
    return "\n".join(f"circle {members}: " + ", ".join(f"{a} -> {b}" for a, b in
                                                        edges_within(graph, members))
                     for members in found)


def test_no_module_imports_itself_back(graph: dict[str, frozenset[str]]) -> None:
    found = circles(graph)
    assert not found, _describe(graph, found)


def test_no_circle_between_packages(graph: dict[str, frozenset[str]]) -> None:
    packages = package_graph(graph)
    found = circles(packages)
    assert not found, _describe(packages, found)


def test_library_never_imports_a_service(graph: dict[str, frozenset[str]]) -> None:
    wrong = sorted((module, target) for module, targets in graph.items()
                   if module.startswith(LIBRARY) for target in targets
                   if target.startswith(SERVICES))
    assert not wrong, wrong


def test_the_check_sees_function_local_and_type_only_circles(tmp_path: Path) -> None:
    """The checker itself: a circle closed only by a function-local import and one closed
    only under TYPE_CHECKING are both found; a one-way chain is not a circle."""
    pkg = tmp_path / "demo"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from demo import b\n")
    (pkg / "b.py").write_text("def f():\n    from demo.a import thing\n    return thing\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                              "    from . import d\n")
    (pkg / "d.py").write_text("import demo.c\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "e.py").write_text("from ..a import x\n")
    (pkg / "f.py").write_text("from demo.sub import e\n")
    found = circles(import_graph(tmp_path, ["demo"]))
    assert found == [["demo.a", "demo.b"], ["demo.c", "demo.d"]]
    packages = package_graph(import_graph(tmp_path, ["demo"]))
    assert ["demo.a", "demo.b"] in circles(packages)
    assert not any("demo.sub" in c for c in circles(packages))
