"""write_report: markdown + HTML, bar chart and example panels of the expected size."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clouds.data.catalog import Metadata
from clouds.evaluation.report import example_panel, write_report
from clouds.visualization.visualizer import overlay

CLASSES = ["road", "sky", "car"]
COLORS = [[128, 64, 128], [70, 130, 180], [0, 0, 142]]


def _metrics(miou: float, ious: list[float]) -> dict:
    metrics = {"mIoU": miou, "fwIoU": miou + 1, "mACC": miou + 2, "pACC": miou + 3}
    for name, iou in zip(CLASSES, ious):
        metrics[f"IoU-{name}"] = iou
        metrics[f"ACC-{name}"] = iou
    return {"sem_seg": metrics}


RESULTS = {
    "cityscapes_val": _metrics(50.0, [90.0, 40.0, 20.0]),
    "bdd_val": _metrics(30.0, [80.0, 10.0, math.nan]),
}


def _example(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    gt = rng.integers(0, 3, (16, 24))
    gt[0, :] = 255
    pred = rng.integers(0, 2, (16, 24))
    return image, gt, pred


def test_report_files(tmp_path: Path) -> None:
    meta = Metadata(stuff_classes=CLASSES, stuff_colors=COLORS)
    examples = {"cityscapes_val": [_example(0), _example(1)]}
    md_path = write_report(tmp_path, RESULTS, examples, meta, chart_size=(640, 320))
    assert md_path == tmp_path / "report.md"
    md = md_path.read_text()
    assert "| cityscapes_val | 50.00 | 51.00 | 52.00 | 53.00 |" in md
    assert "| average | 40.00 |" in md
    assert "| car | 20.00 | – |" in md  # NaN IoU shown as a dash
    html = (tmp_path / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<td>bdd_val</td>" in html
    links = re.findall(r'src="([^"]+)"', html)
    assert links == re.findall(r"\]\(([^)]+)\)", md)
    for link in links:  # every picture is a relative link to a valid PNG
        assert not Path(link).is_absolute()
        with Image.open(tmp_path / link) as img:
            assert img.format == "PNG"
    with Image.open(tmp_path / "report_files/per_class_iou.png") as img:
        assert img.size == (640, 320)
    with Image.open(tmp_path / "report_files/examples/cityscapes_val_001.png") as img:
        assert img.size == (3 * 24 + 2 * 4, 16)
        panel = np.asarray(img.convert("RGB"))
    image, gt, pred = _example(1)
    colors = np.array(COLORS, dtype=np.uint8)
    assert np.array_equal(panel[:, :24], image)
    assert np.array_equal(panel[:, 28:52], overlay(image, gt, colors, 0.5))
    assert np.array_equal(panel[:, 56:], overlay(image, pred, colors, 0.5))


def test_report_without_metadata_uses_result_keys(tmp_path: Path) -> None:
    write_report(tmp_path, {"_unregistered_set": RESULTS["bdd_val"]})
    md = (tmp_path / "report.md").read_text()
    assert "| sky | 10.00 |" in md and "average" not in md


def test_report_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one dataset"):
        write_report(tmp_path, {})
    with pytest.raises(ValueError, match="'x' have no 'sem_seg'"):
        write_report(tmp_path, {"x": {"mIoU": 3.0}})
    image, gt, pred = _example(0)
    with pytest.raises(ValueError, match="same height and width"):
        example_panel(image, gt[:8], pred, np.array(COLORS, dtype=np.uint8))


def test_report_shows_baseline_runs_beside_this_run(tmp_path: Path) -> None:
    meta = Metadata(stuff_classes=CLASSES, stuff_colors=COLORS)
    baselines = {"warmup": {"cityscapes_val": _metrics(42.0, [1.0, 2.0, 3.0])}}
    md = write_report(tmp_path, RESULTS, None, meta, baselines=baselines).read_text()
    section = md.split("## mIoU against other runs (%)")[1].split("##")[0]
    assert "| dataset | warmup | this run |" in section
    assert "| cityscapes_val | 42.00 | 50.00 |" in section
    assert "| bdd_val | – | 30.00 |" in section  # the baseline was not evaluated there
    assert "against other runs" in (tmp_path / "report.html").read_text()


def test_saved_results_load_back_for_baselines(tmp_path: Path) -> None:
    from clouds.evaluation import load_saved_results

    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        load_saved_results(tmp_path)
    folder = tmp_path / "inference" / "bdd_val"
    folder.mkdir(parents=True)
    (folder / "sem_seg_results.json").write_text('{"sem_seg": {"mIoU": 12.5, "IoU-car": null}}')
    assert load_saved_results(tmp_path) == {"bdd_val": {"sem_seg": {"mIoU": 12.5, "IoU-car": None}}}


def test_report_average_leaves_the_source_out(tmp_path: Path) -> None:
    meta = Metadata(stuff_classes=CLASSES, stuff_colors=COLORS)
    results = {"gta5": _metrics(70.0, [1.0, 2.0, 3.0]), **RESULTS}
    md = write_report(tmp_path, results, None, meta, source_datasets=("gta5", "sd_x")).read_text()
    # targets only: (50 + 30) / 2 = 40; with the source it would be (70 + 50 + 30) / 3 = 50
    assert "| average (targets) | 40.00 |" in md
    assert "## mIoU per dataset (%); the average is over the target domains" in md
    assert "leaving out the source gta5 (as the papers report it)" in md
    assert "| gta5 | 70.00 |" in md  # the source is still shown, only not averaged


def test_report_title_intro_and_gallery(tmp_path: Path) -> None:
    pictures = tmp_path / "datasets" / "gen"
    pictures.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(pictures / name)
    gallery = {"Generated images": [("datasets/gen/a.png", "a"), ("datasets/gen/b.png", "b")]}
    intro = ["What ran: toy data.", "Which table is which: the joint model <b>."]
    write_report(tmp_path, RESULTS, title="Quickstart report", intro=intro, gallery=gallery)
    md = (tmp_path / "report.md").read_text()
    assert md.startswith("# Quickstart report\n\nWhat ran: toy data.\n\nWhich table is which")
    assert "## Generated images\n\n![a](datasets/gen/a.png) ![b](datasets/gen/b.png)" in md
    html = (tmp_path / "report.html").read_text()
    assert "<title>Quickstart report</title>" in html
    assert "<p>Which table is which: the joint model &lt;b&gt;.</p>" in html
    assert '<img src="datasets/gen/b.png" alt="b">' in html
    with pytest.raises(ValueError, match="'Generated images': 'datasets/gen/c.png' is not a file"):
        write_report(tmp_path, RESULTS, gallery={"Generated images": [("datasets/gen/c.png", "")]})
