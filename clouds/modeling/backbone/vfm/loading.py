"""Loading official (or converted) VFM weight files into a backbone's ViT, converted in memory."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn

from clouds.config import CfgNode, ConfigError
from clouds.modeling.backbone.vfm.convert import convert_official_state, read_official_file
from clouds.modeling.backbone.vfm.weights import resolve_weights_path

__all__ = ["ConvertSettings", "load_converted_weights", "load_vit_state"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConvertSettings:
    """How official files are converted (MODEL.VFM.PATCH_SIZE / CONVERT_SIZE / PATCH_RESAMPLE)."""

    patch_size: int
    grid: tuple[int, int]
    patch_resample: str

    @classmethod
    def from_config(cls, cfg: CfgNode) -> ConvertSettings:
        vfm = cfg.MODEL.VFM
        size = tuple(vfm.CONVERT_SIZE)
        if len(size) != 2 or any(s <= 0 or s % vfm.PATCH_SIZE for s in size):
            raise ConfigError(
                f"MODEL.VFM.CONVERT_SIZE {list(size)} must be two positive multiples of "
                f"MODEL.VFM.PATCH_SIZE {vfm.PATCH_SIZE}"
            )
        return cls(
            patch_size=vfm.PATCH_SIZE,
            grid=(size[0] // vfm.PATCH_SIZE, size[1] // vfm.PATCH_SIZE),
            patch_resample=vfm.PATCH_RESAMPLE,
        )


def load_converted_weights(
    weights: str, family: str, settings: ConvertSettings
) -> dict[str, torch.Tensor]:
    """The ViT state dict of the weight file/folder ``weights`` (MODEL.VFM.WEIGHTS), converted
    as DGVFM's converter of ``family`` does (official and already converted files alike)."""
    state = read_official_file(resolve_weights_path(weights), family)
    return convert_official_state(
        state,
        family,
        patch_size=settings.patch_size,
        grid=settings.grid,
        patch_resample=settings.patch_resample,
    )


@torch.no_grad()
def load_vit_state(
    vit: nn.Module,
    state: dict[str, torch.Tensor],
    *,
    source: str,
    resizable: tuple[str, ...] = (),
) -> None:
    """Load ``state`` into ``vit``; the parameters named in ``resizable`` (position embeddings,
    whose grid follows the conversion) are replaced when their shape differs.

    Entries ``vit`` has no place for are skipped and logged (DGVFM loads its backbones with
    ``strict=False``, ignoring them too).

    Raises:
        ValueError: naming ``source`` when ``vit`` entries are missing from ``state``.
    """
    own = vit.state_dict()
    missing = sorted(set(own) - set(state))
    if missing:
        raise ValueError(
            f"{source} does not fit the {type(vit).__name__}: missing {len(missing)} entries "
            f"({', '.join(missing[:6])})"
        )
    ignored = sorted(set(state) - set(own))
    if ignored:
        logger.info("%s: %d entries the ViT does not use: %s", source, len(ignored), ignored[:8])
    for name, value in state.items():
        if name not in own:
            continue
        module_name, _, attr = name.rpartition(".")
        module = vit.get_submodule(module_name) if module_name else vit
        current = getattr(module, attr)
        value = value.to(current.dtype)
        if current.shape == value.shape:
            current.copy_(value)
        elif name in resizable and isinstance(current, nn.Parameter):
            setattr(module, attr, nn.Parameter(value.clone(), requires_grad=current.requires_grad))
        else:
            raise ValueError(
                f"{source}: {name} has shape {list(value.shape)}, the ViT {list(current.shape)}"
            )
