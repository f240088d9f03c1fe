"""The quickstart's claim, reduced: joint training with SAM-refined pseudo-labels beats the
warm-up, SAM's merge keeps the pseudo-labels' accuracy, and the EMA teacher and the unlabelled
items do their part.

One reduced quickstart (seed 0, 8 toy images per split, 48 generated images, a 300-iteration
warm-up, 100 joint iterations) runs once for the module. Its measured values (MEASURED below)
and the deliberate breakages each assertion caught (monkeypatched, one at a time):

- teacher labels from a random head: joint + SAM 0.90 (gain, EMA assertions fail);
- EMA teacher never updated: joint + SAM 18.17 (EMA assertion: teacher moved 0.0);
- EMA teacher a copy of the student (ALPHA_EMA 0): 15.85 (gain and EMA assertions);
- SAM masks painted with the next class id: joint + SAM 8.30, SAM pseudo-labels 33.1 %
  (gain and pseudo-label assertions);
- generated items given all-ignore labels: joint + SAM 1.54 (gain assertion);
- generated datasets dropped from the training loader: no pseudo-label dumps (dump assertion).

That SAM *raises* pseudo-label accuracy is tested on a controlled teacher in
tests/sam/test_toy_sam.py: on this reduced run's weak teacher (8 images per target) the toy
SAM's gains in daylight, rain and snow and its losses in fog, at night and on BDD cancel out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clouds.engine.quickstart import (
    TARGETS,
    QuickstartContext,
    Stage,
    run_quickstart,
    stage_datasets,
    stage_evaluate,
    stage_generate,
    stage_joint_sam,
    stage_pseudo_labels,
    stage_source_only,
    stage_warmup,
)
from clouds.engine.quickstart_report import target_average

REPO = Path(__file__).resolve().parents[2]
WARMUP_ITERS = 300
JOINT_ITERS = 100

# MEASURED on this reduced run (seed 0): target-average mIoU warm-up 17.71, source only 19.24,
# joint + SAM 18.75 (+1.04 over the warm-up; below the source-only control at this size);
# pseudo-label pixel accuracy teacher 65.3 %, SAM-refined 65.3 %.
MIN_JOINT_GAIN = 0.5  # points of target-average mIoU, joint + SAM over the warm-up
MAX_SAM_LOSS = 1.0  # points of pixel accuracy SAM-refined labels may lose to the teacher's


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> QuickstartContext:
    out = tmp_path_factory.mktemp("quickstart_gain")
    warmup = out / "warmup.yaml"
    warmup.write_text(
        f"_BASE_: {REPO / 'configs/toy/warmup_gta.yaml'}\n"
        f"SOLVER:\n  MAX_ITER: {WARMUP_ITERS}\n  CHECKPOINT_PERIOD: {WARMUP_ITERS}\n"
    )
    joint = out / "joint.yaml"
    joint.write_text(
        f"_BASE_: {REPO / 'configs/toy/quickstart_joint.yaml'}\n"
        f"SOLVER:\n  MAX_ITER: {JOINT_ITERS}\n  CHECKPOINT_PERIOD: {JOINT_ITERS}\n"
    )
    ctx = QuickstartContext(
        output_dir=out,
        warmup_config=str(warmup),
        joint_config=str(joint),
        num_images=8,
        num_generated=48,
        seed=0,
    )
    stages = (
        Stage("datasets", stage_datasets),
        Stage("warmup", stage_warmup),
        Stage("source_only", stage_source_only),
        Stage("generate", stage_generate),
        stage_joint_sam,
        Stage("evaluate", stage_evaluate),
        Stage("pseudo_labels", stage_pseudo_labels),
    )
    run_quickstart(ctx, stages)
    return ctx


def _average(ctx: QuickstartContext, stage: str) -> float:
    return target_average(ctx.results[stage], TARGETS)


def test_joint_training_with_sam_beats_the_warmup(run: QuickstartContext) -> None:
    gain = _average(run, "joint_sam") - _average(run, "warmup")
    assert gain > MIN_JOINT_GAIN, {s: _average(run, s) for s in run.results}


def test_sam_refinement_keeps_pseudo_label_accuracy(run: QuickstartContext) -> None:
    accuracy = run.pseudo_labels["all"]
    assert accuracy["sam"] - accuracy["teacher"] > -MAX_SAM_LOSS, accuracy


def test_the_ema_teacher_follows_the_student_slowly(run: QuickstartContext) -> None:
    """After joint training the teacher has left the warm-up weights, but by less than the
    student (EMA decay 0.999): neither frozen nor a copy of the student."""
    joint = torch.load(run.stage_weights("joint_sam"), map_location="cpu", weights_only=False)
    warmup = torch.load(run.stage_weights("warmup"), map_location="cpu", weights_only=False)
    teacher = joint["callbacks"]["JointTraining"]["teacher"]
    student, start = joint["state_dict"], warmup["state_dict"]
    floats = [n for n, t in teacher.items() if t.is_floating_point()]
    teacher_moved = sum(float((teacher[n] - start[n]).norm() ** 2) for n in floats) ** 0.5
    student_moved = sum(float((student[n] - start[n]).norm() ** 2) for n in floats) ** 0.5
    assert 0 < teacher_moved < 0.5 * student_moved, (teacher_moved, student_moved)


def test_generated_images_get_pseudo_labels(run: QuickstartContext) -> None:
    """Joint training dumped the generated images with their pseudo-labels, most pixels
    labelled (ignored pixels are black in the dumps)."""
    dumps = sorted((run.output_dir / "joint_sam" / "pseudo_labels").glob("*_after.png"))
    assert dumps, "joint training labelled no generated image"
    labelled = [np.asarray(Image.open(p).convert("RGB")).any(axis=2).mean() for p in dumps]
    assert min(labelled) > 0.5, labelled
