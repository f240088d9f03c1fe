"""constraints.txt pins every package that ``pip install -c constraints.txt -e ".[dev]"``
installs: the dependency closure of pyproject.toml (with the dev extra), read from the
installed packages' metadata."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]


def _pinned() -> set[str]:
    names = set()
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            names.add(canonicalize_name(name))
    return names


def _closure() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo = [(Requirement(r), "") for r in project["dependencies"]]
    todo += [(Requirement(r), "dev") for r in project["optional-dependencies"]["dev"]]
    seen: set[tuple[str, tuple[str, ...]]] = set()
    names = set()
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        key = (canonicalize_name(req.name), tuple(sorted(req.extras)))
        if key in seen:
            continue
        seen.add(key)
        names.add(key[0])
        for sub in metadata.distribution(req.name).requires or []:
            todo.extend((Requirement(sub), e) for e in (*req.extras, ""))
    return names


def test_constraints_pin_the_whole_install() -> None:
    missing = sorted(_closure() - _pinned())
    assert missing == [], f"add pins to constraints.txt for: {missing}"
