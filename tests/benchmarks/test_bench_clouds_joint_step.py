"""The side-by-side joint-step benchmark says what to provide when the original CLOUDS code is
missing, and its step of ours (teacher update, SAM-refined pseudo-labels, loss, optimizer step)
runs on the tiny model (the original's timing itself runs outside the test suite)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmarks import bench_clouds_joint_step
from benchmarks.bench_clouds_joint_step import OurJointStep, generated_images, prompted_regions
from benchmarks.bench_clouds_train_step import OriginalNotFoundError
from benchmarks.models import build_ours, random_images, random_labels
from clouds.config import load_config


@pytest.fixture(autouse=True)
def _no_original_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLOUDS_ORIGINAL_ROOT", raising=False)
    monkeypatch.delenv("CLOUDS_ORIGINAL_SHIMS", raising=False)


def test_without_the_original_it_names_what_to_provide() -> None:
    with pytest.raises(OriginalNotFoundError, match="CLOUDS_ORIGINAL_ROOT.*bac4305"):
        bench_clouds_joint_step.main(["--json", "unused.json"])


def test_without_shims_it_names_the_folder_to_provide(tmp_path: Path) -> None:
    root = tmp_path / "CLOUDS"
    (root / "clouds").mkdir(parents=True)
    (root / "clouds" / "clouds.py").write_text("")
    (root / "my_utils").mkdir()
    with pytest.raises(OriginalNotFoundError, match="CLOUDS_ORIGINAL_SHIMS"):
        bench_clouds_joint_step.main(["--original-root", str(root)])


def test_our_joint_step_updates_the_teacher_refines_with_sam_and_trains() -> None:
    cfg = load_config("configs/toy/joint_gta.yaml", ["MODEL.CLOUDS.ITERATION_UPDATE", "1"])
    device = torch.device("cpu")
    torch.manual_seed(0)
    model = build_ours(cfg, device).train()
    clean, jittered = generated_images(1, 64, 64, device)
    labelled = zip(random_images(1, 64, 64, device), random_labels(1, 64, 64, device))
    batch = [{"image": i, "sem_seg": s} for i, s in labelled]
    batch += [{"image": jittered[0], "image_clean": clean[0]}]
    step = OurJointStep(cfg, model, batch, device)
    refiner = step.joint.labeler.refiner
    assert refiner is not None
    decoded: list[int] = []
    predict = refiner.predictor.predict
    refiner.predictor.predict = lambda index, points, *rest: (
        decoded.append(len(points)) or predict(index, points, *rest)
    )
    head = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    step()
    step()

    teacher = step.joint.teacher
    assert teacher.num_updates == 2 and step.loop.global_step == 2
    assert sum(decoded) > 0 and prompted_regions(step) > 0
    changed = [n for n, v in head.items() if not torch.equal(v, model.get_parameter(n))]
    assert changed
    # the second update averaged the first student into the teacher: not a copy of either
    name = next(n for n in changed if n in teacher.teacher)
    assert not torch.equal(teacher.teacher[name], model.get_parameter(name))
    assert not torch.equal(teacher.teacher[name], head[name])
