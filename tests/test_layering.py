"""The import graph of ``clouds`` between its parts (subpackages and top-level modules) has no
cycle and no upward arrow: data and modeling never import engine (nor the predictor), and the
low-level helpers (config, utils, visualization) import no model, data or engine code.

Every ``import`` statement counts, also those inside functions (lazy imports are still arrows).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "clouds"

# part -> parts it must never import (directly); "above" means closer to the user.
FORBIDDEN = {
    "config": {"utils", "data", "modeling", "engine", "evaluation", "visualization", "predictor"},
    "utils": {"data", "modeling", "engine", "evaluation", "visualization", "predictor"},
    "visualization": {"data", "modeling", "engine", "evaluation", "predictor"},
    "data": {"modeling", "engine", "evaluation", "predictor"},
    "modeling": {"engine", "evaluation", "predictor"},
    "sam": {"engine", "predictor"},
    "generation": {"engine", "predictor"},
    "evaluation": {"engine", "modeling", "predictor"},
}


def _part(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("").parts
    return rel[0]


def _import_graph() -> dict[str, dict[str, set[str]]]:
    """{part: {imported part: {file doing it}}} over every module of the package."""
    parts = {
        p.stem if p.is_file() else p.name for p in PACKAGE.iterdir() if p.suffix in ("", ".py")
    }
    graph: dict[str, dict[str, set[str]]] = {}
    for path in PACKAGE.rglob("*.py"):
        source = _part(path)
        if source == "__init__":
            continue
        arrows = graph.setdefault(source, {})
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                dotted = name.split(".")
                inside = dotted[0] == "clouds" and len(dotted) > 1 and dotted[1] in parts
                if inside and dotted[1] != source:
                    arrows.setdefault(dotted[1], set()).add(str(path.relative_to(PACKAGE)))
    return graph


def test_graph_is_read():
    graph = _import_graph()
    assert "modeling" in graph["predictor"] and "modeling" in graph["engine"]


def test_no_upward_import():
    graph = _import_graph()
    upward = [
        f"{source} -> {target} ({', '.join(sorted(files))})"
        for source, banned in FORBIDDEN.items()
        for target, files in graph.get(source, {}).items()
        if target in banned
    ]
    assert upward == []


def test_no_cycle_between_parts():
    graph = _import_graph()
    state: dict[str, str] = {}
    cycles: list[list[str]] = []

    def visit(part: str, trail: list[str]) -> None:
        state[part] = "open"
        for target in graph.get(part, {}):
            if state.get(target) == "open":
                cycles.append([*trail[trail.index(target) :], target])
            elif target not in state:
                visit(target, [*trail, target])
        state[part] = "done"

    for part in sorted(graph):
        if part not in state:
            visit(part, [part])
    assert cycles == []
