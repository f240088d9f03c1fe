"""The exported file in the commands: demo/demo.py --backend onnxruntime and tools/eval_onnx.py
give what the PyTorch backend gives on toy data; tools/export_onnx.py refuses what it cannot
export with one message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clouds.config import load_config
from clouds.data.conversion import CONVERSIONS
from clouds.data.datasets import register_all_datasets
from clouds.data.toy import make_toy_datasets
from clouds.engine.launch import run
from tests.export.conftest import CLOUDS_TOY, REPO, load_tool


def test_demo_onnxruntime_backend_matches_pytorch(clouds_text_export, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    image = tmp_path / "street.png"
    Image.fromarray(rng.integers(0, 256, (70, 100, 3), dtype=np.uint8)).save(image)
    demo = load_tool("demo/demo")
    common = ["--config-file", CLOUDS_TOY, "--input", str(image)]
    assert demo.main([*common, "--output", str(tmp_path / "torch"), *clouds_text_export.opts]) == 0
    onnx_args = ["--backend", "onnxruntime", "--onnx-model", str(clouds_text_export.path)]
    assert demo.main([*common, "--output", str(tmp_path / "onnx"), *onnx_args]) == 0
    pred = {b: np.asarray(Image.open(tmp_path / b / "street_pred.png")) for b in ("torch", "onnx")}
    assert pred["onnx"].shape == (70, 100, 3)
    np.testing.assert_array_equal(pred["onnx"], pred["torch"])


def test_demo_refuses_a_class_list_the_graph_does_not_have(
    clouds_text_export, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    image = tmp_path / "street.png"
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(image)
    demo = load_tool("demo/demo")
    argv = ["--config-file", CLOUDS_TOY, "--input", str(image), "--output", str(tmp_path / "o")]
    onnx_args = ["--backend", "onnxruntime", "--onnx-model", str(clouds_text_export.path)]
    classes = ["--classes", "road", "sky"]
    assert demo.main([*argv, *onnx_args, *classes, *clouds_text_export.opts]) == 1
    assert "re-export with --dataset" in caplog.text


def test_eval_onnx_gives_the_pytorch_metrics(
    clouds_text_export, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_toy_datasets(tmp_path / "data", seed=1, num_images=2)
    CONVERSIONS["gta"].convert(str(tmp_path / "data"), nproc=1)
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "data"))
    register_all_datasets()
    opts = [*clouds_text_export.opts, "DATASETS.TEST", "('gta5',)"]
    cfg = load_config(CLOUDS_TOY, [*opts, "OUTPUT_DIR", str(tmp_path / "torch")])
    cfg.freeze()
    expected = run(cfg, eval_only=True)["gta5"]["sem_seg"]
    eval_onnx = load_tool("tools/eval_onnx")
    argv = ["--config-file", CLOUDS_TOY, "--onnx-model", str(clouds_text_export.path)]
    args = eval_onnx.parse_args([*argv, *opts, "OUTPUT_DIR", str(tmp_path / "onnx")])
    got = eval_onnx.evaluate(args)["gta5"]["sem_seg"]
    assert got.keys() == expected.keys()
    assert got == pytest.approx(expected, abs=1e-6, nan_ok=True)
    assert (tmp_path / "onnx" / "metrics.json").is_file()


def test_export_tool_refuses_the_geometric_ensemble(tmp_path: Path, capsys) -> None:
    argv = ["--config-file", CLOUDS_TOY, "--output", str(tmp_path / "m.onnx")]
    ensemble = ["MODEL.CLOUDS.GEOMETRIC_ENSEMBLE", "True"]
    assert load_tool("tools/export_onnx").main([*argv, *ensemble]) == 2
    assert "GEOMETRIC_ENSEMBLE" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


def test_eval_onnx_names_a_missing_file(tmp_path: Path, capsys) -> None:
    eval_onnx = load_tool("tools/eval_onnx")
    argv = ["--config-file", CLOUDS_TOY, "--onnx-model", str(tmp_path / "absent.onnx")]
    assert eval_onnx.main([*argv, "OUTPUT_DIR", str(tmp_path / "out")]) == 1
    assert "absent.onnx" in capsys.readouterr().err


def test_export_tool_refuses_a_mask_classification_vfm_head(tmp_path: Path, capsys) -> None:
    """Rein + Mask2Former resizes mask logits before the sigmoid: not exported, said so."""
    config = str(REPO / "configs/toy/dg_dinov2_mask_former.yaml")
    argv = ["--config-file", config, "--output", str(tmp_path / "m.onnx")]
    assert load_tool("tools/export_onnx").main(argv) == 2
    assert "mask-classification heads" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
