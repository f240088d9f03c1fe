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


def test_pictures_have_titled_panels_and_a_class_legend(tmp_path) -> None:
    import numpy as np
    from PIL import Image

    from clouds.data.datasets.cityscapes_meta import CITYSCAPES_COLORS

    tool = _tool()
    folder = tmp_path / "generated"
    (folder / "images").mkdir(parents=True)
    Image.new("RGB", (128, 64), (90, 120, 200)).save(folder / "images" / "im_0_p0.png")
    (folder / "manifest-part000.jsonl").write_text(
        json.dumps({"file": "im_0_p0.png", "prompt": "a foggy street"}) + "\n"
    )
    tool.generated_figure(folder, tmp_path / "generated.png")
    labels = np.zeros((64, 128, 3), np.uint8)
    labels[:32] = CITYSCAPES_COLORS[10]  # sky
    labels[32:] = CITYSCAPES_COLORS[0]  # road
    (tmp_path / "run" / "pseudo_labels").mkdir(parents=True)
    for suffix in ("image", "truth", "teacher", "sam"):
        Image.fromarray(labels).save(tmp_path / "run" / "pseudo_labels" / f"x_0_{suffix}.png")
    tool.pseudo_label_figure(tmp_path / "run", "x", "x_0", tmp_path / "pseudo.png")
    for name in ("generated.png", "pseudo.png"):
        width, height = Image.open(tmp_path / name).size
        assert width > 3 * 128 and height > 2 * 64  # panels with titles, not a bare strip
    # both classes' colours appear in the legend, outside the four panels
    picture = np.asarray(Image.open(tmp_path / "pseudo.png").convert("RGB"))
    legend = picture[int(picture.shape[0] * 0.9) :]
    for color in (CITYSCAPES_COLORS[10], CITYSCAPES_COLORS[0]):
        assert (np.abs(legend.astype(int) - color).sum(axis=2) < 10).any()
