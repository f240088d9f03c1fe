"""The README's quickstart numbers and pictures are as new as the code that makes them."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _tool():
    path = REPO / "tools" / "update_readme_quickstart.py"
    spec = importlib.util.spec_from_file_location("update_readme_quickstart", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_pictures_and_numbers_match_the_code_that_makes_them() -> None:
    tool = _tool()
    recorded = json.loads(tool.INPUTS_FILE.read_text())["sha256"]
    assert recorded == tool.inputs_hash(), (
        "The quickstart's code or configs changed since the README's quickstart numbers and "
        "pictures were made: run `python tools/update_readme_quickstart.py --rerun DIR`"
    )
    block = (REPO / "README.md").read_text().split(tool.START, 1)[1].split(tool.END, 1)[0]
    assert "| seed | warm-up | source only | joint (teacher only) | joint + SAM |" in block
    for picture in ("generated.png", "pseudo_labels.png", "curves.png"):
        assert f"demo/assets/quickstart/{picture}" in block
        assert (tool.ASSETS / picture).is_file()


def test_the_hash_changes_with_any_input(tmp_path) -> None:
    tool = _tool()
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "quickstart.py").write_text("a")
    before = tool.inputs_hash(tmp_path)
    (tmp_path / "tools" / "quickstart.py").write_text("b")
    assert tool.inputs_hash(tmp_path) != before
