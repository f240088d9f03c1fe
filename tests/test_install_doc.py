"""The CPU-only install of INSTALL.md (and README's one line): its torch / torchvision pins are
those of constraints.txt and inside pyproject's ranges, and its second command is the ordinary
install. PyTorch's CPU index itself cannot be reached from the test machines, so the download is
not tested."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
CPU_INDEX = "--index-url https://download.pytorch.org/whl/cpu"
INSTALL_COMMAND = 'python3 -m pip install -c constraints.txt -e ".[dev]"'


def _cpu_commands(text: str) -> list[str]:
    return [line.strip(" `") for line in text.splitlines() if CPU_INDEX in line]


def _pins(command: str) -> dict[str, str]:
    return dict(re.findall(r"\b(torch|torchvision)==([0-9][^\s`]*)", command))


def _constraints() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    return dict(line.split("==", 1) for line in lines if re.match(r"^torch(vision)?==", line))


def test_cpu_commands_pin_the_constrained_versions() -> None:
    install = (ROOT / "INSTALL.md").read_text()
    readme = (ROOT / "README.md").read_text()
    commands = _cpu_commands(install) + _cpu_commands(readme)
    assert len(commands) >= 2, "INSTALL.md and README.md each show the CPU-only command"
    pinned = _constraints()
    assert set(pinned) == {"torch", "torchvision"}
    for command in commands:
        assert _pins(command) == pinned, command


def test_cpu_pins_satisfy_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    ranges = {req.name: req.specifier for req in map(Requirement, project["dependencies"])}
    for name, version in _constraints().items():
        # the CPU index serves "<version>+cpu", which a pin without a local label accepts
        assert Version(f"{version}+cpu") in ranges[name], (name, version)
        assert Requirement(f"{name}=={version}").specifier.contains(f"{version}+cpu")


def test_cpu_section_installs_the_project_the_usual_way() -> None:
    install = (ROOT / "INSTALL.md").read_text()
    section = install[install.index("### CPU only") :]
    section = section[: section.index("\n## ")]
    code = section[section.index("```bash") : section.index("```\n", section.index("```bash") + 7)]
    assert CPU_INDEX in code and INSTALL_COMMAND in code
    assert INSTALL_COMMAND in install[: install.index("### CPU only")]
    readme = (ROOT / "README.md").read_text()
    assert "INSTALL.md#cpu-only" in readme
