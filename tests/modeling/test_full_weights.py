"""tools/generate_full_weights.py (clouds.modeling.checkpoint.full_weights): a Rein DINOv2 run's
checkpoint and the official DINOv2 file become one file in the original DGVFM's key layout that
MODEL.WEIGHTS loads back into the whole model."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
import timm
import torch

from clouds.config import CfgNode, load_config
from clouds.modeling import build_model
from clouds.modeling.backbone.vfm.convert_files import convert_dinov2_file
from clouds.modeling.checkpoint import load_model_weights, save_checkpoint

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def official(tmp_path_factory) -> Path:
    """A tiny random DINOv2 (width 32, patch 14, 4 x 4 grid) in the official file's format."""
    vit = timm.create_model(
        "vit_large_patch14_dinov2.lvd142m",
        pretrained=False,
        num_classes=0,
        img_size=56,
        embed_dim=32,
        depth=4,
        num_heads=2,
    )
    state = {**vit.state_dict(), "mask_token": torch.zeros(1, 32)}
    path = tmp_path_factory.mktemp("official") / "dinov2_vitl14_pretrain.pth"
    torch.save(state, path)
    return path


def _cfg(official: Path, extra: tuple[str, ...] = ()) -> CfgNode:
    return load_config(
        str(REPO / "configs/dg/gta2citys/dg_rein_dinov2_linearhead.yaml"),
        [
            "MODEL.DEVICE", "cpu", "MODEL.VFM.WEIGHTS", str(official), "MODEL.VFM.TINY", "True",
            "MODEL.VFM.TINY_WIDTH", "32", "MODEL.VFM.TINY_HEADS", "2", "MODEL.VFM.TINY_DEPTH", "4",
            "MODEL.VFM.OUT_INDICES", "[0, 1, 2, 3]", "MODEL.REIN.TOKEN_LENGTH", "6",
            "MODEL.REIN.LORA_DIM", "4", "MODEL.VFM_HEAD.HIDDEN_DIM", "128", *extra,
        ],
    )  # fmt: skip


def _trained_model(seed: int, cfg: CfgNode) -> torch.nn.Module:
    """The model of ``cfg`` with its trainable tensors drawn from ``seed`` (a 'trained' run)."""
    model = build_model(cfg)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.copy_(torch.randn(param.shape, generator=generator))
    return model


def _tool(argv: list[str]) -> int:
    tool = runpy.run_path(str(REPO / "tools" / "generate_full_weights.py"), run_name="tool")
    return tool["main"](argv)


def test_written_file_holds_the_whole_model_and_loads_through_model_weights(
    official: Path, tmp_path: Path
) -> None:
    cfg = _cfg(official)
    trained = _trained_model(0, cfg)
    save_checkpoint(tmp_path / "rein.pth", trained, cfg)
    out = tmp_path / "dinov2_segmentor.pth"
    argv = ["--dinov2_segmentor_path", str(out), "--backbone", str(official)]
    assert _tool([*argv, "--rein_head", str(tmp_path / "rein.pth")]) == 0

    payload = torch.load(out, weights_only=True)
    assert set(payload) == {"meta", "state_dict"}
    state = payload["state_dict"]
    converted = convert_dinov2_file(str(official))  # patch 16, 32 x 32 grid, as the original's
    assert state["backbone.pos_embed"].shape[1] == 1 + 32 * 32
    for key, value in converted.items():
        assert torch.equal(state[f"backbone.{key}"], value), key
    trainable = {k: p for k, p in trained.named_parameters() if p.requires_grad}
    assert any(k.startswith("backbone.reins.learnable_tokens_a") for k in state)
    assert set(trainable) <= set(state)

    fresh = _trained_model(1, cfg)
    fmt = load_model_weights(fresh, out)
    assert fmt.name == "original DGVFM (mmengine)"
    expected = trained.state_dict()
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, expected[key]), key


def test_an_existing_file_is_left_as_it_is(official: Path, tmp_path: Path) -> None:
    out = tmp_path / "dinov2_segmentor.pth"
    out.write_bytes(b"kept")
    argv = ["--dinov2_segmentor_path", str(out), "--backbone", str(official)]
    assert _tool([*argv, "--rein_head", str(tmp_path / "missing.pth")]) == 0
    assert out.read_bytes() == b"kept"


def test_a_checkpoint_without_rein_is_refused(official: Path, tmp_path: Path, capsys) -> None:
    cfg = _cfg(
        official,
        ("MODEL.REIN.ENABLED", "False", "MODEL.LORA.ENABLED", "True", "MODEL.LORA.RANK", "2"),
    )
    save_checkpoint(tmp_path / "lora.pth", build_model(cfg), cfg)
    out = tmp_path / "dinov2_segmentor.pth"
    argv = ["--dinov2_segmentor_path", str(out), "--backbone", str(official)]
    assert _tool([*argv, "--rein_head", str(tmp_path / "lora.pth")]) != 0
    assert "holds no Rein entries" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("key", ["backbone.vit.blocks.0.norm1.weight", "decode_head.conv_seg.bias"])
def test_our_names_become_the_originals(key: str) -> None:
    from clouds.modeling.checkpoint.full_weights import original_layout

    (name,) = original_layout({key: torch.zeros(1)})
    assert name == key.replace("backbone.vit.", "backbone.")
