"""Real loading paths of every VFM family, exercised with tiny random models saved to disk.

Each tiny model is saved in its published layout (patch 14 for DINOv2 / EVA02 / CLIP, whole-model
key prefixes for CLIP and SAM) and loaded back through MODEL.VFM.WEIGHTS: the patch kernel must
come back resampled to 16, every other weight unchanged.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import timm
import torch
from open_clip.transformer import VisionTransformer
from safetensors.torch import save_file
from segment_anything.modeling import ImageEncoderViT
from torch import nn

from clouds.config import ConfigError
from clouds.modeling.backbone.vfm import EVA02, CLIPViT, DINOv2, SAMViT
from clouds.modeling.backbone.vfm.embed import resize_patch_kernel
from clouds.modeling.backbone.vfm.weights import hub_weights_file, resolve_weights_path
from tests.modeling.vfm_test_utils import FAMILIES, tiny_vfm_cfg


def _cfg(name: str, weights: Path):
    return tiny_vfm_cfg(name, ["MODEL.VFM.WEIGHTS", str(weights), "MODEL.LORA.ENABLED", "False"])


def _assert_loaded(model: nn.Module, saved: dict[str, torch.Tensor], patch_key: str) -> None:
    state = model.state_dict()
    torch.testing.assert_close(state[patch_key], resize_patch_kernel(saved[patch_key], 16))
    assert state[patch_key].shape[-2:] == (16, 16)
    for key, value in saved.items():
        if key != patch_key and key in state:
            assert torch.equal(state[key], value), key


@pytest.mark.parametrize("name", ["DINOv2", "EVA02"])
def test_timm_models_reload_from_folder(tmp_path: Path, name: str) -> None:
    model_id = FAMILIES[name][0]
    published = timm.create_model(
        model_id, pretrained=False, num_classes=0, embed_dim=32, depth=4, num_heads=2
    )
    assert published.patch_embed.proj.kernel_size == (14, 14)
    saved = {k: v.contiguous() for k, v in published.state_dict().items()}
    save_file(saved, str(tmp_path / "model.safetensors"))

    backbone = {"DINOv2": DINOv2, "EVA02": EVA02}[name].from_config(_cfg(name, tmp_path))
    _assert_loaded(backbone.vit, saved, "patch_embed.proj.weight")
    # the published position grid is kept; it is interpolated per input at run time
    assert torch.equal(backbone.vit.pos_embed, saved["pos_embed"])
    features = backbone(torch.randn(1, 3, 32, 64))
    assert features["vfm0"].shape == (1, 32, 2, 4)


def test_clip_reloads_from_whole_clip_checkpoint(tmp_path: Path) -> None:
    published = VisionTransformer(
        image_size=224, patch_size=14, width=32, layers=4, heads=2, mlp_ratio=4.0, output_dim=32
    )
    saved = dict(published.state_dict())
    whole = {f"visual.{k}": v for k, v in saved.items()}
    whole["token_embedding.weight"] = torch.zeros(10, 32)  # text tower entries are skipped
    torch.save(whole, tmp_path / "open_clip_pytorch_model.bin")

    backbone = CLIPViT.from_config(_cfg("CLIPViT", tmp_path / "open_clip_pytorch_model.bin"))
    _assert_loaded(backbone.vit, saved, "conv1.weight")
    assert torch.equal(
        backbone.vit.transformer.resblocks[0].attn.in_proj_weight,
        saved["transformer.resblocks.0.attn.in_proj_weight"],
    )
    assert backbone(torch.randn(1, 3, 32, 48))["vfm3"].shape == (1, 32, 2, 3)


def test_sam_reloads_encoder_from_whole_sam_checkpoint(tmp_path: Path) -> None:
    cfg = _cfg("SAMViT", tmp_path / "sam_tiny.pth")
    vfm = cfg.MODEL.VFM
    published = ImageEncoderViT(
        img_size=1024,
        patch_size=16,
        embed_dim=vfm.TINY_WIDTH,
        depth=vfm.TINY_DEPTH,
        num_heads=vfm.TINY_HEADS,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        use_rel_pos=True,
        window_size=4,
        global_attn_indexes=tuple(vfm.OUT_INDICES),
        out_chans=16,
    )
    saved = {k: v for k, v in published.state_dict().items() if not k.startswith("neck.")}
    whole = {f"image_encoder.{k}": v for k, v in published.state_dict().items()}
    whole["mask_decoder.iou_token.weight"] = torch.zeros(1, 16)
    torch.save(whole, tmp_path / "sam_tiny.pth")

    backbone = SAMViT.from_config(cfg)
    _assert_loaded(backbone.vit, saved, "patch_embed.proj.weight")
    with torch.no_grad():
        expected = published.patch_embed(torch.ones(1, 3, 32, 32))
        got = backbone.vit.patch_embed(torch.ones(1, 3, 32, 32))
    torch.testing.assert_close(got, expected)


def test_wrong_checkpoint_is_reported(tmp_path: Path) -> None:
    torch.save({"visual.unknown.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="bad.pth"):
        CLIPViT.from_config(_cfg("CLIPViT", tmp_path / "bad.pth"))


def test_missing_weights_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        resolve_weights_path(str(tmp_path / "nowhere.pth"))
    with pytest.raises(FileNotFoundError, match="holds none"):
        resolve_weights_path(str(tmp_path))


def test_local_files_only_never_downloads() -> None:
    with pytest.raises(FileNotFoundError, match="local cache"):
        hub_weights_file("clouds-tests/not-a-cached-repo", local_files_only=True)


def test_unknown_model_ids_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="open_clip"):
        CLIPViT.from_config(tiny_vfm_cfg("CLIPViT", ["MODEL.VFM.MODEL_ID", "ViT-X-99"]))
    for tag in ["", "not-a-tag"]:
        overrides = ["MODEL.VFM.TINY", "False", "MODEL.VFM.PRETRAINED_TAG", tag]
        with pytest.raises(ConfigError, match="PRETRAINED_TAG"):
            CLIPViT.from_config(tiny_vfm_cfg("CLIPViT", overrides))
    cfg = tiny_vfm_cfg("SAMViT", ["MODEL.VFM.TINY", "False", "MODEL.VFM.MODEL_ID", "vit_x"])
    with pytest.raises(ConfigError, match="vit_x"):
        SAMViT.from_config(cfg)
