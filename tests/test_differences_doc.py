"""GETTING_STARTED's "Differences from the original": every switch is a real key, and every
reproduction config leaves it at the original's value (a row whose first column starts with
"CLOUDS:" or "DGVFM:" is a difference of that system's configs only)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from clouds.config import get_cfg, load_config

ROOT = Path(__file__).resolve().parents[1]
SYSTEM_FOLDERS = {"CLOUDS": ("warmup", "joint_training"), "DGVFM": ("dg",)}
REPRODUCTION_CONFIGS = sorted(
    str(p.relative_to(ROOT))
    for folders in SYSTEM_FOLDERS.values()
    for folder in folders
    for p in (ROOT / "configs" / folder).rglob("*.yaml")
    if "datasets" not in p.parts and p.name != "Base-DG-VFM.yaml"
)
_SWITCH = re.compile(r"`([A-Z][A-Z0-9_.]*[A-Z0-9_])(?: ([^`]+))?`")


def _switches() -> list[tuple[str, str | None, str | None]]:
    """``(key, value that turns it on or None, system or None)`` of the table in section 9."""
    text = (ROOT / "GETTING_STARTED.md").read_text()
    section = text[text.index("## 9. Differences from the original") :]
    rows = [line for line in section.splitlines() if line.startswith("| ")][1:]
    switches = []
    for row in rows:
        ours, key_column = row.split("|")[1:3]
        system = next((s for s in SYSTEM_FOLDERS if ours.strip().startswith(f"{s}:")), None)
        for key, value in _SWITCH.findall(key_column):
            switches.append((key, value or None, system))
    return switches


def _is_value(text: str) -> bool:
    """Whether ``text`` is one YAML value (``True``, ``"all"``, ``1e-6``), not prose (``(H, W)``)."""
    return text[:1].isalnum() or text[:1] == '"'


def _lookup(cfg, key: str):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def test_the_table_names_switches() -> None:
    assert len(_switches()) >= 25


@pytest.mark.parametrize("key", sorted({k for k, _, _ in _switches()}))
def test_every_switch_is_a_config_key(key: str) -> None:
    cfg = get_cfg()
    full = key if key.split(".")[0] in cfg else f"DATALOADER.{key}"
    _lookup(cfg, full.removesuffix(".*"))


@pytest.mark.parametrize("config", REPRODUCTION_CONFIGS)
def test_reproduction_configs_leave_every_switch_off(config: str) -> None:
    cfg = load_config(config)
    system = next(s for s, folders in SYSTEM_FOLDERS.items() if config.split("/")[1] in folders)
    for key, value, only in _switches():
        if only not in (None, system) or value is None or not _is_value(value):
            continue
        on = yaml.safe_load(value)
        assert _lookup(cfg, key) != on, f"{config} turns on {key} {value}"
