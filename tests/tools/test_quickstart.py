"""tools/quickstart.py end to end, shortened (2 toy images per split, 2 iterations)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TARGETS = ["cityscapes_val", "bdd_val", "mapillary_val", "acdc_fog_val", "acdc_night_val"]


def _quickstart_main():
    spec = importlib.util.spec_from_file_location("quickstart", REPO / "tools" / "quickstart.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_quickstart_runs_every_stage_and_writes_the_report(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("DETECTRON2_DATASETS", raising=False)
    out = tmp_path / "qs"
    argv = ["--output-dir", str(out), "--num-images", "2"]
    argv += ["SOLVER.MAX_ITER", "2", "SOLVER.LOG_PERIOD", "1"]
    assert _quickstart_main()(argv) == 0

    # toy data written and converted by the real tools
    assert list((out / "datasets" / "gta" / "labels").glob("*_labelTrainIds.png"))
    # warm-up trained through train_net's code: checkpoints, config, metrics
    warmup = out / "warmup"
    assert (warmup / "model_final.ckpt").is_file() and (warmup / "config.yaml").is_file()
    with open(warmup / "metrics.json") as f:
        iterations = [json.loads(line)["iteration"] for line in f if "total_loss" in line]
    assert iterations  # training metrics were logged
    # tiny-SD generation through generate_txt_im's code, then joint training on top of the warm-up
    generated = out / "datasets" / "stable_diffusion" / "quickstart" / "images"
    assert len(list(generated.glob("*.png"))) == 2
    assert (out / "joint" / "model_final.ckpt").is_file()
    # report with source and target rows and overlays
    report = (out / "report.md").read_text()
    for name in ["gta5", *TARGETS]:
        assert re.search(rf"\|\s*{name}\s*\|\s*[\d.]+", report), name
    assert list(out.rglob("*.png"))
    # the joint model's mIoU stands, named, beside the warm-up model's on every dataset
    # first lines: what ran, which table is the joint model's, why toy numbers show no gain
    head = report.split("\n## ")[0]
    assert head.startswith("# Quickstart report: toy data, tiny random-initialised models\n")
    assert "'mIoU per dataset' and 'Per-class IoU' are the joint-trained model" in head
    assert "joint_gta.yaml" in head and "warmup_gta.yaml" in head
    assert "cannot show the method's gain" in head
    assert "average is over the target domains, leaving out the source gta5" in report
    # generated images shown, every picture link an existing file
    assert "## Generated images (sd_quickstart" in report
    assert re.search(
        r"## Pseudo-labels at iteration \d+ \(image \| EMA teacher \| refined by SAM\)", report
    )
    for link in re.findall(r"\]\(([^)]+)\)", report):
        assert (out / link).is_file(), link
    baseline_table = report.split("## mIoU against other runs")[1].split("##")[0]
    assert "| dataset | warmup | joint |" in baseline_table
    for name in ["gta5", *TARGETS]:
        assert re.search(rf"\|\s*{name}\s*\|\s*[\d.]+\s*\|\s*[\d.]+", baseline_table), name

    # re-running continues: data is kept, training is already complete
    stamp = (warmup / "model_final.ckpt").stat().st_mtime_ns
    assert _quickstart_main()(argv) == 0
    with open(warmup / "metrics.json") as f:
        assert [json.loads(line)["iteration"] for line in f if "total_loss" in line] == iterations
    assert (warmup / "model_final.ckpt").stat().st_mtime_ns >= stamp
