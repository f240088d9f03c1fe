"""Parameter counts per component, the model_summary tool, and the full-size model build."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest
from torch import nn

from clouds.config import load_config
from clouds.modeling import build_model
from clouds.modeling.summary import format_parameter_counts, parameter_counts
from tests.modeling.model_utils import REPO, TOY_CONFIG


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "model_summary", REPO / "tools" / "model_summary.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_counts_by_hand() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.Sequential(nn.ReLU(), nn.Linear(4, 2)))
    model[0].requires_grad_(False)
    rows = {r.name: r for r in parameter_counts(model, max_depth=2)}
    assert set(rows) == {"", "0", "1", "1.1"}  # the ReLU has no parameters
    assert (rows[""].frozen, rows[""].trainable) == (16, 10)
    assert (rows["0"].frozen, rows["0"].trainable) == (16, 0)
    assert (rows["1.1"].frozen, rows["1.1"].trainable, rows["1.1"].total) == (0, 10, 10)
    assert set(r.name for r in parameter_counts(model, max_depth=1)) == {"", "0", "1"}
    table = format_parameter_counts(parameter_counts(model))
    assert "model (total)" in table and "16" in table and "10" in table


def test_tool_prints_counts_with_random_weights(capsys: pytest.CaptureFixture[str]) -> None:
    assert _tool().main(["--config-file", str(TOY_CONFIG), "--depth", "1"]) == 0
    out = capsys.readouterr().out
    assert "random weights" in out
    assert "backbone" in out and "sem_seg_head" in out


def test_tool_reports_a_bad_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert _tool().main(["--config-file", "no/such.yaml"]) == 2
    assert "no/such.yaml" in capsys.readouterr().err


def test_full_size_convnext_large_model_builds() -> None:
    cfg = load_config(
        str(REPO / "configs" / "warmup" / "gta" / "train_gta.yaml"),
        ["MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS", ""],
    )
    model = build_model(cfg)
    shapes = model.backbone.output_shape()
    assert [s.channels for s in shapes.values()] == [192, 384, 768, 1536]
    assert [s.stride for s in shapes.values()] == [4, 8, 16, 32]
    assert model.backbone.embed_dim == 768
    predictor = model.sem_seg_head.predictor
    assert predictor.query_feat.num_embeddings == 100
    assert predictor.num_layers == 9
    rows = {r.name: r for r in parameter_counts(model, max_depth=1)}
    assert rows["backbone"].trainable == 0 and rows["backbone"].frozen > 300_000_000
    assert rows["sem_seg_head"].frozen == 0 and rows["sem_seg_head"].trainable > 10_000_000
    # the linear class head (this config's, as the original's) leaves the void embedding unused
    assert rows[""].trainable == rows["sem_seg_head"].trainable
