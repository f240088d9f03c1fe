"""The quickstart's VFM experiment end to end, shortened (2 toy images per split, 4 generated,
2 iterations per stage): every stage runs, a seed gives the same numbers, the report is written
and a rerun resumes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from clouds.config import load_config
from clouds.engine.quickstart import TARGETS, TRAINED_STAGES
from clouds.engine.vfm_quickstart import (
    VfmQuickstartContext,
    run_vfm_quickstart,
    vfm_results_table,
)

REPO = Path(__file__).resolve().parents[2]


def _run(quickstart_dir: Path) -> VfmQuickstartContext:
    ctx = VfmQuickstartContext.under(
        quickstart_dir,
        warmup_config=str(REPO / "configs" / "toy" / "quickstart_vfm_warmup.yaml"),
        joint_config=str(REPO / "configs" / "toy" / "quickstart_vfm_joint.yaml"),
        num_images=2,
        num_generated=4,
        seed=1,
        overrides=["SOLVER.MAX_ITER", "2", "SOLVER.LOG_PERIOD", "1"],
    )
    run_vfm_quickstart(ctx)
    return ctx


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The shortened experiment run twice with the same seed, in two quickstart folders."""
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.delenv("DETECTRON2_DATASETS", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        dirs = (tmp_path_factory.mktemp("qs_a"), tmp_path_factory.mktemp("qs_b"))
        for quickstart_dir in dirs:
            _run(quickstart_dir)
    finally:
        torch.set_num_threads(threads)
        monkeypatch.undo()
    return dirs


def _summary(quickstart_dir: Path) -> dict:
    return json.loads((quickstart_dir / "vfm" / "quickstart_summary.json").read_text())


def test_every_stage_trains_the_vfm_on_the_clouds_quickstarts_data(two_runs) -> None:
    out, _ = two_runs
    vfm = out / "vfm"
    # the data of the CLOUDS quickstart's folder, made by its own stages, not copied under vfm/
    assert len(list((out / "datasets" / "stable_diffusion" / "quickstart" / "images").iterdir()))
    assert not (vfm / "datasets").exists()
    for stage in TRAINED_STAGES:
        config = load_config(str(vfm / stage / "config.yaml"))
        assert config.MODEL.META_ARCHITECTURE == "VFMSegmentor", stage
        assert (vfm / stage / "model_final.ckpt").is_file(), stage
    control = load_config(str(vfm / "source_only" / "config.yaml"))
    assert tuple(control.DATASETS.TRAIN) == ("gta5",) and not control.MODEL.CLOUDS.SAM.MINIBATCH
    joint = load_config(str(vfm / "joint_sam" / "config.yaml"))
    assert tuple(joint.DATASETS.TRAIN) == ("gta5", "sd_quickstart") and joint.MODEL.CLOUDS.SAM.ENABLED
    # the EMA teacher averaged the VFM's trainable tensors (LoRA and both heads)
    saved = torch.load(vfm / "joint_teacher" / "last.ckpt", map_location="cpu", weights_only=False)
    teacher = saved["callbacks"]["JointTraining"]["teacher"]
    assert any(".lora_" in n for n in teacher) and any(n.startswith("aux_decoder.") for n in teacher)
    # the toy SAM refined the generated images' pseudo-labels; teacher only did not prompt SAM
    assert list((vfm / "joint_sam" / "pseudo_labels").glob("*_after.png"))
    summary = _summary(out)
    assert list(summary["target_average"]) == list(TRAINED_STAGES)
    for stage in TRAINED_STAGES:
        assert set(summary["miou"][stage]) == {"gta5", *TARGETS}, stage
    assert set(summary["pseudo_labels"]["datasets"]) == set(TARGETS)


def test_the_same_seed_gives_the_same_numbers(two_runs) -> None:
    first, second = (_summary(d) for d in two_runs)
    first["pseudo_labels"].pop("pictures")
    second["pseudo_labels"].pop("pictures")
    assert first == second


def test_report_and_table(two_runs) -> None:
    out, _ = two_runs
    report = (out / "vfm" / "report.md").read_text()
    assert report.startswith("# Quickstart report: a VFM segmentor in the toy world\n")
    row = rf"(?: [\d.]+ \|){{{len(TRAINED_STAGES)}}}"
    assert "| dataset | warmup | source_only | joint_teacher | joint_sam |" in report
    assert re.search(r"\| \*\*target average\*\* \|" + row, report)
    for name in TARGETS:
        assert re.search(rf"\| {name} \|" + row, report), name
    summary = _summary(out)
    table = vfm_results_table([summary]).splitlines()
    assert table[0].startswith("| seed | warm-up | source only | joint (teacher only) | joint + SAM")
    expected = [f"{summary['target_average'][s]:.2f}" for s in TRAINED_STAGES]
    assert table[2].split(" | ")[1:5] == expected


def test_a_rerun_resumes(two_runs) -> None:
    out, _ = two_runs
    warmup = out / "vfm" / "warmup" / "model_final.ckpt"
    stamp = warmup.stat().st_mtime_ns
    metrics = (out / "vfm" / "warmup" / "metrics.json").read_text()
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.delenv("DETECTRON2_DATASETS", raising=False)
    try:
        _run(out)
    finally:
        monkeypatch.undo()
    assert (out / "vfm" / "warmup" / "metrics.json").read_text() == metrics
    assert warmup.stat().st_mtime_ns >= stamp
