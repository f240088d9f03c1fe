"""File in, file out: the weight files DGVFM's ``tools/convert_models/convert_*.py`` write.

Each function reads an official release file the way the original converter reads it, changes
the entries it changes (:func:`clouds.modeling.backbone.vfm.convert.convert_official_state`) and
returns what the original saves: the same keys in the same order, the same container type and
the same dtypes (the resized patch kernel in float32, the other entries as stored).

- DINOv2 (``convert_dinov2.py``): the loaded dict, kernel and position grid resized.
- EVA02 (``convert_eva2_512x512.py``): ``["model"]`` unwrapped, rotary entries dropped, kernel
  16x16 and a 32x32 grid whatever the input (the original has no size options).
- CLIP (``convert_clip.py``): the ``visual.`` entries of OpenAI's TorchScript archive in float32,
  prefix removed, a square grid of ``height / kernel``.
- SAM (``convert_sam.py``): the ``image_encoder.`` entries, prefix removed.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import MutableMapping

import torch

from clouds.modeling.backbone.vfm.convert import convert_official_state
from clouds.utils.io import atomic_path
from clouds.utils.weights_file import TORCH, load_torch_weights, reading_weights

__all__ = [
    "EVA02_GRID",
    "convert_clip_file",
    "convert_dinov2_file",
    "convert_eva02_file",
    "convert_sam_file",
    "save_converted",
]

EVA02_GRID = (32, 32)  # convert_eva2_512x512.py: 1024 patches, kernel 16, always
_MIN_ENTRIES = 11  # the original converters refuse files of 10 entries or fewer

_State = MutableMapping[str, torch.Tensor]


def _load(path: str) -> object:
    """A release file read by :func:`clouds.utils.weights_file.load_torch_weights` (tensors
    only), naming ``path`` when it is missing."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"weight file not found: {path} (absolute: {os.path.abspath(path)})"
        )
    return load_torch_weights(path, key="pretrained file")


def _check_entries(state: object, path: str, what: str) -> _State:
    if not isinstance(state, MutableMapping) or len(state) < _MIN_ENTRIES:
        size = len(state) if isinstance(state, MutableMapping) else type(state).__name__
        raise ValueError(f"{path} does not look like {what} (it holds {size} entries)")
    return state


def _with_entries(like: _State, entries: dict[str, torch.Tensor]) -> _State:
    """``entries`` in a container of ``like``'s type (dict or OrderedDict)."""
    out = type(like)()
    out.update(entries)
    return out


def _grid(kernel: int, height: int, width: int) -> tuple[int, int]:
    return height // kernel, width // kernel


def convert_dinov2_file(
    path: str, *, kernel: int = 16, height: int = 512, width: int = 512
) -> _State:
    """``dinov2_vit*_pretrain.pth`` -> what ``convert_dinov2.py SRC DST`` saves."""
    state = _check_entries(_load(path), path, "a DINOv2 state dict")
    converted = convert_official_state(
        state, "dinov2", patch_size=kernel, grid=_grid(kernel, height, width)
    )
    return _with_entries(state, converted)


def convert_eva02_file(path: str) -> _State:
    """``eva02_L_pt_m38m_p14to16.pt`` -> what ``convert_eva2_512x512.py SRC DST`` saves."""
    checkpoint = _load(path)
    if isinstance(checkpoint, MutableMapping) and "model" in checkpoint:
        checkpoint = checkpoint["model"]
    state = _check_entries(checkpoint, path, "an EVA02 state dict")
    converted = convert_official_state(state, "eva02", patch_size=16, grid=EVA02_GRID)
    return _with_entries(state, converted)


def convert_clip_file(
    path: str, *, kernel: int = 16, height: int = 512, embed_dim: int | None = None
) -> dict[str, torch.Tensor]:
    """OpenAI's TorchScript ``ViT-L-14.pt`` -> what ``convert_clip.py SRC DST`` saves.

    Raises:
        ValueError: when ``embed_dim`` (the original's ``--embed_dim``) is not the file's width.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"weight file not found: {path} (absolute: {os.path.abspath(path)})"
        )
    reading = reading_weights(path, key="pretrained file", formats=TORCH)
    with reading, warnings.catch_warnings():  # OpenAI's release is TorchScript: jit.load reads it
        warnings.filterwarnings("ignore", message=".*torch.jit.load.*", category=FutureWarning)
        archive = torch.jit.load(path, map_location="cpu").float().state_dict()
    visual = {k.replace("visual.", ""): v for k, v in archive.items() if k.startswith("visual.")}
    if "positional_embedding" not in visual or "conv1.weight" not in visual:
        raise ValueError(f"{path} holds no CLIP image tower (no visual.* entries)")
    width = visual["positional_embedding"].shape[-1]
    if embed_dim is not None and embed_dim != width:
        raise ValueError(f"--embed_dim {embed_dim} does not match the width {width} of {path}")
    side = height // kernel
    return convert_official_state(visual, "clip", patch_size=kernel, grid=(side, side))


def convert_sam_file(
    path: str, *, kernel: int = 16, height: int = 512, width: int = 512
) -> dict[str, torch.Tensor]:
    """``sam_vit_h_4b8939.pth`` -> what ``convert_sam.py SRC DST`` saves."""
    checkpoint = _load(path)
    if not isinstance(checkpoint, MutableMapping):
        raise ValueError(f"{path} does not hold a state dict")
    encoder = {
        k.replace("image_encoder.", ""): v for k, v in checkpoint.items() if "image_encoder." in k
    }
    _check_entries(encoder, path, "a SAM checkpoint (image_encoder.* entries)")
    return convert_official_state(
        encoder, "sam", patch_size=kernel, grid=_grid(kernel, height, width)
    )


def save_converted(state: _State, path: str) -> None:
    """``torch.save`` of ``state`` to ``path`` (folders created, written atomically)."""
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
