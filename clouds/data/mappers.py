"""Dataset mappers: read a dataset dict's files and turn them into model inputs.

Training (:class:`SemSegTrainMapper`): resize to ``INPUT.INITIAL_HEIGHT/WIDTH`` times a random
scale from ``INPUT.SCALE_RANGE``, pad to the crop size (image 0, label ignore), a random
``INPUT.CROP.SIZE`` crop re-drawn up to 10 times while one class covers more than
``SINGLE_CATEGORY_MAX_AREA`` of its labelled pixels, horizontal flip, SSD photometric distortion.
Geometry runs jointly on image and label through torchvision.transforms.v2 (``tv_tensors.Mask``
is resized with nearest neighbour). Randomness comes from torch's global generator, which the
training dataset seeds per sample (see :mod:`clouds.data.build`).

Test (:class:`SemSegTestMapper`): short side ``INPUT.MIN_SIZE_TEST``, long side capped at
``INPUT.MAX_SIZE_TEST``; ``height``/``width`` keep the original size the outputs are made at.
"""

from __future__ import annotations

import copy

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from clouds.config import CfgNode
from clouds.utils.io import ImageReadError, read_image, read_label

__all__ = ["SemSegTestMapper", "SemSegTrainMapper", "load_image_tensor"]


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
    return torch.from_numpy(image.copy()).permute(2, 0, 1).contiguous()


class SemSegTrainMapper:
    """Training mapper for semantic segmentation (labelled and unlabelled images).

    Output dict: the input keys plus "image" (uint8 (3, h, w)), and for labelled images
    "sem_seg" (int64 (h, w), ``ignore_label`` where unknown or padded). Unlabelled images
    (``sem_seg_file_name`` None, e.g. generated ``sd_*`` sets) get no "sem_seg" and, when
    ``keep_clean_unlabelled``, an "image_clean" copy with the same geometry but no photometric
    jitter (the EMA teacher's view).
    """

    def __init__(
        self,
        *,
        initial_size: tuple[int, int] | None,
        scale_range: tuple[float, float],
        crop_size: tuple[int, int] | None,
        single_category_max_area: float,
        ignore_label: int,
        flip: bool,
        color_aug: bool,
        image_format: str = "RGB",
        keep_clean_unlabelled: bool = True,
        max_crop_tries: int = 10,
    ) -> None:
        if scale_range[0] <= 0 or scale_range[0] > scale_range[1]:
            raise ValueError(f"INPUT.SCALE_RANGE must be 0 < low <= high, got {scale_range}")
        self.initial_size = initial_size
        self.scale_range = scale_range
        self.crop_size = crop_size
        self.single_category_max_area = single_category_max_area
        self.ignore_label = ignore_label
        self.flip = flip
        self.photometric = v2.RandomPhotometricDistort(p=0.5) if color_aug else None
        self.image_format = image_format
        self.keep_clean_unlabelled = keep_clean_unlabelled
        self.max_crop_tries = max_crop_tries

    @classmethod
    def from_config(cls, cfg: CfgNode) -> SemSegTrainMapper:
        i = cfg.INPUT
        initial = (i.INITIAL_HEIGHT, i.INITIAL_WIDTH)
        return cls(
            initial_size=initial if min(initial) > 0 else None,
            scale_range=tuple(i.SCALE_RANGE),
            crop_size=tuple(i.CROP.SIZE) if i.CROP.ENABLED else None,
            single_category_max_area=i.CROP.SINGLE_CATEGORY_MAX_AREA,
            ignore_label=cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
            flip=i.FLIP,
            color_aug=i.COLOR_AUG_SSD,
            image_format=i.FORMAT,
        )

    def _crop_origin(self, label: torch.Tensor | None, height: int, width: int) -> tuple[int, int]:
        ch, cw = self.crop_size
        top = left = 0
        for _ in range(self.max_crop_tries):
            top = int(torch.randint(0, height - ch + 1, ()).item())
            left = int(torch.randint(0, width - cw + 1, ()).item())
            if label is None or self.single_category_max_area >= 1.0:
                break
            window = label[top : top + ch, left : left + cw]
            counts = torch.bincount(window[window != self.ignore_label].flatten())
            counts = counts[counts > 0]
            if len(counts) > 1 and counts.max() / counts.sum() < self.single_category_max_area:
                break
        return top, left

    def __call__(self, dataset_dict: dict) -> dict:
        out = copy.copy(dataset_dict)
        image = tv_tensors.Image(load_image_tensor(dataset_dict, self.image_format))
        height, width = image.shape[-2:]
        label = None
        if dataset_dict.get("sem_seg_file_name"):
            array = read_label(dataset_dict["sem_seg_file_name"], expected_hw=(height, width))
            label = tv_tensors.Mask(torch.from_numpy(array.astype("int64")))

        base_h, base_w = self.initial_size or (height, width)
        scale = float(torch.empty(()).uniform_(*self.scale_range))
        size = [max(1, round(base_h * scale)), max(1, round(base_w * scale))]
        image = F.resize(image, size, antialias=True)
        label = F.resize(label, size) if label is not None else None

        if self.crop_size is not None:
            ch, cw = self.crop_size
            pad = [0, 0, max(0, cw - size[1]), max(0, ch - size[0])]  # left, top, right, bottom
            if pad[2] or pad[3]:
                image = F.pad(image, pad, fill=0)
                label = F.pad(label, pad, fill=self.ignore_label) if label is not None else None
            h, w = image.shape[-2:]
            top, left = self._crop_origin(label, h, w)
            image = F.crop(image, top, left, ch, cw)
            label = F.crop(label, top, left, ch, cw) if label is not None else None

        if self.flip and torch.rand(()) < 0.5:
            image = F.horizontal_flip(image)
            label = F.horizontal_flip(label) if label is not None else None

        if label is None and self.keep_clean_unlabelled:
            out["image_clean"] = image.as_subclass(torch.Tensor).clone()
        if self.photometric is not None:
            image = self.photometric(image)
        out["image"] = image.as_subclass(torch.Tensor).contiguous()
        if label is not None:
            out["sem_seg"] = label.as_subclass(torch.Tensor).long().contiguous()
        return out


class SemSegTestMapper:
    """Test mapper: resize so the short side is ``min_size`` (long side at most ``max_size``).

    Output dict: the input keys plus "image" (uint8 (3, h, w)) and "height"/"width" = the
    original image size (predictions are produced at that size).
    """

    def __init__(self, *, min_size: int, max_size: int, image_format: str = "RGB") -> None:
        self.min_size = min_size
        self.max_size = max_size
        self.image_format = image_format

    @classmethod
    def from_config(cls, cfg: CfgNode) -> SemSegTestMapper:
        return cls(
            min_size=cfg.INPUT.MIN_SIZE_TEST,
            max_size=cfg.INPUT.MAX_SIZE_TEST,
            image_format=cfg.INPUT.FORMAT,
        )

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The (h, w) an image of ``height`` x ``width`` is resized to."""
        scale = self.min_size / min(height, width)
        if max(height, width) * scale > self.max_size:
            scale = self.max_size / max(height, width)
        return max(1, round(height * scale)), max(1, round(width * scale))

    def __call__(self, dataset_dict: dict) -> dict:
        out = copy.copy(dataset_dict)
        image = load_image_tensor(dataset_dict, self.image_format)
        height, width = image.shape[-2:]
        size = self.output_size(height, width)
        if size != (height, width):
            image = F.resize(image, list(size), antialias=True)
        out["image"] = image.contiguous()
        out["height"], out["width"] = height, width
        return out
