"""DGVFM's data pipelines, as its mmsegmentation configs define them (``INPUT.DATASET_MAPPER_NAME``
"vfm_mmseg").

Training (:class:`VFMTrainMapper`), in mmseg's order: resize, either to the fixed
``INPUT.VFM_PIPELINE.TRAIN_SCALE`` (W, H) (aspect not kept) or, when ``TRAIN_SHORT_EDGES`` is
set, to a random short side among them with the long side at most ``TRAIN_MAX_LONG_EDGE``;
random crop ``INPUT.CROP.SIZE`` redrawn while one class covers ``SINGLE_CATEGORY_MAX_AREA`` of
it (mmseg's ``cat_max_ratio``); horizontal flip; mmseg's photometric distortion. No padding: a
crop of a smaller image is smaller, and the model pads the batch (as mmseg's data preprocessor).
With rare-class sampling the dataset dict carries "rare_class" (see
:class:`clouds.data.samplers.RareClassSampler`) and the crop is redrawn, up to 10 times, until
it holds more than ``DATALOADER.RARE_CLASS_MIN_PIXELS x RARE_CLASS_MIN_CROP_RATIO`` pixels of
that class (the last redraw is kept unchecked, as the original's ``DGDataset``). The original
redraws by running its whole pipeline again, so each attempt here draws its flip and photometric
choices too (only the kept attempt's are applied).

Test (:class:`VFMTestMapper`): an aspect-kept resize into the dataset's (W, H) scale of
``INPUT.VFM_PIPELINE.TEST_SCALES`` (one per ``DATASETS.TEST`` entry); "height"/"width" stay the
original size, where predictions are made and scored.

Images are read as RGB and resized with OpenCV as mmcv does. Every random choice is drawn from
NumPy's global generator with the calls of mmcv / mmseg, in their order (resize choice, crop
offsets and their redraws, flip, photometric distortion), so one NumPy state gives the original
pipeline's output; the training loader seeds the generators per sample.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch

from clouds.config import CfgNode, ConfigError
from clouds.data.mappers import image_to_tensor
from clouds.data.transforms.geometric import (
    keep_ratio_size,
    random_crop_box,
    resize_image,
    resize_label,
    shortest_edge_scale,
)
from clouds.data.transforms.photometric import PhotoMetricDistortion, PhotometricDraw
from clouds.utils.io import read_image, read_label

__all__ = ["MAPPER_NAME", "VFMTestMapper", "VFMTrainMapper"]

MAPPER_NAME = "vfm_mmseg"
_RECROPS = 10  # the original's DGDataset redraws a rare-class sample at most 10 times


class VFMTrainMapper:
    """Training mapper of the DGVFM pipelines.

    Output dict for a labelled image: the input keys plus "image" (uint8 (3, h, w) RGB) and
    "sem_seg" (int64 (h, w)), (h, w) the crop size or less. An unlabelled (generated) image, for
    self-training with :class:`clouds.engine.joint_training.JointTraining`, is used whole, as the
    CLOUDS mapper does: flipped, "image_clean" (the teacher's view) without and "image" (the
    student's view) with the photometric distortion, no "sem_seg".
    """

    def __init__(
        self,
        *,
        scale: tuple[int, int],
        short_edges: Sequence[int] = (),
        max_long_edge: int = 2048,
        crop_size: tuple[int, int],
        cat_max_ratio: float,
        ignore_label: int = 255,
        flip: bool = True,
        photometric: PhotoMetricDistortion | None = None,
        rare_class_min_crop_pixels: float = 0.0,
        image_format: str = "RGB",
    ) -> None:
        """
        Args:
            scale: (W, H) of the fixed resize, used when ``short_edges`` is empty.
            short_edges: candidate short sides of a random aspect-kept resize.
            max_long_edge: long-side cap of the ``short_edges`` resize.
            crop_size: (h, w) of the random crop.
            cat_max_ratio: mmseg RandomCrop's ``cat_max_ratio`` (1: no class constraint).
            rare_class_min_crop_pixels: a crop of a rare-class sample is redrawn while it holds
                this many pixels of the class or fewer (0: never).
        """
        if len(scale) != 2 or min(scale) <= 0:
            raise ConfigError(f"INPUT.VFM_PIPELINE.TRAIN_SCALE must be (W, H) > 0, got {scale}")
        if any(s <= 0 for s in short_edges) or max_long_edge <= 0:
            raise ConfigError(
                f"INPUT.VFM_PIPELINE.TRAIN_SHORT_EDGES / TRAIN_MAX_LONG_EDGE must be positive, "
                f"got {list(short_edges)} / {max_long_edge}"
            )
        if len(crop_size) != 2 or min(crop_size) <= 0:
            raise ConfigError(f"INPUT.CROP.SIZE must be (h, w) > 0, got {crop_size}")
        self.scale = (int(scale[0]), int(scale[1]))
        self.short_edges = tuple(int(s) for s in short_edges)
        self.max_long_edge = int(max_long_edge)
        self.crop_size = (int(crop_size[0]), int(crop_size[1]))
        self.cat_max_ratio = float(cat_max_ratio)
        self.ignore_label = ignore_label
        self.flip = flip
        self.photometric = photometric
        self.rare_class_min_crop_pixels = float(rare_class_min_crop_pixels)
        self.image_format = image_format

    @classmethod
    def from_config(cls, cfg: CfgNode) -> VFMTrainMapper:
        i, p, d = cfg.INPUT, cfg.INPUT.VFM_PIPELINE, cfg.DATALOADER
        return cls(
            scale=tuple(p.TRAIN_SCALE),
            short_edges=tuple(p.TRAIN_SHORT_EDGES),
            max_long_edge=p.TRAIN_MAX_LONG_EDGE,
            crop_size=tuple(i.CROP.SIZE),
            cat_max_ratio=i.CROP.SINGLE_CATEGORY_MAX_AREA,
            ignore_label=cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
            flip=i.FLIP,
            photometric=PhotoMetricDistortion.from_config(cfg) if i.COLOR_AUG_SSD else None,
            rare_class_min_crop_pixels=d.RARE_CLASS_MIN_PIXELS * d.RARE_CLASS_MIN_CROP_RATIO,
            image_format=i.FORMAT,
        )

    def resize_scale(self, height: int, width: int) -> tuple[int, int] | None:
        """The (W, H) keep-ratio scale for an image of ``height`` x ``width`` (a random short
        side), or None for the fixed resize to ``scale``."""
        if not self.short_edges:
            return None
        short = self.short_edges[int(np.random.randint(len(self.short_edges)))]
        return shortest_edge_scale(height, width, short, self.max_long_edge)

    def _resize(self, image: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Image and label resized each from its own size, as mmcv's Resize does (they differ
        for a few GTA5 frames)."""
        keep_ratio = self.resize_scale(*image.shape[:2])
        if keep_ratio is None:
            image_size = label_size = (self.scale[1], self.scale[0])
        else:
            image_size = keep_ratio_size(*image.shape[:2], keep_ratio)
            label_size = keep_ratio_size(*label.shape[:2], keep_ratio)
        return resize_image(image, image_size), resize_label(label, label_size)

    def _resize_and_crop(
        self, image: np.ndarray, label: np.ndarray, resized: tuple[np.ndarray, np.ndarray] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """One draw of resize + crop; ``resized`` reuses a deterministic (fixed-scale) resize."""
        image, label = resized if resized is not None else self._resize(image, label)
        y0, y1, x0, x1 = random_crop_box(
            label,
            self.crop_size,
            image_hw=image.shape[:2],
            cat_max_ratio=self.cat_max_ratio,
            ignore_label=self.ignore_label,
        )
        return image[y0:y1, x0:x1], label[y0:y1, x0:x1]

    def _draw_flip(self) -> bool:
        """mmcv's ``RandomFlip(prob=0.5)``: one ``np.random.choice`` between flip and no flip."""
        return self.flip and bool(np.random.choice([True, False], p=[0.5, 0.5]))

    def _draw_photometric(self) -> PhotometricDraw | None:
        return self.photometric.sample() if self.photometric is not None else None

    def _attempt(
        self, image: np.ndarray, label: np.ndarray, resized: tuple[np.ndarray, np.ndarray] | None
    ) -> tuple[np.ndarray, np.ndarray, bool, PhotometricDraw | None]:
        """One run of the original pipeline's draws: resize + crop applied, flip and photometric
        choices drawn (applied by the caller to the attempt it keeps)."""
        image, label = self._resize_and_crop(image, label, resized)
        return image, label, self._draw_flip(), self._draw_photometric()

    def _unlabelled(self, image: np.ndarray, out: dict) -> dict:
        if self._draw_flip():
            image = np.ascontiguousarray(image[:, ::-1])
        out["image_clean"] = image_to_tensor(image)
        if self.photometric is not None:
            image = self.photometric(image)
        out["image"] = image_to_tensor(image)
        return out

    def __call__(self, dataset_dict: dict) -> dict:
        out = copy.copy(dataset_dict)
        full_image = read_image(dataset_dict["file_name"], format=self.image_format)
        if not dataset_dict.get("sem_seg_file_name"):
            return self._unlabelled(full_image, out)
        full_label = read_label(dataset_dict["sem_seg_file_name"])
        resized = None if self.short_edges else self._resize(full_image, full_label)
        image, label, flip, distortion = self._attempt(full_image, full_label, resized)
        rare_class = dataset_dict.get("rare_class")
        if rare_class is not None and self.rare_class_min_crop_pixels > 0:
            for _ in range(_RECROPS):
                if np.count_nonzero(label == rare_class) > self.rare_class_min_crop_pixels:
                    break
                image, label, flip, distortion = self._attempt(full_image, full_label, resized)
        if flip:
            image, label = image[:, ::-1], label[:, ::-1]
        if distortion is not None:
            image = self.photometric.apply(np.ascontiguousarray(image), distortion)
        out["image"] = image_to_tensor(image)
        out["sem_seg"] = torch.from_numpy(label.astype(np.int64))
        return out


class VFMTestMapper:
    """Test mapper: aspect-kept resize into ``scale`` (W, H), as mmcv's
    ``Resize(scale, keep_ratio=True)``.

    Output dict: the input keys plus "image" (uint8 (3, h, w)) and "height"/"width" = the
    original image size (predictions are produced at that size).
    """

    def __init__(self, *, scale: tuple[int, int], image_format: str = "RGB") -> None:
        if len(scale) != 2 or min(scale) <= 0:
            raise ConfigError(f"A test scale must be (W, H) > 0, got {scale}")
        self.scale = (int(scale[0]), int(scale[1]))
        self.image_format = image_format

    @classmethod
    def from_config(cls, cfg: CfgNode, dataset_name: str) -> VFMTestMapper:
        """The mapper of ``dataset_name``, whose scale is the entry of
        ``INPUT.VFM_PIPELINE.TEST_SCALES`` at its position in ``DATASETS.TEST`` (a single
        entry serves every test set)."""
        names, scales = list(cfg.DATASETS.TEST), list(cfg.INPUT.VFM_PIPELINE.TEST_SCALES)
        if len(scales) == 1:
            scales = scales * len(names)
        if len(scales) != len(names):
            raise ConfigError(
                f"INPUT.VFM_PIPELINE.TEST_SCALES needs one (W, H) per DATASETS.TEST entry "
                f"{names} (or one for all), got {scales}"
            )
        if dataset_name not in names:
            raise ConfigError(
                f"No INPUT.VFM_PIPELINE.TEST_SCALES entry for {dataset_name!r}: it is not in "
                f"DATASETS.TEST {names}"
            )
        return cls(scale=tuple(scales[names.index(dataset_name)]), image_format=cfg.INPUT.FORMAT)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The (h, w) an image of ``height`` x ``width`` is resized to."""
        return keep_ratio_size(height, width, self.scale)

    def __call__(self, dataset_dict: dict) -> dict:
        out = copy.copy(dataset_dict)
        image = read_image(dataset_dict["file_name"], format=self.image_format)
        height, width = image.shape[:2]
        out["image"] = image_to_tensor(resize_image(image, self.output_size(height, width)))
        out["height"], out["width"] = height, width
        return out
