"""tools/merge_lora.py: the exported (merged) model reloads from its config with equal outputs."""

from __future__ import annotations

import runpy
import sys
import types
from pathlib import Path

import pytest
import torch

from clouds.config import load_config
from clouds.modeling import build_model
from clouds.modeling.backbone.vfm.lora import lora_layers
from clouds.modeling.checkpoint import (
    UntrustedCheckpointError,
    load_checkpoint,
    save_checkpoint,
    trainable_state_dict,
)
from clouds.modeling.lora_export import export_merged_model, max_output_difference
from tests.modeling.vfm_test_utils import tiny_vfm_cfg

REPO = Path(__file__).resolve().parents[2]


def _cfg_with_saved_base(name: str, folder: Path):
    """Tiny config whose random base ViT is read from a file, so every build shares it."""
    base = build_model(tiny_vfm_cfg(name, ["MODEL.LORA.ENABLED", "False"]))
    torch.save(base.backbone.vit.state_dict(), folder / "base_vit.pth")
    return tiny_vfm_cfg(name, ["MODEL.VFM.WEIGHTS", str(folder / "base_vit.pth")])


def _trained_checkpoint(cfg, path: Path) -> torch.nn.Module:
    """A model whose LoRA and head weights are random (as if trained), saved to ``path``."""
    model = build_model(cfg)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.normal_(std=0.1)
    save_checkpoint(path, model, cfg)
    return model.eval()


@pytest.mark.parametrize("name", ["CLIPViT", "SAMViT"])
def test_export_matches_unmerged_model(tmp_path: Path, name: str) -> None:
    cfg = _cfg_with_saved_base(name, tmp_path)
    model = _trained_checkpoint(cfg, tmp_path / "model.pth")
    weights = trainable_state_dict(model)
    result = export_merged_model(cfg, weights, str(tmp_path / "export"))
    assert result.merged_layers == len(lora_layers(model.backbone.vit))
    assert result.max_abs_diff < 1e-4

    exported_cfg = load_config(result.config)
    assert not exported_cfg.MODEL.LORA.ENABLED
    exported = build_model(exported_cfg)
    load_checkpoint(exported_cfg.MODEL.WEIGHTS, exported)
    assert not lora_layers(exported.backbone.vit)
    assert max_output_difference(model, exported) < 1e-4
    # the LoRA weights matter: the base model alone gives other outputs
    base_cfg = cfg.clone()
    base_cfg.MODEL.LORA.ENABLED = False
    base = build_model(base_cfg)
    load_checkpoint(exported_cfg.MODEL.WEIGHTS, base)
    assert max_output_difference(model, base) > 1e-3


def test_merge_lora_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _cfg_with_saved_base("DINOv2", tmp_path)
    config_file = tmp_path / "train.yaml"
    config_file.write_text(cfg.dump())
    _trained_checkpoint(cfg, tmp_path / "model.pth")
    argv = [
        "merge_lora.py",
        "--config-file",
        str(config_file),
        "--weights",
        str(tmp_path / "model.pth"),
        "--output",
        str(tmp_path / "out"),
    ]
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO / "tools" / "merge_lora.py"), run_name="__main__")
    assert exit_info.value.code == 0
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "config.yaml",
        "model_merged.pth",
        "vfm_merged.pth",
    }


def _save_as_original(model: torch.nn.Module, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``model`` in the layout the original DGVFM runner writes: peft backbone keys and a
    ``message_hub`` holding a pickled ``mmengine.logging.history_buffer.HistoryBuffer``."""
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith("backbone.vit."):
            key = "backbone.model.base_model.model." + key[len("backbone.vit.") :]
        state[key] = value
    module = types.ModuleType("mmengine.logging.history_buffer")
    history_buffer = type("HistoryBuffer", (), {"__module__": module.__name__})
    module.HistoryBuffer = history_buffer
    with monkeypatch.context() as patch:
        for name in ("mmengine", "mmengine.logging", module.__name__):
            patch.setitem(sys.modules, name, module)
        payload = {"meta": {"iter": 40}, "state_dict": state, "message_hub": [history_buffer()]}
        torch.save(payload, path)


def test_merge_lora_tool_reads_original_checkpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _cfg_with_saved_base("DINOv2", tmp_path)
    config_file = tmp_path / "train.yaml"
    config_file.write_text(cfg.dump())
    model = _trained_checkpoint(cfg, tmp_path / "model.pth")
    _save_as_original(model, tmp_path / "original.pth", monkeypatch)
    tool = runpy.run_path(str(REPO / "tools" / "merge_lora.py"), run_name="tool")
    argv = ["--config-file", str(config_file), "--weights", str(tmp_path / "original.pth")]
    with pytest.raises(UntrustedCheckpointError, match="--trust-pickle|TRUST_PICKLE"):
        tool["main"]([*argv, "--output", str(tmp_path / "refused")])
    assert tool["main"]([*argv, "--output", str(tmp_path / "out"), "--trust-pickle"]) == 0
    exported_cfg = load_config(str(tmp_path / "out" / "config.yaml"))
    exported = build_model(exported_cfg)
    load_checkpoint(exported_cfg.MODEL.WEIGHTS, exported)
    assert max_output_difference(model, exported) < 1e-4
