"""The quickstart's VFM experiment end to end, shortened (2 toy images per split, 4 generated,
2 iterations per stage): every stage runs, a seed gives the same weights, the report is written
and a rerun resumes."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path
from types import ModuleType

import pytest
import torch

from clouds.config import load_config
from clouds.engine.quickstart import TARGETS, TRAINED_STAGES
from clouds.engine.vfm_quickstart import (
    VFM_STAGES,
    VfmQuickstartContext,
    run_vfm_quickstart,
    vfm_results_table,
)

REPO = Path(__file__).resolve().parents[2]


def _tool() -> ModuleType:
    """tools/quickstart_vfm.py as a module."""
    spec = importlib.util.spec_from_file_location(
        "quickstart_vfm", REPO / "tools/quickstart_vfm.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(quickstart_dir: Path, stages: tuple[str, ...] | None = None) -> None:
    """The shortened experiment in ``quickstart_dir`` (only the named ``stages`` if given)."""
    ctx = VfmQuickstartContext.under(
        quickstart_dir,
        warmup_config=str(REPO / "configs" / "toy" / "quickstart_vfm_warmup.yaml"),
        joint_config=str(REPO / "configs" / "toy" / "quickstart_vfm_joint.yaml"),
        num_images=2,
        num_generated=4,
        seed=1,
        overrides=["SOLVER.MAX_ITER", "2", "SOLVER.LOG_PERIOD", "1"],
    )
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.delenv("DETECTRON2_DATASETS", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if stages is None:  # the whole experiment through its command line
            argv = ["--output-dir", str(quickstart_dir), "--num-images", "2"]
            argv += ["--num-generated", "4", "--seed", "1", *ctx.overrides]
            assert _tool().main(argv) == 0
        else:
            run_vfm_quickstart(ctx, [s for s in VFM_STAGES if s.name in stages])
    finally:
        torch.set_num_threads(threads)
        monkeypatch.undo()


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The whole shortened experiment, then its warm-up and joint + SAM stages again with the
    same seed in a second quickstart folder (on a copy of the first one's data)."""
    first, second = tmp_path_factory.mktemp("qs_a"), tmp_path_factory.mktemp("qs_b")
    _run(first)
    shutil.copytree(first / "datasets", second / "datasets")
    _run(second, ("warmup", "joint_sam"))
    return first, second


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
    teacher_only = load_config(str(vfm / "joint_teacher" / "config.yaml")).MODEL.CLOUDS.SAM
    assert teacher_only.MINIBATCH and not teacher_only.ENABLED
    joint = load_config(str(vfm / "joint_sam" / "config.yaml"))
    assert (
        tuple(joint.DATASETS.TRAIN) == ("gta5", "sd_quickstart") and joint.MODEL.CLOUDS.SAM.ENABLED
    )
    # the EMA teacher averaged the VFM's trainable tensors (LoRA and both heads)
    saved = torch.load(vfm / "joint_teacher" / "last.ckpt", map_location="cpu", weights_only=False)
    teacher = saved["callbacks"]["JointTraining"]["teacher"]
    assert any(".lora_" in n for n in teacher) and any(
        n.startswith("aux_decoder.") for n in teacher
    )
    # the toy SAM refined the generated images' pseudo-labels (dumped from iteration 0)
    assert list((vfm / "joint_sam" / "pseudo_labels").glob("*_after.png"))
    summary = _summary(out)
    assert list(summary["target_average"]) == list(TRAINED_STAGES)
    for stage in TRAINED_STAGES:
        assert set(summary["miou"][stage]) == {"gta5", *TARGETS}, stage
    assert set(summary["pseudo_labels"]["datasets"]) == set(TARGETS)


def test_the_same_seed_gives_the_same_weights(two_runs) -> None:
    for stage in ("warmup", "joint_sam"):
        first, second = (
            torch.load(d / "vfm" / stage / "last.ckpt", map_location="cpu", weights_only=False)
            for d in two_runs
        )
        assert first["state_dict"].keys() == second["state_dict"].keys()
        for name, tensor in first["state_dict"].items():
            assert torch.equal(tensor, second["state_dict"][name]), (stage, name)
    teachers = [
        torch.load(d / "vfm" / "joint_sam" / "last.ckpt", map_location="cpu", weights_only=False)[
            "callbacks"
        ]["JointTraining"]["teacher"]
        for d in two_runs
    ]
    assert all(torch.equal(t, teachers[1][n]) for n, t in teachers[0].items())


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
    assert table[0].startswith(
        "| seed | warm-up | source only | joint (teacher only) | joint + SAM"
    )
    expected = [f"{summary['target_average'][s]:.2f}" for s in TRAINED_STAGES]
    assert table[2].split(" | ")[1:5] == expected


def test_a_rerun_resumes(two_runs) -> None:
    out, _ = two_runs
    warmup = out / "vfm" / "warmup"
    metrics = (warmup / "metrics.json").read_text()
    _run(out, ("warmup", "evaluate"))
    assert (warmup / "metrics.json").read_text() == metrics  # no iteration trained again
