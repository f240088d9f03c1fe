"""Joint training through the engine: tiny CLOUDS on toy GTA5 + sd_toy with the tiny SAM.

One run of 2 iterations, then a resume to 3 (teacher with the geometric ensemble): checks
pseudo-labels, checkpoints holding the EMA teacher (and no SAM, no CLIP), the teacher restored on
resume (not re-copied from the student) and the evaluation results.
"""

from pathlib import Path

import pytest
import torch

from clouds.config import load_config
from clouds.data.datasets import register_all_datasets
from clouds.data.toy import make_converted_toy_datasets
from clouds.engine.launch import run
from clouds.sam import build_tiny_sam

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "toy" / "joint_gta.yaml"


@pytest.fixture(scope="module")
def joint_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    tmp = tmp_path_factory.mktemp("joint")
    make_converted_toy_datasets(tmp / "data", seed=0, num_images=2, size=(64, 128))
    register_all_datasets(tmp / "data")
    torch.manual_seed(0)
    torch.save(build_tiny_sam().state_dict(), tmp / "sam.pth")
    overrides = [
        "MODEL.WEIGHTS", "",
        "DATASETS.TEST", "('cityscapes_val',)",
        "MODEL.CLOUDS.SAM.CHECKPOINT", str(tmp / "sam.pth"),
        "MODEL.CLOUDS.SAM.ALPHA_EMA", "0.5",
        "MODEL.CLOUDS.TEACHER_GEOMETRIC_ENSEMBLE", "True",
        "MODEL.CLOUDS.PSEUDO_LABEL_DUMP_PERIOD", "1",
        "SOLVER.CHECKPOINT_PERIOD", "2",
        "OUTPUT_DIR", str(tmp / "out"),
    ]  # fmt: skip
    first = load_config(str(CONFIG), [*overrides, "SOLVER.MAX_ITER", "2"])
    second = load_config(str(CONFIG), [*overrides, "SOLVER.MAX_ITER", "3"])
    first.freeze()
    second.freeze()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: intra-op threads only add synchronisation
    try:
        run(first)
        saved = torch.load(tmp / "out" / "last.ckpt", map_location="cpu", weights_only=False)
        results = run(second, resume=True)
    finally:
        torch.set_num_threads(threads)
    return tmp / "out", saved, results


def test_pseudo_labels_are_dumped_before_and_after_refinement(joint_run) -> None:
    out, _, _ = joint_run
    names = {p.name for p in (out / "pseudo_labels").iterdir()}
    assert {"0000000_0_before.png", "0000000_0_after.png", "0000000_0_image.png"} <= names
    assert not [n for n in names if n.endswith(".tmp.png")]


def test_checkpoint_holds_teacher_but_no_frozen_models(joint_run) -> None:
    _, saved, _ = joint_run
    state = saved["callbacks"]["EMATeacher"]
    assert (state["num_updates"], state["last_update_step"]) == (1, 0)  # ITERATION_UPDATE 2
    assert state["teacher"] and all(n.startswith("sem_seg_head.") for n in state["teacher"])
    for name in saved["state_dict"]:
        assert "backbone" not in name and "mask_decoder" not in name  # no CLIP, no SAM


def test_resume_continues_the_saved_teacher(joint_run) -> None:
    out, saved, _ = joint_run
    final = torch.load(out / "last.ckpt", map_location="cpu", weights_only=False)
    state = final["callbacks"]["EMATeacher"]
    assert (state["num_updates"], state["last_update_step"]) == (2, 2)
    # the update at step 2 mixed the SAVED teacher with the student of step 2 (alpha 0.5)
    teacher, student = saved["callbacks"]["EMATeacher"]["teacher"], saved["state_dict"]
    shared = set(teacher) & set(student)
    assert shared == set(teacher)
    for name in shared:
        expected = 0.5 * teacher[name] + 0.5 * student[name]
        torch.testing.assert_close(state["teacher"][name], expected, msg=name)


def test_joint_training_evaluates(joint_run) -> None:
    _, _, results = joint_run
    miou = results["cityscapes_val"]["sem_seg"]["mIoU"]
    assert 0.0 <= miou <= 100.0
