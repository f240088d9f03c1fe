"""SAM refinement end to end: tiny real SAM, batching, second pass, uncovered rule, oracle."""

from pathlib import Path

import numpy as np
import pytest
import torch

from clouds.data.toy.scene import sample_scene
from clouds.sam import SamBatchPredictor, SamRefiner, build_sam
from tests.sam.oracle import OracleSam


@pytest.fixture
def tiny_predictor(tiny_sam_checkpoint: Path) -> SamBatchPredictor:
    return SamBatchPredictor(model=build_sam("tiny", str(tiny_sam_checkpoint)), prompt_batch_size=3)


def _images_and_labels(count: int = 2) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    rng = np.random.default_rng(1)
    labels = [
        torch.from_numpy(sample_scene(rng, 64, 96).label.astype(np.int64)) for _ in range(count)
    ]
    palette = torch.from_numpy(rng.integers(0, 256, (256, 3), dtype=np.uint8))
    images = [palette[label].permute(2, 0, 1).contiguous() for label in labels]
    return images, labels


def test_tiny_sam_refinement_runs_end_to_end(tiny_predictor: SamBatchPredictor) -> None:
    images, labels = _images_and_labels()
    refiner = SamRefiner(
        predictor=tiny_predictor,
        num_points=3,
        refinement=True,
        size_threshold=20000,
        size_reference=(768, 768),
    )
    out = refiner.refine(images, labels, generator=np.random.default_rng(0))
    again = refiner.refine(images, labels, generator=np.random.default_rng(0))
    assert len(out) == 2
    for (refined, prompted), label, repeat in zip(out, labels, again):
        assert refined.shape == label.shape and refined.dtype == torch.int64
        assert set(refined.unique().tolist()) <= set(prompted.tolist()) | {255}
        assert set(prompted.tolist()) <= set(label.unique().tolist())
        torch.testing.assert_close(refined, repeat.label)
        torch.testing.assert_close(prompted, repeat.prompted_classes)


def test_prompt_and_image_batching_do_not_change_predictions(
    tiny_predictor: SamBatchPredictor,
) -> None:
    images, _ = _images_and_labels()
    points = torch.rand(7, 5, 2) * torch.tensor([95.0, 63.0])
    labels = torch.ones(7, 5, dtype=torch.int)
    tiny_predictor.set_images(images)
    iou_batched, logits_batched = tiny_predictor.predict(1, points, labels)
    tiny_predictor.prompt_batch_size = 1
    tiny_predictor.set_images(images[1:])
    iou_single, logits_single = tiny_predictor.predict(0, points, labels)
    torch.testing.assert_close(iou_batched, iou_single, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(logits_batched, logits_single, atol=1e-4, rtol=1e-4)
    assert logits_batched.shape == (7, 3, 32, 32)  # tiny SAM: 128 px input, 8 x 8 grid, x4
    assert tiny_predictor.upscale(0, logits_batched[:, 0]).shape == (7, 64, 96)


class _Spy:
    """Wraps a predictor and records how it is called."""

    def __init__(self, inner: SamBatchPredictor) -> None:
        self.inner = inner
        self.encodes: list[int] = []
        self.mask_inputs: list[torch.Tensor | None] = []

    def set_images(self, images: list[torch.Tensor]) -> None:
        self.encodes.append(len(images))
        self.inner.set_images(images)

    def predict(self, image_index, point_coords, point_labels, mask_input=None):  # noqa: ANN001
        self.mask_inputs.append(mask_input)
        return self.inner.predict(image_index, point_coords, point_labels, mask_input)

    def upscale(self, image_index: int, low_res_logits: torch.Tensor) -> torch.Tensor:
        return self.inner.upscale(image_index, low_res_logits)

    def to(self, device: torch.device | str) -> "_Spy":
        return self


@pytest.mark.parametrize("second_pass", [False, True])
def test_images_encoded_once_and_second_pass_feeds_best_mask(
    tiny_predictor: SamBatchPredictor, second_pass: bool
) -> None:
    images, labels = _images_and_labels()
    spy = _Spy(tiny_predictor)
    SamRefiner(
        predictor=spy, refinement=second_pass, size_threshold=20000, size_reference=(768, 768)
    ).refine(images, labels, generator=np.random.default_rng(0))
    assert spy.encodes == [2]  # one encoder call for the whole batch
    fed = [m for m in spy.mask_inputs if m is not None]
    assert len(spy.mask_inputs) == (4 if second_pass else 2)
    assert len(fed) == (2 if second_pass else 0)
    for mask_input in fed:
        assert mask_input.shape[1:] == (1, 32, 32)


def test_uncovered_pixels_follow_the_rule() -> None:
    label = torch.zeros(64, 96, dtype=torch.long)
    label[10:50, 20:60] = 4  # one big region; the oracle's truth is a smaller box
    truth = np.zeros((64, 96), dtype=np.int64)
    truth[20:40, 30:50] = 4
    images = [torch.zeros(3, 64, 96, dtype=torch.uint8)]
    kwargs = {"num_points": 5, "selection_mode": "interior", "size_threshold": 50}
    teacher = SamRefiner(predictor=OracleSam([truth]), uncovered="teacher", **kwargs)
    ignore = SamRefiner(predictor=OracleSam([truth]), uncovered="ignore", **kwargs)
    kept = teacher.refine(images, [label], generator=np.random.default_rng(0))[0].label
    dropped = ignore.refine(images, [label], generator=np.random.default_rng(0))[0].label
    # region 4's points fall in the truth box -> box labelled 4; region 0's points fall in the
    # truth background ring -> the ring (everything but the box) labelled 0
    torch.testing.assert_close(kept, torch.from_numpy(truth))
    torch.testing.assert_close(dropped, torch.from_numpy(truth))
    # an image without any prompt keeps the teacher's map, whatever the uncovered rule
    for uncovered in ("ignore", "teacher"):
        high = SamRefiner(predictor=OracleSam([truth]), uncovered=uncovered, size_threshold=10**6)
        none = high.refine(images, [label], generator=np.random.default_rng(0))[0]
        torch.testing.assert_close(none.label, label)
        assert none.prompted_classes is None  # targets: the classes of the teacher's map


def _miou(preds: list[np.ndarray], gts: list[np.ndarray], num_classes: int = 19) -> float:
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    for pred, gt in zip(preds, gts):
        valid = (gt != 255) & (pred != 255)
        confusion += np.bincount(
            gt[valid] * num_classes + pred[valid], minlength=num_classes**2
        ).reshape(num_classes, num_classes)
    tp = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - tp
    present = confusion.sum(1) > 0
    return float(np.mean(tp[present] / union[present]))


def _corrupt(gt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plausible teacher error: boundaries shifted by a few pixels and blotches of noise."""
    shift = rng.integers(-3, 4, size=2)
    noisy = np.roll(gt, tuple(shift), axis=(0, 1))
    for _ in range(6):
        y, x = rng.integers(0, gt.shape[0] - 6), rng.integers(0, gt.shape[1] - 8)
        noisy[y : y + 6, x : x + 8] = rng.integers(0, 19)
    return noisy


def test_oracle_refinement_raises_pseudo_label_miou() -> None:
    rng = np.random.default_rng(0)
    gts = [sample_scene(rng, 96, 192).label.astype(np.int64) for _ in range(6)]
    gts = [np.where(g == 255, 0, g) for g in gts]  # the teacher labels every pixel
    teacher = [_corrupt(g, rng) for g in gts]
    images = [torch.zeros(3, *g.shape, dtype=torch.uint8) for g in gts]
    refiner = SamRefiner(
        predictor=OracleSam(gts), num_points=5, erosion=True, size_reference=(768, 768)
    )
    refined = refiner.refine(
        images, [torch.from_numpy(t) for t in teacher], generator=np.random.default_rng(0)
    )
    before = _miou(teacher, gts)
    after = _miou([r.label.numpy() for r in refined], gts)
    assert after > before + 0.05, (before, after)


class _RankedCandidates:
    """Stand-in SAM whose candidate c of prompt r on call k has logits 100 k + 10 r + c and
    scores that put the best candidate at ``best[r]``; records every ``mask_input``."""

    def __init__(self, best: list[int], size: tuple[int, int]) -> None:
        self.best, self.size = best, size
        self.mask_inputs: list[torch.Tensor | None] = []
        self.upscaled: list[torch.Tensor] = []

    def set_images(self, images: list[torch.Tensor]) -> None:
        pass

    def predict(self, image_index, point_coords, point_labels, mask_input=None):  # noqa: ANN001
        call = len(self.mask_inputs)
        self.mask_inputs.append(mask_input)
        prompts = len(point_coords)
        values = 100.0 * call + 10.0 * torch.arange(prompts)[:, None] + torch.arange(3)[None]
        iou = torch.full((prompts, 3), 0.1)
        iou[torch.arange(prompts), torch.tensor(self.best[:prompts])] = 0.9
        return iou, values[:, :, None, None].expand(prompts, 3, 4, 4).clone()

    def upscale(self, image_index: int, low_res_logits: torch.Tensor) -> torch.Tensor:
        self.upscaled.append(low_res_logits)
        return torch.zeros(len(low_res_logits), *self.size, dtype=torch.bool)

    def to(self, device: torch.device | str) -> "_RankedCandidates":
        return self


def test_second_pass_feeds_each_prompts_best_scored_mask() -> None:
    label = torch.zeros(16, 24, dtype=torch.long)
    label[:, 12:] = 1  # two regions, each prompted once
    spy = _RankedCandidates(best=[2, 1], size=(16, 24))
    SamRefiner(predictor=spy, refinement=True, num_points=3, size_threshold=50).refine(
        [torch.zeros(3, 16, 24, dtype=torch.uint8)], [label], generator=np.random.default_rng(0)
    )
    first, second = spy.mask_inputs
    assert first is None and second.shape == (2, 1, 4, 4)
    # prompt r's best first-pass candidate is best[r]: logits 10 r + best[r]
    torch.testing.assert_close(second[:, 0, 0, 0], torch.tensor([2.0, 11.0]))
    assert (second == second[:, :, :1, :1]).all()
    # the kept masks are the second pass's best: 100 + 10 r + best[r]
    torch.testing.assert_close(spy.upscaled[0][:, 0, 0], torch.tensor([102.0, 111.0]))
