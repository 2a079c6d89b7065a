"""The library's import graph: no circle, and no arrow from the library into a suite's code.

Every import counts, also one inside a function (it still runs, only later), and importing
``a.b.c`` counts as importing the packages ``a.b`` (its ``__init__`` runs first). A module's own
package is not an arrow back: a package importing its submodules is how packages work.
"""

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "modgen_bench"
SUITES = ("synthetic", "real_world", "examples")


def _modules() -> dict:
    out = {}
    for path in LIB.rglob("*.py"):
        if "_bundled" in path.relative_to(LIB).parts:
            continue
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _targets(name: str, path: Path, node) -> list[str]:
    """The dotted names an import statement in module ``name`` reaches."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)] if node.level else []
    mod = ".".join(base + ([node.module] if node.module else []))
    return [f"{mod}.{a.name}" for a in node.names] + [mod]


def import_graph() -> nx.DiGraph:
    mods = _modules()
    g = nx.DiGraph()
    g.add_nodes_from(mods)
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for target in _targets(name, path, node):
                parts = target.split(".")
                for i in range(2, len(parts) + 1):  # the target and its packages
                    dep = ".".join(parts[:i])
                    if dep in mods and dep != name and not name.startswith(dep + "."):
                        g.add_edge(name, dep)
                g.graph.setdefault("external", set()).add((name, target))
    return g


def test_the_library_has_no_import_circle():
    cycles = [sorted(c) for c in nx.strongly_connected_components(import_graph()) if len(c) > 1]
    assert cycles == []


def test_no_library_module_imports_a_suite():
    g = import_graph()
    bad = sorted(
        (m, t)
        for m, t in g.graph.get("external", ())
        if t.split(".")[0] in SUITES or t.startswith("modgen_suite_")
    )
    assert bad == []


@pytest.mark.parametrize("cycle", [("modgen_bench.pipeline.gate", "modgen_bench.combiners")])
def test_the_check_sees_a_planted_circle(cycle):
    """The graph has the arrows a circle needs: planting the one edge that closes a loop through
    a lazy import is found (so the empty answer above is not the check's blindness)."""
    g = import_graph()
    assert nx.has_path(g, cycle[1], cycle[0])
    g.add_edge(*cycle)
    assert any(len(c) > 1 for c in nx.strongly_connected_components(g))
