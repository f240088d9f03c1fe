"""ImageNet-C corruptions of test images, seeded per image (Hendrycks & Dietterich, 2019).

The 15 corruptions at severities 1-5 come from the PyPI package ``imagecorruptions-imaug``
(the maintained fork of ``imagecorruptions``, which no longer imports on current setuptools;
same module name ``imagecorruptions``, same functions; install with the ``robustness`` extra).
Each corrupted image draws from its own seed, derived from the run seed, the image's index in
its dataset, the corruption and the severity (:func:`corruption_seed`), so a cell of the
corruption x severity grid gives the same pixels whatever ran before it (a resumed run, another
order). NumPy's global generator, which the package draws from, is seeded inside a context that
restores its state; the two corruptions that draw from their own generators (impulse noise
through scikit-image, glass blur) get the seed as an argument.

:class:`CorruptingMapper` wraps a test mapper: it corrupts the mapped "image" (the network
input, after the test resize), leaving the labels and the rest of the dict as they are.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator, Mapping

import numpy as np
import torch

__all__ = [
    "CORRUPTIONS",
    "SEVERITIES",
    "CorruptingMapper",
    "corrupt_image",
    "corruption_seed",
    "numpy_seeded",
]

CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)
_OWN_GENERATOR = ("impulse_noise", "glass_blur")  # take ``seed=`` instead of the global draws
_MIN_SIDE = 32  # the package refuses smaller images


def check_corruption(corruption: str, severity: int) -> None:
    """Raise a ValueError naming the bad value when ``corruption``/``severity`` is unknown."""
    if corruption not in CORRUPTIONS:
        raise ValueError(f"Unknown corruption {corruption!r}; choose from {', '.join(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"Corruption severity must be one of {SEVERITIES}, got {severity!r}")


def corruption_seed(run_seed: int, image_index: int, corruption: str, severity: int) -> int:
    """A 32-bit seed for one image of one (corruption, severity) cell of the run ``run_seed``."""
    key = f"{run_seed}/{image_index}/{corruption}/{severity}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "little")


@contextlib.contextmanager
def numpy_seeded(seed: int) -> Iterator[None]:
    """NumPy's global generator seeded with ``seed`` inside, its state restored after."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def corrupt_image(image: np.ndarray, corruption: str, severity: int, seed: int) -> np.ndarray:
    """``image`` ((H, W, 3) uint8 RGB, H, W >= 32) under ``corruption`` at ``severity``.

    Returns:
        (H, W, 3) uint8, the same for the same arguments.
    """
    check_corruption(corruption, severity)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"Expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    if min(image.shape[:2]) < _MIN_SIDE:
        raise ValueError(
            f"Corruptions need images of at least {_MIN_SIDE}x{_MIN_SIDE} pixels, got "
            f"{image.shape[0]}x{image.shape[1]}"
        )
    from imagecorruptions import corrupt  # optional dependency: the ``robustness`` extra

    kwargs = {"seed": seed} if corruption in _OWN_GENERATOR else {}
    with numpy_seeded(seed):
        out = corrupt(image, corruption_name=corruption, severity=severity, **kwargs)
    # A few corruptions (e.g. frost, zoom blur) can change the size by a pixel of rounding.
    return np.ascontiguousarray(out[: image.shape[0], : image.shape[1]])


class CorruptingMapper:
    """A test mapper whose mapped "image" ((3, H, W) uint8) is corrupted, seeded per image.

    Args:
        mapper: the test mapper (dataset dict -> model input dict with "image").
        corruption, severity: the ImageNet-C corruption and its severity (1-5).
        run_seed: the run's seed.
        image_index: {file_name: index of the image in its dataset}.
    """

    def __init__(
        self,
        mapper: Callable[[dict], dict],
        *,
        corruption: str,
        severity: int,
        run_seed: int,
        image_index: Mapping[str, int],
    ) -> None:
        check_corruption(corruption, severity)
        self.mapper = mapper
        self.corruption = corruption
        self.severity = severity
        self.run_seed = run_seed
        self.image_index = image_index

    def __call__(self, dataset_dict: dict) -> dict:
        out = self.mapper(dataset_dict)
        image = out["image"]
        if image.dtype != torch.uint8:
            raise ValueError(
                f"{dataset_dict['file_name']}: corruptions need the mapper's uint8 image, got "
                f"{image.dtype}"
            )
        seed = corruption_seed(
            self.run_seed,
            self.image_index[dataset_dict["file_name"]],
            self.corruption,
            self.severity,
        )
        hwc = image.permute(1, 2, 0).numpy()
        corrupted = corrupt_image(hwc, self.corruption, self.severity, seed)
        out["image"] = torch.from_numpy(corrupted).permute(2, 0, 1).contiguous()
        return out
