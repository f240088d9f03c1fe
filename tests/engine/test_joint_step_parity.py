"""One joint-training step equals the original CLOUDS' (yasserben/CLOUDS at bac4305).

Fixture ``tests/fixtures/clouds_joint/joint_step.pt``, written by running the ORIGINAL code outside
this project (``clouds/clouds.py``, ``clouds/sam.py``, ``my_utils/mask_utils.py``, its head,
criterion and matcher, with small detectron2 stand-ins; harness changes: the compiled
deformable-attention op absent (its own PyTorch fallback), deformable FFN 64 wide, no per-step
visualisation, ``transform_masks`` on the CPU, SAM told the generated images' true size 64x64
instead of the literal 768x768, MobileSAM's registry answering with ``_bn_sam``'s stand-in). The
model is the tiny original of ``tests/fixtures/clouds_model/convnext_linear.pt``, its EMA teacher
starts from :func:`teacher_start`; the batch: two labelled 64x64 GTA-like items and two generated
ones (the student sees a colour-shifted copy, the teacher the clean image); the original's
``local_iter`` 2 with ITERATION_UPDATE 2 and ALPHA_EMA 0.9 (an EMA update before labelling),
``torch.manual_seed(11)`` and ``np.random.seed(0)`` before the forward. The fixture holds the
inputs, the stand-in SAM's weights, the original's teacher argmax maps, point prompts, targets of
the generated items (on the first, SAM's masks of two prompted classes are all removed as
overlaps: all-zero target masks), every weighted loss term, every gradient, fingerprints of the
EMA teacher after its update and SAM's BatchNorm running statistics after the step (SAM in
training mode, as inside the original model).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from clouds.engine.ema_teacher import EMATeacher
from clouds.engine.pseudo_labeler import PseudoLabeler
from clouds.modeling.build import build_model
from clouds.sam import SamBatchPredictor, SamRefiner
from clouds.sam.points import PointSource
from tests.engine._bn_sam import build_bn_sam
from tests.engine._joint_parity import (
    FIXTURE,
    NUMPY_SEED,
    STEP,
    TORCH_SEED,
    VARIANT,
    fingerprint,
    joint_config,
    teacher_start,
)
from tests.modeling.original_parity import original_state_dict

TOLERANCE = 1e-4  # relative, per tensor: max |ours - theirs| / max |theirs|


def _relative(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    scale = theirs.abs().max().clamp_min(1e-12)
    return float((ours.double() - theirs.double()).abs().max() / scale)


class _RecordingPredictor(SamBatchPredictor):
    """The SAM predictor, recording the point prompts of every decoder call."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.points: list[torch.Tensor] = []

    def predict(self, image_index, point_coords, point_labels, mask_input=None):  # noqa: ANN001
        self.points.append(point_coords.clone())
        return super().predict(image_index, point_coords, point_labels, mask_input)


class _SeededLabeler(PseudoLabeler):
    """Draws the points from ``np.random.RandomState(NUMPY_SEED)``, the original's global
    numpy generator after ``np.random.seed(NUMPY_SEED)``."""

    def point_source(self, step: int, rank: int) -> PointSource:
        return np.random.RandomState(NUMPY_SEED)


@pytest.fixture(scope="module")
def fixture() -> dict[str, Any]:
    return torch.load(FIXTURE, map_location="cpu", weights_only=True)


def _batch(fixture: dict[str, Any]) -> list[dict[str, Any]]:
    labelled = [
        {"image": image, "sem_seg": label.long(), "file_name": f"gta_{i}"}
        for i, (image, label) in enumerate(zip(fixture["gta_images"], fixture["gta_labels"]))
    ]
    generated = [
        {"image": jittered, "image_clean": clean, "file_name": f"sd_{i}"}
        for i, (clean, jittered) in enumerate(zip(fixture["gen_images"], fixture["gen_jittered"]))
    ]
    return labelled + generated


def _run_step(fixture: dict[str, Any], overrides: list[str] | None = None) -> dict[str, Any]:
    """Our joint step from the fixture's state: EMA update, pseudo-labels, losses, gradients."""
    cfg = joint_config(overrides)
    model = build_model(cfg)
    state = original_state_dict(VARIANT)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and not [k for k in missing if k.startswith("sem_seg_head.")]
    teacher = EMATeacher.from_config(cfg)
    teacher.initialize(model)
    start = teacher_start({k: v for k, v in state.items() if k.startswith("sem_seg_head.")})
    assert teacher.teacher is not None and set(start) <= set(teacher.teacher)
    teacher.teacher.update(start)
    sam = build_bn_sam()
    sam.load_state_dict(
        {k: v.float() if v.is_floating_point() else v for k, v in fixture["sam_state"].items()}
    )
    sam.requires_grad_(False)
    predictor = _RecordingPredictor(model=sam)
    refiner = SamRefiner.from_config(cfg, predictor=predictor)
    sam.train(not cfg.MODEL.CLOUDS.SAM.EVAL_MODE)  # what SamRefiner.from_config does to its SAM
    labeler = _SeededLabeler.from_config(cfg, teacher=teacher, refiner=refiner)

    model.train()
    teacher.on_train_batch_start(
        SimpleNamespace(global_step=STEP), SimpleNamespace(model=model), None, 0
    )
    batch = _batch(fixture)
    clean = [x["image_clean"] for x in batch if "image_clean" in x]
    inputs = [
        {"image": c, "height": 64, "width": 64, "dataset_name": cfg.DATASETS.TRAIN[0]}
        for c in clean
    ]
    teacher_maps = [o["sem_seg"].argmax(0) for o in teacher.predict(model, inputs)]
    labelled = labeler.label(model, batch, step=STEP)
    padded = labelled[0]["image"].shape[-2:]
    targets = model.prepare_targets(labelled, padded, num_classes=19)
    torch.manual_seed(TORCH_SEED)
    losses = model(labelled)
    sum(losses.values()).backward()
    return {
        "teacher_maps": teacher_maps,
        "points": predictor.points,
        "targets": targets,
        "losses": losses,
        "grads": {n: p.grad for n, p in model.named_parameters() if p.grad is not None},
        "ema": teacher.teacher,
        "sam_bn": {k: v for k, v in sam.state_dict().items() if k in fixture["sam_bn"]},
    }


@pytest.fixture(scope="module")
def ours(fixture: dict[str, Any]) -> dict[str, Any]:
    return _run_step(fixture)


def test_fixture_has_a_class_whose_sam_masks_were_all_removed(fixture: dict[str, Any]) -> None:
    sums = torch.cat([t["masks"].flatten(1).sum(1) for t in fixture["targets"]])
    assert (sums == 0).any() and (sums > 0).any()


def test_pseudo_labels_and_targets_equal_the_originals(
    fixture: dict[str, Any], ours: dict[str, Any]
) -> None:
    for mine, theirs in zip(ours["teacher_maps"], fixture["teacher_maps"], strict=True):
        torch.testing.assert_close(mine, theirs.long(), rtol=0, atol=0)
    prompted = [p for points in fixture["points"] for p in points]
    mine = [p for call in ours["points"] for p in call]
    assert len(mine) == len(prompted)
    for a, b in zip(mine, prompted):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for mine, theirs in zip(ours["targets"][2:], fixture["targets"], strict=True):
        torch.testing.assert_close(mine["labels"], theirs["labels"], rtol=0, atol=0)
        torch.testing.assert_close(mine["masks"], theirs["masks"], rtol=0, atol=0)


def test_losses_and_gradients_equal_the_originals(
    fixture: dict[str, Any], ours: dict[str, Any]
) -> None:
    assert set(ours["losses"]) == set(fixture["losses"])
    for name, theirs in fixture["losses"].items():
        assert _relative(ours["losses"][name].detach(), theirs) < TOLERANCE, name
    assert set(ours["grads"]) == set(fixture["grads"])
    # biases of the convolutions before GroupNorm have zero gradient, up to rounding noise
    largest = max(float(g.abs().max()) for g in fixture["grads"].values())
    for name, theirs in fixture["grads"].items():
        if float(theirs.abs().max()) < 1e-6 * largest:
            assert float(ours["grads"][name].abs().max()) < 1e-6 * largest, name
        else:
            assert _relative(ours["grads"][name], theirs) < TOLERANCE, name


def test_ema_update_and_sam_statistics_equal_the_originals(
    fixture: dict[str, Any], ours: dict[str, Any]
) -> None:
    for name, theirs in fixture["ema_fingerprints"].items():
        assert _relative(fingerprint(ours["ema"][name]), theirs) < TOLERANCE, name
    for name, theirs in fixture["sam_bn"].items():
        torch.testing.assert_close(ours["sam_bn"][name], theirs, rtol=1e-5, atol=1e-6)
