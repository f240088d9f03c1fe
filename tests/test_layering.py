"""The import graph of ``clouds`` between its parts (subpackages and top-level modules) has no
cycle and no upward arrow: data and modeling never import engine (nor the predictor), and the
low-level helpers (config, utils, visualization) import no model, data or engine code;
backbones and heads import no meta-architecture; model checkpoints are read and written only by
clouds/modeling/checkpoint/; README's Architecture section names every part and only paths that
exist.

Every ``import`` statement counts, also those inside functions (lazy imports are still arrows).
"""

from __future__ import annotations

import ast
import re
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


# Files that read or write weights with torch directly, outside clouds/modeling/checkpoint/: the
# one reader of every weight file, and writers of a foundation model's weights (not a checkpoint
# of one of our models).
FOUNDATION_WEIGHT_FILES = {
    "utils/weights_file.py",  # reads every weight file (checkpoints, CLIP, VFM, SAM)
    "modeling/backbone/vfm/convert_files.py",  # VFM weights converted as the original DGVFM tools
    "modeling/lora_export.py",  # a LoRA-merged VFM, in the official format
    "engine/quickstart.py",  # the tiny random SAM of the quickstart
}


def _torch_io_calls(path: Path) -> list[str]:
    """``torch.load`` / ``torch.save`` calls in ``path`` (as ``name:line``)."""
    calls = []
    for node in ast.walk(ast.parse(path.read_text())):
        func = node.func if isinstance(node, ast.Call) else None
        if (
            isinstance(func, ast.Attribute)
            and func.attr in ("load", "save")
            and isinstance(func.value, ast.Name)
            and func.value.id == "torch"
        ):
            calls.append(f"torch.{func.attr}:{node.lineno}")
    return calls


def test_checkpoints_are_read_and_written_only_by_the_checkpoint_package():
    outside = {
        str(path.relative_to(PACKAGE)): calls
        for path in PACKAGE.rglob("*.py")
        if (calls := _torch_io_calls(path))
        and path.relative_to(PACKAGE).parts[:2] != ("modeling", "checkpoint")
    }
    assert set(outside) == FOUNDATION_WEIGHT_FILES, outside


def test_readme_architecture_names_only_paths_that_exist():
    readme = (PACKAGE.parent / "README.md").read_text()
    section = readme[readme.index("## Architecture") :]
    section = section[: section.index("\n## ", 1)]
    paths = set(re.findall(r"`(clouds/[^`\s]*)`", section))
    assert {"clouds/modeling/checkpoint/", "clouds/modeling/heads/base.py"} <= paths
    assert [p for p in sorted(paths) if not (PACKAGE.parent / p).exists()] == []
    parts = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert [part for part in sorted(parts) if f"`clouds/{part}/`" not in section] == []


def test_backbones_and_heads_import_no_meta_architecture():
    offenders = []
    for folder in ("backbone", "heads"):
        for path in (PACKAGE / "modeling" / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                if any(n.startswith("clouds.modeling.meta_arch") for n in names):
                    offenders.append(str(path.relative_to(PACKAGE)))
    assert offenders == []
