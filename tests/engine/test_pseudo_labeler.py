"""Pseudo-labeller: teacher on the clean view, SAM refinement, labels on the student's copy."""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from clouds.engine.ema_teacher import EMATeacher
from clouds.engine.pseudo_labeler import PseudoLabeler, colorize_labels
from clouds.sam import SamRefiner
from tests.sam.oracle import OracleSam


class ColourSegmenter(nn.Module):
    """Class = brightest channel; records what it is asked to predict."""

    teacher_prefixes = ("sem_seg_head.",)

    def __init__(self) -> None:
        super().__init__()
        self.sem_seg_head = nn.Conv2d(3, 3, 1, bias=False)
        with torch.no_grad():
            self.sem_seg_head.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        self.seen: list[dict] = []

    def forward(self, batched_inputs: list[dict]) -> list[dict]:
        self.seen.extend(batched_inputs)
        outputs = []
        for x in batched_inputs:
            scores = self.sem_seg_head(x["image"].float()[None])
            outputs.append({"sem_seg": F.interpolate(scores, (x["height"], x["width"]))[0]})
        return outputs


def _batch() -> list[dict]:
    clean = torch.zeros(3, 16, 24, dtype=torch.uint8)
    clean[0, :, :12] = 200  # class 0 on the left
    clean[2, :, 12:] = 200  # class 2 on the right
    jittered = clean.flip(-1)  # anything different from the clean view
    labelled = {"image": clean.clone(), "sem_seg": torch.ones(16, 24, dtype=torch.long)}
    return [labelled, {"image": jittered, "image_clean": clean, "file_name": "gen.png"}]


def _labeler(**kwargs: object) -> tuple[PseudoLabeler, ColourSegmenter]:
    model = ColourSegmenter()
    teacher = EMATeacher()
    teacher.initialize(model)
    defaults = {"teacher": teacher, "refiner": None, "train_dataset": "src"}
    return PseudoLabeler(**{**defaults, **kwargs}), model


def test_unlabelled_items_get_teacher_labels_of_the_clean_view() -> None:
    labeler, model = _labeler()
    batch = _batch()
    out = labeler.label(model, batch, step=0)
    assert out[0] is batch[0]  # labelled items untouched
    expected = torch.zeros(16, 24, dtype=torch.long)
    expected[:, 12:] = 2
    torch.testing.assert_close(out[1]["sem_seg"], expected)
    assert "image_clean" not in out[1] and out[1]["file_name"] == "gen.png"
    assert torch.equal(out[1]["image"], batch[1]["image"])  # the student keeps its jittered copy
    assert len(model.seen) == 1 and torch.equal(model.seen[0]["image"], batch[1]["image_clean"])
    assert model.seen[0]["dataset_name"] == "src"


def test_batch_without_unlabelled_items_is_returned_as_is() -> None:
    labeler, model = _labeler()
    batch = _batch()[:1]
    assert labeler.label(model, batch, step=0) is batch and not model.seen


def test_refiner_output_becomes_the_label() -> None:
    truth = np.zeros((16, 24), dtype=np.int64)
    truth[:, 8:] = 2  # the truth boundary is at column 8, the teacher says 12
    refiner = SamRefiner(
        predictor=OracleSam([truth]), num_points=3, size_threshold=100, size_reference=(16, 24)
    )
    labeler, model = _labeler(refiner=refiner, seed=3)
    out = labeler.label(model, _batch(), step=5)
    torch.testing.assert_close(out[1]["sem_seg"], torch.from_numpy(truth))
    # both prompted classes stay targets (see tests/engine/test_joint_step_parity.py)
    torch.testing.assert_close(out[1]["prompted_classes"], torch.tensor([0, 2]))


def test_teacher_labels_carry_no_prompted_classes() -> None:
    labeler, model = _labeler()
    out = labeler.label(model, _batch(), step=0)
    assert "prompted_classes" not in out[1]


def test_dump_writes_colour_pngs_once_per_period(tmp_path: Path) -> None:
    """The first labelled batch of each window of 10 iterations is dumped, on the first process
    only (a window whose first iteration holds no generated image is still dumped)."""
    palette = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    labeler, model = _labeler(dump_period=10, dump_dir=str(tmp_path / "pl"), palette=palette)
    labeler.label(model, _batch(), step=10)
    labeler.label(model, _batch(), step=11)  # same window: not dumped again
    labeler.label(model, _batch(), step=23, rank=1)  # only the first process dumps
    labeler.label(model, _batch(), step=34)  # window 30-39, first labelled batch at 34
    files = sorted(p.name for p in (tmp_path / "pl").iterdir())
    assert files == [
        f"{step:07d}_0_{kind}.png" for step in (10, 34) for kind in ("after", "before", "image")
    ]
    from PIL import Image

    before = np.asarray(Image.open(tmp_path / "pl" / "0000010_0_before.png"))
    assert before.shape == (16, 24, 3)
    assert tuple(before[0, 0]) == (255, 0, 0) and tuple(before[0, -1]) == (0, 0, 255)


def test_colorize_labels_maps_ignore_to_black() -> None:
    colours = colorize_labels(np.array([[0, 1, 255]]), [(10, 20, 30), (40, 50, 60)])
    assert colours.tolist() == [[[10, 20, 30], [40, 50, 60], [0, 0, 0]]]


def test_negative_dump_period_is_named() -> None:
    with pytest.raises(ValueError, match="PSEUDO_LABEL_DUMP_PERIOD"):
        _labeler(dump_period=-1)


def test_sam_is_prompted_on_the_clean_view() -> None:
    seen: list[torch.Tensor] = []

    class RecordingOracle(OracleSam):
        def set_images(self, images: list[torch.Tensor]) -> None:
            seen.extend(images)
            super().set_images(images)

    truth = np.zeros((16, 24), dtype=np.int64)
    truth[:, 12:] = 2
    refiner = SamRefiner(predictor=RecordingOracle([truth]), num_points=3, size_threshold=100)
    labeler, model = _labeler(refiner=refiner)
    batch = _batch()
    labeler.label(model, batch, step=0)
    assert len(seen) == 1 and torch.equal(seen[0], batch[1]["image_clean"])
