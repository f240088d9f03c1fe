"""Batched SAM predictor against segment-anything's own one-image ``SamPredictor``.

Same tiny random SAM (``build_tiny_sam``, input side 128), same images and point prompts: the
batched encoder and prompt decoding must give segment-anything's IoU scores, low-resolution
logits and full-size masks. Two images have a long side of 128 so no resize is involved; a
third, smaller one is resized by both (PIL) and checks the scaling of the point coordinates.
"""

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor

from clouds.sam import SamBatchPredictor
from clouds.sam.build import build_tiny_sam


@pytest.fixture(scope="module")
def sam() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_tiny_sam().eval()


def _images() -> list[torch.Tensor]:
    rng = np.random.default_rng(0)
    shapes = [(64, 128), (128, 96), (40, 72)]  # long side = SAM's input size, then smaller
    return [torch.from_numpy(rng.integers(0, 256, (3, h, w), dtype=np.uint8)) for h, w in shapes]


@pytest.mark.parametrize("second_pass", [False, True])
def test_batched_predictions_match_segment_anythings_predictor(sam, second_pass: bool) -> None:
    images = _images()
    ours = SamBatchPredictor(model=sam, prompt_batch_size=2)
    ours.set_images(images)
    reference = SamPredictor(sam)
    rng = np.random.default_rng(1)
    for index, image in enumerate(images):
        h, w = image.shape[-2:]
        points = (rng.random((5, 3, 2)) * [w - 1, h - 1]).astype(np.float32)
        labels = np.ones((5, 3), dtype=np.int64)
        labels[:, 2] = 0  # a background point too
        mask_input = None
        if second_pass:
            mask_input = torch.from_numpy(rng.normal(0, 4, (5, 1, 32, 32)).astype(np.float32))
        iou, low_res = ours.predict(
            index, torch.from_numpy(points), torch.from_numpy(labels), mask_input
        )
        assert iou.shape == (5, 3) and low_res.shape == (5, 3, 32, 32)
        reference.set_image(image.permute(1, 2, 0).numpy())
        for r in range(5):
            kwargs = {"mask_input": mask_input[r].numpy()} if second_pass else {}
            logits, ref_iou, ref_low_res = reference.predict(
                points[r], labels[r], multimask_output=True, return_logits=True, **kwargs
            )
            torch.testing.assert_close(iou[r], torch.from_numpy(ref_iou), atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(
                low_res[r], torch.from_numpy(ref_low_res), atol=1e-4, rtol=1e-4
            )
            masks = ours.upscale(index, low_res[r])
            ref_logits = torch.from_numpy(logits)
            assert masks.shape == ref_logits.shape == (3, h, w)
            decided = ref_logits.abs() > 1e-4  # away from the threshold, rounding cannot flip it
            assert torch.equal(masks[decided], ref_logits[decided] > sam.mask_threshold)
            assert decided.float().mean() > 0.95


def test_training_mode_encodes_each_image_alone_with_batchnorm_statistics() -> None:
    """With SAM in training mode (the original's), each image is encoded alone: its embedding
    is the one-image encoding, and BatchNorm's running statistics are updated once per image."""
    from tests.engine._bn_sam import build_bn_sam

    torch.manual_seed(0)
    sam = build_bn_sam().train().requires_grad_(False)
    images = [torch.from_numpy(np.random.default_rng(i).integers(0, 256, (3, 32, 32), np.uint8))
              for i in range(2)]  # fmt: skip
    predictor = SamBatchPredictor(model=sam)
    predictor.set_images(images)
    batched = predictor._features
    alone = []
    for image in images:
        predictor.set_images([image])
        alone.append(predictor._features)
    torch.testing.assert_close(batched, torch.cat(alone))
    bn = sam.image_encoder.layers[1]
    assert int(bn.num_batches_tracked) == 4  # 2 images, then each again
    sam.eval()
    predictor.set_images(images)
    assert int(bn.num_batches_tracked) == 4  # eval mode: running statistics used, not updated
    assert not torch.allclose(predictor._features, batched)
