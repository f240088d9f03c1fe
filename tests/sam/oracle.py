"""An oracle stand-in for SAM: it answers every prompt with the true region under the points."""

from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage


class OracleSam:
    """A :class:`clouds.sam.PromptPredictor` that knows the ground truth.

    For a prompt it finds the ground-truth connected region under the majority of its points and
    returns three candidates: that region dilated (score 0.5), the region itself (score 0.9) and
    the region eroded (score 0.6). Its "low-resolution" logits are full-resolution +-1 maps.
    """

    def __init__(self, ground_truth: Sequence[np.ndarray]) -> None:
        self.ground_truth = list(ground_truth)
        self.encoded: list[int] = []
        self.calls = 0

    def set_images(self, images: Sequence[torch.Tensor]) -> None:
        self.encoded = [int(image.shape[-1]) for image in images]

    def to(self, device: torch.device | str) -> "OracleSam":
        return self

    def _region(self, gt: np.ndarray, points: np.ndarray) -> np.ndarray:
        xs, ys = points[:, 0].astype(int), points[:, 1].astype(int)
        components = np.zeros(gt.shape, dtype=np.int64)
        offset = 0
        for cls in np.unique(gt):
            comp, n = ndimage.label(gt == cls, structure=np.ones((3, 3)))
            components[comp > 0] = comp[comp > 0] + offset
            offset += n
        ids, counts = np.unique(components[ys, xs], return_counts=True)
        return components == ids[np.argmax(counts)]

    def predict(
        self,
        image_index: int,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += 1
        gt = self.ground_truth[image_index]
        logits = []
        for points in point_coords.numpy():
            region = self._region(gt, points)
            candidates = [
                ndimage.binary_dilation(region, iterations=2),
                region,
                ndimage.binary_erosion(region, iterations=2),
            ]
            logits.append(np.stack([np.where(c, 1.0, -1.0) for c in candidates]))
        iou = torch.tensor([[0.5, 0.9, 0.6]]).repeat(len(point_coords), 1)
        return iou, torch.from_numpy(np.stack(logits)).float()

    def upscale(self, image_index: int, low_res_logits: torch.Tensor) -> torch.Tensor:
        return low_res_logits > 0
