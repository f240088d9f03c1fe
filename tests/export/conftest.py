"""Exported tiny models shared by the export tests (an export takes tens of seconds): the toy
CLOUDS with its text-classifier head (exported by ``tools/export_onnx.py`` from a checkpoint) and
the toy DINOv2 + LoRA segmentor with light and refinement heads (two graphs). The toy CLOUDS with
its linear head is exported and compared by the benchmark's test
(tests/benchmarks/test_bench_onnx_export.py), which needs that export anyway."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch import nn

from clouds.config import CfgNode, load_config
from clouds.data.datasets import register_all_datasets
from clouds.export.exporter import build_export_model, export_onnx
from clouds.modeling.checkpoint import save_checkpoint

REPO = Path(__file__).resolve().parents[2]
CLOUDS_TOY = str(REPO / "configs/toy/Base-Toy-CLOUDS.yaml")
VFM_TOY = str(REPO / "configs/toy/dg_dinov2_ms_masked.yaml")
TEXT_HEAD = ["MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME", "MultiScaleMaskedTransformerDecoder"]


def load_tool(name: str) -> ModuleType:
    """A script of tools/ (or demo/) as a module."""
    spec = importlib.util.spec_from_file_location(name, REPO / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Exported:
    """A built model, its config (with the overrides) and the main graph exported from it."""

    cfg: CfgNode
    model: nn.Module
    path: Path
    opts: list[str]


def _export(tmp_path_factory: pytest.TempPathFactory, config: str, opts: list[str]) -> Exported:
    register_all_datasets()
    torch.manual_seed(0)
    cfg = load_config(config, opts)
    model = build_export_model(cfg)
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    export_onnx(cfg, path, model=model)
    return Exported(cfg, model, path, opts)


@pytest.fixture(scope="session")
def clouds_text_export(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """Trained-looking weights saved as a checkpoint, exported by the command line tool."""
    register_all_datasets()
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("onnx_text")
    cfg = load_config(CLOUDS_TOY, TEXT_HEAD)
    model = build_export_model(cfg)
    with torch.no_grad():  # a void embedding and head unlike the fresh build's
        for p in model.sem_seg_head.parameters():
            p.add_(0.05 * torch.randn_like(p))
        model.void_embedding.weight.normal_()
    save_checkpoint(folder / "model.ckpt", model, cfg)
    opts = [*TEXT_HEAD, "MODEL.WEIGHTS", str(folder / "model.ckpt")]
    argv = ["--config-file", CLOUDS_TOY, "--output", str(folder / "model.onnx"), *opts]
    assert load_tool("tools/export_onnx").main(argv) == 0
    return Exported(load_config(CLOUDS_TOY, opts), model, folder / "model.onnx", opts)


@pytest.fixture(scope="session")
def vfm_export(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    return _export(tmp_path_factory, VFM_TOY, [])
