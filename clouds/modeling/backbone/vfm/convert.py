"""Converting the official VFM weight files the way DGVFM's ``tools/convert_models`` do.

DGVFM runs every ViT at patch 16 on a fixed position grid (``size / 16``, 32x32 for its 512 px
crops). Its converters read the official release files and change only two entries:

- the patch kernel, resized to 16x16 by plain bicubic interpolation (``align_corners=False``, no
  antialias); :data:`PATCH_RESAMPLE` ``"flexivit"`` uses FlexiViT's pseudo-inverse instead;
- the position embedding, resized to the grid: bicubic for DINOv2, EVA02 and SAM, bilinear for
  CLIP; the class-token entry is kept.

On top of that the EVA02 converter unwraps ``{"model": ...}`` and drops the rotary buffers, the
SAM converter keeps the ``image_encoder.`` entries (prefix removed) and the CLIP one reads the
``visual.`` entries of OpenAI's TorchScript archive (``ViT-L-14.pt``) in float32. Every other
entry is passed through. Converting an already converted file changes nothing (same-size
resampling is the identity), so official and converted files are both accepted.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from collections.abc import Callable

import torch
import torch.nn.functional as F
from timm.layers import resample_patch_embed

from clouds.utils.weights_file import (
    check_weights_file,
    load_safetensors_weights,
    load_torch_weights,
    reading_weights,
)

__all__ = [
    "FAMILIES",
    "PATCH_RESAMPLE",
    "convert_official_state",
    "read_official_file",
    "resize_patch_kernel",
]

FAMILIES = ("dinov2", "eva02", "clip", "sam")
PATCH_RESAMPLE = ("bicubic", "flexivit")

_StateDict = dict[str, torch.Tensor]


def resize_patch_kernel(
    weight: torch.Tensor, patch_size: int, mode: str = "bicubic"
) -> torch.Tensor:
    """A patch kernel (C_out, C_in, p, p) at (C_out, C_in, patch_size, patch_size), in float32.

    ``mode`` "bicubic": plain bicubic interpolation (DGVFM's converters); "flexivit": bicubic
    with FlexiViT's pseudo-inverse correction (a patch upsampled by the same factor keeps its
    embedding).
    """
    if mode not in PATCH_RESAMPLE:
        raise ValueError(f"MODEL.VFM.PATCH_RESAMPLE {mode!r} is not one of {PATCH_RESAMPLE}")
    weight = weight.float()
    if mode == "flexivit":
        if tuple(weight.shape[-2:]) == (patch_size, patch_size):
            return weight
        return resample_patch_embed(weight, [patch_size, patch_size], interpolation="bicubic")
    return F.interpolate(weight, size=(patch_size, patch_size), mode="bicubic", align_corners=False)


def _resize_grid(tokens: torch.Tensor, grid: tuple[int, int], mode: str) -> torch.Tensor:
    """(1, n*n, C) patch entries of a square grid -> (1, h*w, C) at ``grid`` (``mode`` interp)."""
    side = int(round(tokens.shape[1] ** 0.5))
    if side * side != tokens.shape[1]:
        raise ValueError(f"position embedding with {tokens.shape[1]} patch entries is not square")
    nchw = tokens.reshape(1, side, side, -1).permute(0, 3, 1, 2)
    resized = F.interpolate(nchw, size=grid, mode=mode, align_corners=False)
    return resized.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], -1)


def _convert_dinov2(
    state: _StateDict, patch_size: int, grid: tuple[int, int], mode: str
) -> _StateDict:
    """``dinov2_vit*_pretrain.pth``: pos_embed (1, 1 + n*n, C) bicubic to ``grid``."""
    state = dict(state)
    state["patch_embed.proj.weight"] = resize_patch_kernel(
        state["patch_embed.proj.weight"], patch_size, mode
    )
    pos = state["pos_embed"]
    state["pos_embed"] = torch.cat([pos[:, :1], _resize_grid(pos[:, 1:], grid, "bicubic")], dim=1)
    return state


def _convert_eva02(
    state: _StateDict, patch_size: int, grid: tuple[int, int], mode: str
) -> _StateDict:
    """``eva02_L_pt_m38m_p14to16.pt``: rotary buffers dropped, pos_embed bicubic to ``grid``."""
    state = {k: v for k, v in state.items() if "rope" not in k}
    state["patch_embed.proj.weight"] = resize_patch_kernel(
        state["patch_embed.proj.weight"], patch_size, mode
    )
    if "pos_embed" in state:
        pos = state["pos_embed"].float()
        state["pos_embed"] = torch.cat(
            [pos[:, :1], _resize_grid(pos[:, 1:], grid, "bicubic")], dim=1
        )
    return state


def _convert_clip(
    state: _StateDict, patch_size: int, grid: tuple[int, int], mode: str
) -> _StateDict:
    """OpenAI CLIP image tower: positional_embedding (1 + n*n, C) bilinear to ``grid``."""
    state = dict(state)
    pos = state["positional_embedding"]
    spatial = _resize_grid(pos[None, 1:], grid, "bilinear")[0]
    state["positional_embedding"] = torch.cat([pos[:1], spatial], dim=0)
    state["conv1.weight"] = resize_patch_kernel(state["conv1.weight"], patch_size, mode)
    return state


def _convert_sam(
    state: _StateDict, patch_size: int, grid: tuple[int, int], mode: str
) -> _StateDict:
    """SAM image encoder: pos_embed (1, n, n, C) bicubic to (1, h, w, C)."""
    state = dict(state)
    state["patch_embed.proj.weight"] = resize_patch_kernel(
        state["patch_embed.proj.weight"], patch_size, mode
    )
    pos = state["pos_embed"].permute(0, 3, 1, 2)
    pos = F.interpolate(pos, size=grid, mode="bicubic", align_corners=False)
    state["pos_embed"] = pos.permute(0, 2, 3, 1)
    return state


_CONVERTERS: dict[str, Callable[[_StateDict, int, tuple[int, int], str], _StateDict]] = {
    "dinov2": _convert_dinov2,
    "eva02": _convert_eva02,
    "clip": _convert_clip,
    "sam": _convert_sam,
}

# entries each family's ViT cannot do without (a file lacking one is not of that family)
_REQUIRED = {
    "dinov2": ("patch_embed.proj.weight", "pos_embed"),
    "eva02": ("patch_embed.proj.weight",),
    "clip": ("conv1.weight", "positional_embedding"),
    "sam": ("patch_embed.proj.weight", "pos_embed"),
}


def _is_torchscript(path: str) -> bool:
    """Whether ``path`` is a TorchScript archive (a zip file holding serialized code)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in name for name in archive.namelist())


def read_official_file(path: str, family: str, *, key: str = "MODEL.VFM.WEIGHTS") -> _StateDict:
    """The ViT entries of an official (or already converted) weight file of ``family``.

    DINOv2: the plain state dict. EVA02: unwraps ``{"model"|"module": ...}``. CLIP: OpenAI's
    TorchScript archive (read with ``torch.jit.load``, no network) or a state dict; the
    ``visual.`` entries in float32. SAM: the ``image_encoder.`` entries of a SAM checkpoint.

    Raises:
        FileNotFoundError: naming ``path`` (MODEL.VFM.WEIGHTS).
        ValueError: when the file lacks the entries the family needs.
    """
    if family not in _CONVERTERS:
        raise ValueError(f"unknown VFM family {family!r} (one of {', '.join(FAMILIES)})")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"MODEL.VFM.WEIGHTS file not found: {path}")
    info = check_weights_file(path, key=key)
    if _is_torchscript(path):
        with reading_weights(path, key=key), warnings.catch_warnings():
            # OpenAI's release is TorchScript: torch.jit.load is the only reader there is
            warnings.filterwarnings("ignore", message=".*torch.jit.load.*", category=FutureWarning)
            state = torch.jit.load(path, map_location="cpu").float().state_dict()
    elif info.format == "safetensors":
        state = load_safetensors_weights(path, key=key)
    else:
        state = load_torch_weights(path, key=key)
    for key in ("model", "module", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"MODEL.VFM.WEIGHTS {path} does not hold a state dict")
    if family == "clip" and any(k.startswith("visual.") for k in state):
        state = {
            k[len("visual.") :]: v.float() for k, v in state.items() if k.startswith("visual.")
        }
    if family == "sam" and any("image_encoder." in k for k in state):
        state = {
            k.replace("image_encoder.", ""): v for k, v in state.items() if "image_encoder." in k
        }
    missing = [k for k in _REQUIRED[family] if k not in state]
    if missing:
        raise ValueError(
            f"MODEL.VFM.WEIGHTS {path} is not a {family} weight file: it lacks {', '.join(missing)}"
        )
    return state


def convert_official_state(
    state: _StateDict,
    family: str,
    *,
    patch_size: int = 16,
    grid: tuple[int, int] = (32, 32),
    patch_resample: str = "bicubic",
) -> _StateDict:
    """``state`` (from :func:`read_official_file`) converted as DGVFM's converter of ``family``.

    Args:
        patch_size: patch size the ViT runs at (the converters' ``--kernel``).
        grid: position grid (h, w) = the converters' ``(--height, --width) / kernel``.
        patch_resample: "bicubic" (the converters) or "flexivit".
    """
    return _CONVERTERS[family](state, patch_size, tuple(grid), patch_resample)
