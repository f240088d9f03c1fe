"""Exported graphs run by onnxruntime give the PyTorch model's predictions, at the export size
and at other image sizes (dynamic H, W), through the same input dicts."""

from __future__ import annotations

import pytest
import torch

from clouds.export.runtime import OnnxSegmenter
from clouds.modeling.pixel_decoder.ms_deform_attn import MSDeformAttn

# Measured max |ONNX - PyTorch|: CLOUDS scores 4.2e-7 (both heads), VFM probabilities 6.7e-8.
# (The linear head: tests/benchmarks/test_bench_onnx_export.py.)
ATOL = 1e-5
# (image H, W, output H, W): the first at the export's example size (96 x 128 for CLOUDS),
# the others not, with output sizes that differ from the input as in evaluation.
SIZES = [(96, 128, 96, 128), (64, 96, 69, 93), (80, 70, 85, 67)]


def _input(h: int, w: int, out_h: int, out_w: int, seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=generator)
    return {"image": image, "height": out_h, "width": out_w}


def _assert_parity(exported, sizes) -> None:
    onnx_model = OnnxSegmenter(exported.path)
    for seed, size in enumerate(sizes):
        x = _input(*size, seed=seed)
        with torch.no_grad():
            expected = exported.model([x])[0]["sem_seg"]
        got = onnx_model([x])[0]["sem_seg"]
        assert got.shape == expected.shape == (len(onnx_model.class_names), *size[2:])
        torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)


def test_clouds_text_classifier_head(clouds_text_export) -> None:
    model = clouds_text_export.model
    assert model.uses_text
    assert any(isinstance(m, MSDeformAttn) for m in model.modules())
    _assert_parity(clouds_text_export, SIZES)
    names = OnnxSegmenter(clouds_text_export.path).class_names
    assert names == model.class_names[model.test_dataset]


def test_vfm_coarse_to_fine_with_two_graphs(vfm_export) -> None:
    """TEST.MODE coarse_to_fine: light-head graph at the coarse size, refinement graph on the
    unsure windows, the driver's merging in PyTorch."""
    model = vfm_export.model
    assert model.inference_settings.mode == "coarse_to_fine"
    assert vfm_export.path.with_name("model.refine.onnx").is_file()
    _assert_parity(vfm_export, [(64, 128, 64, 128), (48, 80, 53, 77)])


@pytest.mark.parametrize("size", [(48, 64), (80, 48), (512, 512)])
def test_vfm_light_head_whole_image(vfm_export, size) -> None:
    """Whole-image light-head logits at several sizes, among them the n x n position grid of
    the DINOv2 weights (512 x 512: the embedding is used as is there)."""
    model, onnx_model = vfm_export.model, OnnxSegmenter(vfm_export.path)
    image = torch.rand(1, 3, *size) * 255
    with torch.no_grad():
        expected = model.light_logits(model.normalize(image[0])[None], size)
    torch.testing.assert_close(onnx_model.light_logits(image, size), expected, atol=1e-4, rtol=0)
