"""Build a frozen Segment Anything model from a model type and a checkpoint path.

Model types: "vit_b", "vit_l", "vit_h" (segment-anything's ``sam_model_registry``), "vit_t"
(MobileSAM, the original CLOUDS default; its code is the ``mobile_sam`` package, published on
PyPI as ``mobilesam-mirror``) and "tiny" (a few-thousand-parameter SAM with the same modules,
for tests and the quickstart). Every type is built without weights, then the checkpoint (a
state dict saved with ``torch.save``) is loaded through :func:`load_sam_checkpoint`, so the tiny
test model goes through the same loading path as the real ones.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial

import torch
from segment_anything import sam_model_registry
from segment_anything.modeling import (
    ImageEncoderViT,
    MaskDecoder,
    PromptEncoder,
    Sam,
    TwoWayTransformer,
)
from torch import nn

from clouds.utils.weights_file import load_torch_weights

__all__ = [
    "SAM_MODEL_TYPES",
    "SamCheckpointError",
    "build_sam",
    "build_tiny_sam",
    "load_sam_checkpoint",
]

SAM_MODEL_TYPES = ("vit_t", "vit_b", "vit_l", "vit_h", "tiny", "toy")
# What to do about a bad SAM checkpoint file.
SAM_TODO = "Download it again (INSTALL.md lists every SAM file, its source and size)"


class SamCheckpointError(RuntimeError):
    """A SAM checkpoint that is missing, unreadable or does not fit the model type."""


def build_tiny_sam(*, img_size: int = 128) -> Sam:
    """A tiny random-init SAM (patch 16, 2 blocks of width 32, 32-d prompts) for tests.

    Args:
        img_size: side of the square encoder input; images are resized to this long side.
    """
    prompt_dim = 32
    grid = img_size // 16
    return Sam(
        image_encoder=ImageEncoderViT(
            img_size=img_size,
            patch_size=16,
            embed_dim=32,
            depth=2,
            num_heads=2,
            mlp_ratio=2.0,
            out_chans=prompt_dim,
            norm_layer=partial(nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            window_size=4,
            global_attn_indexes=(1,),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=prompt_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(img_size, img_size),
            mask_in_chans=8,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=2, embedding_dim=prompt_dim, mlp_dim=64, num_heads=2
            ),
            transformer_dim=prompt_dim,
            iou_head_depth=2,
            iou_head_hidden_dim=32,
        ),
    )


def _mobile_sam_builder() -> Callable[..., nn.Module]:
    try:
        from mobile_sam import sam_model_registry as mobile_registry
    except ImportError as e:
        raise ImportError(
            "MODEL.CLOUDS.SAM.MODEL_TYPE 'vit_t' (MobileSAM) needs the `mobile_sam` package: "
            "`pip install mobilesam-mirror` (Apache-2.0 packaging of MobileSAM), or choose "
            "vit_b / vit_l / vit_h"
        ) from e
    return mobile_registry["vit_t"]


def load_sam_checkpoint(model: nn.Module, checkpoint: str) -> None:
    """Load a ``torch.save``-d state dict into ``model`` (strict), with errors naming the file.

    Raises:
        SamCheckpointError: a missing file, or one that does not fit the model.
        WeightsFileError: a truncated, corrupt or foreign file (one line naming
            MODEL.CLOUDS.SAM.CHECKPOINT, :mod:`clouds.utils.weights_file`).
    """
    if not os.path.isfile(checkpoint):
        raise SamCheckpointError(f"MODEL.CLOUDS.SAM.CHECKPOINT not found: {checkpoint}")
    state = load_torch_weights(checkpoint, key="MODEL.CLOUDS.SAM.CHECKPOINT", todo=SAM_TODO)
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise SamCheckpointError(f"SAM checkpoint {checkpoint} does not hold a state dict")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise SamCheckpointError(
            f"SAM checkpoint {checkpoint} does not fit the model type (check "
            f"MODEL.CLOUDS.SAM.MODEL_TYPE): {e}"
        ) from e


def build_sam(
    model_type: str, checkpoint: str = "", *, device: torch.device | str = "cpu"
) -> nn.Module:
    """A frozen SAM of ``model_type`` in eval mode, weights from ``checkpoint``.

    Args:
        model_type: one of :data:`SAM_MODEL_TYPES`.
        checkpoint: path of the state dict; "" keeps the random initialisation (tests only).
        device: where the model lives.
    """
    if model_type == "tiny":
        model: nn.Module = build_tiny_sam()
    elif model_type == "toy":  # colour segments of the image (clouds.sam.toy_sam), no weights
        from clouds.sam.toy_sam import build_toy_sam

        model = build_toy_sam()
    elif model_type == "vit_t":
        model = _mobile_sam_builder()(checkpoint=None)
    elif model_type in sam_model_registry:
        model = sam_model_registry[model_type](checkpoint=None)
    else:
        raise ValueError(
            f"MODEL.CLOUDS.SAM.MODEL_TYPE must be one of {SAM_MODEL_TYPES}, got {model_type!r}"
        )
    if checkpoint:
        load_sam_checkpoint(model, checkpoint)
    model.eval().requires_grad_(False)
    return model.to(device)
