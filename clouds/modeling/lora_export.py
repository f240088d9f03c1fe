"""Export a trained VFM + LoRA model with the LoRA branches merged into the base weights.

The export folder holds ``vfm_merged.pth`` (the ViT's own state dict, loadable through
MODEL.VFM.WEIGHTS), ``model_merged.pth`` (a CLOUDS checkpoint of the heads) and ``config.yaml``
(the training config with LoRA off and both paths set). The exported model is rebuilt from that
config and must give the outputs of the unmerged model.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass

import torch

from clouds.config import CfgNode, load_config
from clouds.modeling.backbone.vfm.lora import lora_layers, merge_lora
from clouds.modeling.build import build_model
from clouds.modeling.checkpoint import (
    load_checkpoint,
    load_trainable_state_dict,
    save_checkpoint,
    trainable_state_dict,
)
from clouds.modeling.meta_arch.vfm_segmentor import VFMSegmentor
from clouds.utils.io import atomic_path

__all__ = ["ExportResult", "export_merged_model", "max_output_difference"]


@dataclass(frozen=True)
class ExportResult:
    """Paths written by :func:`export_merged_model` and the check it passed."""

    config: str
    vfm_weights: str
    checkpoint: str
    merged_layers: int
    max_abs_diff: float


@torch.no_grad()
def max_output_difference(
    a: VFMSegmentor, b: VFMSegmentor, *, size: int = 64, seed: int = 0
) -> float:
    """Largest absolute difference of backbone features, light-head and refinement-head logits
    of two models on one random (1, 3, size, size) image (both in eval mode)."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(1, 3, size, size, generator=generator).to(a.device)
    a.eval()
    b.eval()
    diffs = [
        (fa - fb).abs().max().item()
        for fa, fb in zip(a.backbone(images).values(), b.backbone(images).values())
    ]
    coarse = a.whole_logits(images)
    diffs.append((coarse - b.whole_logits(images)).abs().max().item())
    if a.aux_decoder is not None:
        refined_a = a.refined_logits(images, coarse)
        diffs.append((refined_a - b.refined_logits(images, coarse)).abs().max().item())
    return max(diffs)


def export_merged_model(
    cfg: CfgNode,
    weights: dict[str, torch.Tensor],
    output_dir: str,
    *,
    atol: float = 1e-4,
    check_size: int = 64,
) -> ExportResult:
    """Merge the LoRA of the model of ``cfg`` with trained ``weights`` (its trainable state
    dict: LoRA and heads) and write the export to ``output_dir``.

    Raises:
        ValueError: when the model has no LoRA, or the exported model's outputs differ from the
            unmerged ones by more than ``atol``.
    """
    model = build_model(cfg)
    if not isinstance(model, VFMSegmentor):
        raise ValueError(f"{cfg.MODEL.META_ARCHITECTURE} is not a VFMSegmentor: nothing to merge")
    if not lora_layers(model.backbone.vit):
        raise ValueError("The model has no LoRA layers (MODEL.LORA.ENABLED is off)")
    load_trainable_state_dict(model, weights, source="--weights")
    model.eval()

    merged = copy.deepcopy(model)
    merged_layers = merge_lora(merged.backbone.vit)
    os.makedirs(output_dir, exist_ok=True)
    vfm_path = os.path.abspath(os.path.join(output_dir, "vfm_merged.pth"))
    with atomic_path(vfm_path) as tmp:
        torch.save(merged.backbone.vit.state_dict(), tmp)

    export_cfg = cfg.clone()
    export_cfg.defrost()
    export_cfg.MODEL.LORA.ENABLED = False
    export_cfg.MODEL.VFM.WEIGHTS = vfm_path
    export_cfg.MODEL.WEIGHTS = os.path.abspath(os.path.join(output_dir, "model_merged.pth"))
    exported = build_model(export_cfg)
    heads = {k: v for k, v in merged.state_dict().items() if k in trainable_state_dict(exported)}
    load_trainable_state_dict(exported, heads, source="merged model")
    save_checkpoint(export_cfg.MODEL.WEIGHTS, exported, export_cfg)
    config_path = os.path.join(output_dir, "config.yaml")
    with atomic_path(config_path) as tmp, open(tmp, "w") as f:
        f.write(export_cfg.dump())

    reloaded = build_model(load_config(config_path))
    load_checkpoint(export_cfg.MODEL.WEIGHTS, reloaded)
    diff = max_output_difference(model, reloaded, size=check_size)
    if diff > atol:
        raise ValueError(
            f"The merged model differs from the unmerged one by {diff:.3g} (> {atol}); "
            f"export in {output_dir} is not faithful"
        )
    return ExportResult(
        config=config_path,
        vfm_weights=vfm_path,
        checkpoint=export_cfg.MODEL.WEIGHTS,
        merged_layers=merged_layers,
        max_abs_diff=diff,
    )
