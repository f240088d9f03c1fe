"""Dataset mappers: read a dataset dict's files and turn them into model inputs.

Training (:class:`SemSegTrainMapper`): the original CLOUDS's augmentation with detectron2's
semantics (see :mod:`clouds.data.augmentation`): aspect-kept random rescale, a fixed-size crop
placed by one uniform draw, ColorAugSSD and flip for labelled images; flip (and ColorAugSSD for
the student's view) only for generated ones. The draws are the original's, from its generators
in its order: scale, crop offset and flip from NumPy's global generator, ColorAugSSD from
Python's ``random`` (see :mod:`clouds.data.augmentation`); our options' extra draws come from
torch's. The training dataset seeds all three per sample (see :mod:`clouds.data.build`).

Test (:class:`SemSegTestMapper`): short side ``INPUT.MIN_SIZE_TEST``, long side capped at
``INPUT.MAX_SIZE_TEST``; scored at that size against nearest-resized labels when
``TEST.SCORE_AT_TEST_SIZE`` (the original CLOUDS), else at the original size.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from clouds.config import CfgNode
from clouds.data.augmentation import (
    color_aug_ssd,
    crop_origin,
    crop_pad,
    draw_uniform,
    hflip,
    resize_image,
    resize_label,
    resize_scale_size,
    sample_color_aug_ssd,
    torch_uniform,
)
from clouds.utils.io import ImageReadError, read_image, read_label

__all__ = ["SemSegTestMapper", "SemSegTrainMapper", "image_to_tensor", "load_image_tensor"]


def load_image_tensor(dataset_dict: dict, image_format: str = "RGB") -> torch.Tensor:
    """Read ``dataset_dict["file_name"]`` as a (3, H, W) uint8 tensor and check its size
    against ``height``/``width`` when the dict has them (the error names the file)."""
    image = read_image(dataset_dict["file_name"], format=image_format)
    expected = (dataset_dict.get("height"), dataset_dict.get("width"))
    if None not in expected and tuple(image.shape[:2]) != expected:
        raise ImageReadError(
            f"Image {dataset_dict['file_name']} has size {image.shape[0]}x{image.shape[1]} (HxW) "
            f"but its dataset entry says {expected[0]}x{expected[1]}"
        )
    return image_to_tensor(image)


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """An (H, W, 3) image array as a contiguous (3, H, W) tensor of the same dtype (a copy)."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


class SemSegTrainMapper:
    """Training mapper of the original CLOUDS, for labelled and generated (unlabelled) images.

    Labelled images: random rescale that keeps the aspect (detectron2's ``ResizeScale`` into the
    ``target_size`` box times U(``scale_range``)), a ``crop_size`` crop placed by one uniform draw
    and padded up to ``crop_size`` (image 0, label ``ignore_label``), ColorAugSSD, horizontal
    flip with probability 0.5. Generated images (``sem_seg_file_name`` None, the ``sd_*`` sets)
    are used whole at their native size: flip only, then ColorAugSSD for "image" (the student's
    view) while "image_clean" keeps the flipped image without it (the EMA teacher's view).

    Draws, in order (labelled: scale, crop offset, ColorAugSSD, flip; generated: flip,
    ColorAugSSD) as the original's ``MapperTrain``: ``np.random.uniform`` for scale, offset and
    flip, Python's ``random`` for ColorAugSSD.

    Output dict: the input keys plus "image" (uint8 (3, h, w), ``image_format`` channel order),
    "sem_seg" (int64 (h, w)) for labelled images, "image_clean" for generated ones when
    ``keep_clean_unlabelled``.

    Options of ours, off in the reproduction configs: ``force_size`` (stretch to
    ``target_size x scale``), ``single_category_max_area`` < 1 (redraw the crop up to
    ``max_crop_tries`` times while one class covers that share of its labelled pixels),
    ``independent_offsets`` (separate draws for top and left), ``color_aug="torchvision"``
    (torchvision's RandomPhotometricDistort, which also permutes channels). Their extra draws
    (the left offset, redrawn crops, torchvision's jitter) come from torch's generator, so the
    NumPy and Python streams advance as the original's.
    """

    def __init__(
        self,
        *,
        resize: bool,
        target_size: tuple[int, int] | None,
        scale_range: tuple[float, float],
        crop_size: tuple[int, int] | None,
        ignore_label: int,
        flip: bool,
        color_aug: str | None,
        image_format: str = "RGB",
        force_size: bool = False,
        single_category_max_area: float = 1.0,
        independent_offsets: bool = False,
        keep_clean_unlabelled: bool = True,
        max_crop_tries: int = 10,
        num_classes: int | None = None,
    ) -> None:
        if scale_range[0] <= 0 or scale_range[0] > scale_range[1]:
            raise ValueError(f"INPUT.SCALE_RANGE must be 0 < low <= high, got {scale_range}")
        if color_aug not in (None, "detectron2", "torchvision"):
            raise ValueError(
                f'INPUT.COLOR_AUG_IMPL must be "detectron2" or "torchvision", got {color_aug!r}'
            )
        self.resize = resize
        self.target_size = target_size
        self.scale_range = scale_range
        self.crop_size = crop_size
        self.ignore_label = ignore_label
        self.flip = flip
        self.color_aug = color_aug
        self.photometric = (
            v2.RandomPhotometricDistort(p=0.5) if color_aug == "torchvision" else None
        )
        self.image_format = image_format
        self.force_size = force_size
        self.single_category_max_area = single_category_max_area
        self.independent_offsets = independent_offsets
        self.keep_clean_unlabelled = keep_clean_unlabelled
        self.max_crop_tries = max_crop_tries
        self.num_classes = num_classes  # label values must be < this or the ignore label

    @classmethod
    def from_config(cls, cfg: CfgNode) -> SemSegTrainMapper:
        i = cfg.INPUT
        initial = (i.INITIAL_HEIGHT, i.INITIAL_WIDTH)
        return cls(
            resize=i.RESIZE.ENABLED,
            target_size=initial if min(initial) > 0 else None,
            scale_range=tuple(i.SCALE_RANGE),
            crop_size=tuple(i.CROP.SIZE) if i.CROP.ENABLED else None,
            ignore_label=cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
            flip=i.FLIP,
            color_aug=i.COLOR_AUG_IMPL if i.COLOR_AUG_SSD else None,
            image_format=i.FORMAT,
            force_size=i.RESIZE.FORCE_INITIAL_SIZE,
            single_category_max_area=i.CROP.SINGLE_CATEGORY_MAX_AREA,
            independent_offsets=i.CROP.INDEPENDENT_OFFSETS,
            num_classes=cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
        )

    def _resized_size(self, height: int, width: int) -> tuple[int, int]:
        scale = draw_uniform(*self.scale_range)
        target = self.target_size or (height, width)
        if self.force_size:
            return max(1, round(target[0] * scale)), max(1, round(target[1] * scale))
        return resize_scale_size(height, width, target, scale)

    def _crop_origin(self, label: np.ndarray) -> tuple[int, int]:
        height, width = label.shape
        origin = (0, 0)
        for attempt in range(self.max_crop_tries):
            u = draw_uniform() if attempt == 0 else torch_uniform()
            fractions = (u, torch_uniform()) if self.independent_offsets else (u, u)
            origin = crop_origin(height, width, self.crop_size, fractions)
            if self.single_category_max_area >= 1.0:
                break
            top, left = origin
            window = label[top : top + self.crop_size[0], left : left + self.crop_size[1]]
            counts = np.bincount(window[window != self.ignore_label].ravel())
            counts = counts[counts > 0]
            if len(counts) > 1 and counts.max() < counts.sum() * self.single_category_max_area:
                break
        return origin

    def _color(self, image: np.ndarray) -> np.ndarray:
        if self.color_aug == "detectron2":
            return color_aug_ssd(image, sample_color_aug_ssd(), rgb=self.image_format == "RGB")
        if self.color_aug == "torchvision":
            tensor = self.photometric(torch.from_numpy(image).permute(2, 0, 1))
            return tensor.permute(1, 2, 0).numpy()
        return image

    def _labelled(self, image: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.resize:
            size = self._resized_size(*image.shape[:2])
            image, label = resize_image(image, size), resize_label(label, size)
        if self.crop_size is not None:
            origin = self._crop_origin(label)
            image = crop_pad(image, origin, self.crop_size, fill=0)
            label = crop_pad(label, origin, self.crop_size, fill=self.ignore_label)
        image = self._color(image)
        if self.flip and draw_uniform() < 0.5:
            image, label = hflip(image), hflip(label)
        return image, label

    def __call__(self, dataset_dict: dict) -> dict:
        out = copy.copy(dataset_dict)
        image = load_image_tensor(dataset_dict, self.image_format).permute(1, 2, 0).numpy()
        image = np.ascontiguousarray(image)
        if dataset_dict.get("sem_seg_file_name"):
            label = read_label(
                dataset_dict["sem_seg_file_name"],
                expected_hw=image.shape[:2],
                num_classes=self.num_classes,
                ignore_label=self.ignore_label,
            )
            image, label = self._labelled(image, label)
            out["sem_seg"] = torch.from_numpy(label.astype(np.int64))
        else:
            if self.flip and draw_uniform() < 0.5:
                image = hflip(image)
            if self.keep_clean_unlabelled:
                out["image_clean"] = image_to_tensor(image)
            image = self._color(image)
        out["image"] = image_to_tensor(image)
        return out


class SemSegTestMapper:
    """Test mapper: resize so the short side is ``min_size``, the long side at most ``max_size``
    (no cap when ``max_size <= 0``), sizes rounded as detectron2's ``ResizeShortestEdge``.

    ``score_at_test_size=False`` (ours): "image" (uint8 (3, h, w)) is resized with antialiasing
    and "height"/"width" keep the original size, so predictions are made and scored at full
    resolution. ``score_at_test_size=True`` (the original CLOUDS's MapperTest): the image is
    resized as detectron2's ``ResizeTransform`` does (PIL bilinear), the label map with PIL
    nearest into "sem_seg" (int64 (h, w)), and "height"/"width" are the resized size, so
    predictions are made and scored at the test size.
    """

    def __init__(
        self,
        *,
        min_size: int,
        max_size: int,
        image_format: str = "RGB",
        score_at_test_size: bool = False,
    ) -> None:
        self.min_size = min_size
        self.max_size = max_size
        self.image_format = image_format
        self.score_at_test_size = score_at_test_size

    @classmethod
    def from_config(cls, cfg: CfgNode) -> SemSegTestMapper:
        return cls(
            min_size=cfg.INPUT.MIN_SIZE_TEST,
            max_size=cfg.INPUT.MAX_SIZE_TEST,
            image_format=cfg.INPUT.FORMAT,
            score_at_test_size=cfg.TEST.SCORE_AT_TEST_SIZE,
        )

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The (h, w) an image of ``height`` x ``width`` is resized to."""
        scale = self.min_size / min(height, width)
        if 0 < self.max_size < max(height, width) * scale:
            scale = self.max_size / max(height, width)
        return max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5))

    def __call__(self, dataset_dict: dict) -> dict:
        out = copy.copy(dataset_dict)
        image = load_image_tensor(dataset_dict, self.image_format)
        height, width = image.shape[-2:]
        size = self.output_size(height, width)
        out["height"], out["width"] = height, width
        if self.score_at_test_size:
            image = _pil_resize(image.permute(1, 2, 0).numpy(), size, Image.BILINEAR)
            image = torch.from_numpy(image).permute(2, 0, 1)
            label_file = dataset_dict.get("sem_seg_file_name")
            if label_file:
                label = _pil_resize(read_label(label_file, (height, width)), size, Image.NEAREST)
                out["sem_seg"] = torch.from_numpy(label.astype(np.int64))
            out["height"], out["width"] = size
        elif size != (height, width):
            image = F.resize(image, list(size), antialias=True)
        out["image"] = image.contiguous()
        return out


def _pil_resize(array: np.ndarray, size: tuple[int, int], resample: int) -> np.ndarray:
    """``array`` ((H, W) or (H, W, C)) resized to ``size`` (h, w) by PIL, as detectron2 does."""
    if tuple(array.shape[:2]) == tuple(size):
        return array
    return np.array(Image.fromarray(array).resize((size[1], size[0]), resample))
