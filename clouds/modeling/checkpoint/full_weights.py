"""One file holding a whole Rein DINOv2 segmentor in the original DGVFM's key layout, as its
``tools/generate_full_weights.py`` writes it: the converted DINOv2 under ``backbone.<name>``
beside the trained ``backbone.reins.*`` and head entries (``decode_head.*``).

The trained part comes from a checkpoint of ours (any format MODEL.WEIGHTS reads: our key names
are turned into the original's) or from an original mmengine checkpoint (its keys kept). The file
is ``{"meta": {...}, "state_dict": ...}``: what MODEL.WEIGHTS reads as an original DGVFM
checkpoint, without the runner state (message hub, optimizer, schedulers) the original copies
from its input.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import torch

from clouds.modeling.backbone.vfm.convert_files import convert_dinov2_file
from clouds.modeling.checkpoint.formats import read_checkpoint
from clouds.modeling.checkpoint.mmengine import OUR_BACKBONE_PREFIX

__all__ = ["full_rein_checkpoint", "original_layout"]

_ORIGINAL_BACKBONE = "backbone."
_REIN_PREFIX = "backbone.reins."
# the original tool's conversion of the official file: patch 16, a 32 x 32 position grid
_KERNEL, _CROP = 16, 512


def original_layout(state: Mapping[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """Our key names -> the original Rein segmentor's (``backbone.vit.<name>`` ->
    ``backbone.<name>``; Rein, CLIP pyramid and head entries keep theirs)."""
    return OrderedDict(
        (_ORIGINAL_BACKBONE + k.removeprefix(OUR_BACKBONE_PREFIX), v)
        if k.startswith(OUR_BACKBONE_PREFIX)
        else (k, v)
        for k, v in state.items()
    )


def full_rein_checkpoint(
    rein_head: str | os.PathLike, backbone: str | os.PathLike, *, trust_pickle: bool = False
) -> dict[str, Any]:
    """``{"meta", "state_dict"}``: the Rein and head entries of the checkpoint ``rein_head`` and
    the official DINOv2 file ``backbone`` converted to patch 16 and a 32 x 32 grid.

    Raises:
        ValueError: ``rein_head`` holds no Rein entries (``backbone.reins.*``), or a file cannot
            be read (named).
    """
    fmt, state = read_checkpoint(rein_head, trust_pickle=trust_pickle)
    trained = OrderedDict(state) if fmt.pickled is not None else original_layout(state)
    if not any(k.startswith(_REIN_PREFIX) for k in trained):
        raise ValueError(
            f"--rein_head {rein_head} ({fmt.name}) holds no Rein entries ({_REIN_PREFIX}*): "
            f"give the checkpoint of a MODEL.REIN.ENABLED run"
        )
    converted = convert_dinov2_file(str(backbone), kernel=_KERNEL, height=_CROP, width=_CROP)
    full = OrderedDict((_ORIGINAL_BACKBONE + k, v) for k, v in converted.items())
    full.update(trained)
    meta = {"source": os.fspath(rein_head), "backbone": os.fspath(backbone), "format": fmt.name}
    return {"meta": meta, "state_dict": full}
