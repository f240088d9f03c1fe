"""tools/quickstart.py end to end, shortened (2 toy images per split, 2 iterations per stage)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

from clouds.config import load_config
from clouds.engine.quickstart import TARGETS, TRAINED_STAGES

REPO = Path(__file__).resolve().parents[2]


def _quickstart_main():
    spec = importlib.util.spec_from_file_location("quickstart", REPO / "tools" / "quickstart.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _iterations(run: Path) -> list[int]:
    with open(run / "metrics.json") as f:
        return [json.loads(line)["iteration"] for line in f if "total_loss" in line]


def test_quickstart_runs_every_stage_and_writes_the_report(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("DETECTRON2_DATASETS", raising=False)
    out = tmp_path / "qs"
    argv = ["--output-dir", str(out), "--num-images", "2", "--num-generated", "4"]
    argv += ["SOLVER.MAX_ITER", "2", "SOLVER.LOG_PERIOD", "1"]
    assert _quickstart_main()(argv) == 0

    # toy data written and converted by the real tools
    assert list((out / "datasets" / "gta" / "labels").glob("*_labelTrainIds.png"))
    # the toy generator's images through generate_txt_im's code, and no labels beside them
    generated = out / "datasets" / "stable_diffusion" / "quickstart"
    assert len(list((generated / "images").glob("*.png"))) == 4
    assert not [p for p in generated.rglob("*") if "label" in p.name.lower()]
    # every trained stage through train_net's code, each scored on the source and every target
    for stage in TRAINED_STAGES:
        assert (out / stage / "model_final.ckpt").is_file() and _iterations(out / stage), stage
    summary = json.loads((out / "quickstart_summary.json").read_text())
    assert list(summary["target_average"]) == list(TRAINED_STAGES)
    for stage in TRAINED_STAGES:
        assert set(summary["miou"][stage]) == {"gta5", *TARGETS}
    # the source-only control trains on toy GTA5 alone, with no teacher and no pseudo-labels
    control = load_config(str(out / "source_only" / "config.yaml"))
    assert tuple(control.DATASETS.TRAIN) == ("gta5",)
    assert not control.MODEL.CLOUDS.SAM.MINIBATCH and not control.MODEL.CLOUDS.SAM.ENABLED
    assert not (out / "source_only" / "pseudo_labels").exists()
    # the joint + SAM stage refined pseudo-labels with the toy SAM (dumped at iteration 0)
    assert list((out / "joint_sam" / "pseudo_labels").glob("*_after.png"))
    # pseudo-label accuracy of teacher vs SAM on every target, in percent
    pseudo = summary["pseudo_labels"]
    assert set(pseudo["datasets"]) == set(TARGETS)
    for key in ("teacher", "sam", "sam_coverage", "teacher_on_sam_pixels"):
        assert 0.0 <= pseudo["all"][key] <= 100.0, key

    report = (out / "report.md").read_text()
    head = report.split("\n## What each stage is")[0]
    assert head.startswith("# Quickstart report: CLOUDS in a toy world\n")
    assert "| dataset | warmup | source_only | joint_teacher | joint_sam |" in head
    row = rf"(?: [\d.]+ \|){{{len(TRAINED_STAGES)}}}"
    assert re.search(r"\| \*\*target average\*\* \|" + row, head)
    for name in TARGETS:
        assert re.search(rf"\| {name} \|" + row, head), name
    assert "| gta5 (source) |" in head
    assert "## Pseudo-labels on the toy targets: teacher vs SAM" in report
    assert "## Generated images" in report and "## Training curves" in report
    links = re.findall(r"\]\(([^)]+)\)", report)
    assert links
    for link in links:
        assert (out / link).is_file(), link

    # re-running continues: data is kept, training and evaluation are complete
    stamp = (out / "warmup" / "model_final.ckpt").stat().st_mtime_ns
    iterations = _iterations(out / "warmup")
    assert _quickstart_main()(argv) == 0
    assert _iterations(out / "warmup") == iterations
    assert (out / "warmup" / "model_final.ckpt").stat().st_mtime_ns >= stamp
