"""The package's folders import each other without loops.

Every ``import`` statement is read from the source (module level and inside functions alike, so that a loop cannot
hide behind a function-local import) and mapped to its unit: a subpackage of :mod:`imvia_core` (``data``,
``features``, ``model``, ...), a top-level module of it (``imvia_core.layout``, ``imvia_core.types``, ...) or the
benchmark package ``bench``. The graph of units must have no cycle.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "imvia_core"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _unit(module: str) -> str | None:
    """``imvia_core.data.graph`` -> ``data``; ``imvia_core.layout`` -> ``layout``; ``bench.x`` -> ``bench``."""
    parts = module.split(".")
    if parts[0] == "bench":
        return "bench"
    if parts[0] != "imvia_core" or len(parts) < 2:
        return None
    return parts[1]


def _imported(path: Path) -> list[tuple[str, int]]:
    """``(module, line)`` of every import in ``path``, relative imports resolved."""
    module = _module_name(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((name, node.lineno))
            # ``from imvia_core import training`` imports the subpackage itself
            if name == "imvia_core":
                found += [(f"imvia_core.{alias.name}", node.lineno) for alias in node.names]
    return found


def unit_graph() -> dict[str, dict[str, list[str]]]:
    """``{unit: {imported unit: ["path:line", ...]}}`` over ``imvia_core/`` and ``bench/``."""
    graph: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted([*PACKAGE.rglob("*.py"), *(ROOT / "bench").glob("*.py")]):
        source = _unit(_module_name(path))
        if source is None:  # imvia_core/__init__.py and __main__.py: entry points, above every unit
            continue
        for name, line in _imported(path):
            target = _unit(name)
            if target is not None and target != source:
                graph[source][target].append(f"{path.relative_to(ROOT)}:{line}")
    return graph


def _cycles(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """The strongly connected components of more than one unit (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in list(graph):
        if node not in index:
            visit(node)
    return components


def test_no_import_cycle_between_folders() -> None:
    graph = unit_graph()
    cycles = _cycles(graph)
    where = [
        f"{a} -> {b} at {', '.join(graph[a][b])}" for cycle in cycles for a in cycle for b in cycle if b in graph[a]
    ]
    assert not cycles, "import cycles between folders: " + "; ".join(where)


def test_the_walk_sees_the_known_layers() -> None:
    """The graph is not empty by accident: training uses the model and the data, evaluation the data."""
    graph = unit_graph()
    assert {"model", "data", "evaluation"} <= set(graph["training"])
    assert "data" in graph["evaluation"] and "imvia_core" not in graph
    assert "training" in graph["bench"]


def test_a_loop_is_found() -> None:
    """The cycle finder itself: a two-unit loop and a three-unit loop are reported, a chain is not."""
    assert _cycles({"a": {"b": []}, "b": {"a": []}}) == [["a", "b"]]
    assert _cycles({"a": {"b": []}, "b": {"c": []}, "c": {"a": []}, "d": {"a": []}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b": []}, "b": {"c": []}}) == []
