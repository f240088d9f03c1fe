"""Exported tiny models shared by the export tests (each export takes seconds): the toy CLOUDS
with its linear and its text-classifier head, and the toy DINOv2 + LoRA segmentor with light and
refinement heads (two graphs)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from clouds.config import CfgNode, load_config
from clouds.data.datasets import register_all_datasets
from clouds.export.exporter import build_export_model, export_onnx

REPO = Path(__file__).resolve().parents[2]
CLOUDS_TOY = str(REPO / "configs/toy/Base-Toy-CLOUDS.yaml")
VFM_TOY = str(REPO / "configs/toy/dg_dinov2_ms_masked.yaml")
TEXT_HEAD = ["MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME", "MultiScaleMaskedTransformerDecoder"]


@dataclass
class Exported:
    """A built model, its config and the main graph exported from it."""

    cfg: CfgNode
    model: nn.Module
    path: Path


def _export(tmp_path_factory: pytest.TempPathFactory, config: str, opts: list[str]) -> Exported:
    register_all_datasets()
    torch.manual_seed(0)
    cfg = load_config(config, opts)
    model = build_export_model(cfg)
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    export_onnx(cfg, path, model=model)
    return Exported(cfg, model, path)


@pytest.fixture(scope="session")
def clouds_text_export(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    return _export(tmp_path_factory, CLOUDS_TOY, TEXT_HEAD)


@pytest.fixture(scope="session")
def clouds_linear_export(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    return _export(tmp_path_factory, CLOUDS_TOY, [])


@pytest.fixture(scope="session")
def vfm_export(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    return _export(tmp_path_factory, VFM_TOY, [])
