"""Coarse-to-fine inference and the other two-stage / sliding modes as DGVFM's
``MsVFMEncoderDecoder``.

Parity: ``coarse_to_fine.pt`` holds the original's ``ms_inference`` (test_cfg threadshod 0.968,
conf 0.8, crop 48, stride 32; stage 1 at its fixed 512x1024), ``hr_slide``, ``lr_slide`` and
``msfull_slide`` (mask disabled) logits, every 4th pixel, on a 64x128 image (flat left half,
noisy right half) for a model of: a stand-in backbone (16x16 average pool, per-map 1x1 conv
3 -> 32 + tanh; a fixed function, since the merge logic is what is tested), the original
LinearHead (channels 8) and VFMHead (channels 128, 2 heads x 16, depth 1, mask 0.2), all
weights from ``fill_state(seed 3)`` with the LinearHead classifier x 120 so that the left
windows are sure and the right ones refined (the windows it refined are stored too).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from clouds.modeling.heads.vfmnet import VFMNet
from clouds.modeling.inference import InferenceSettings, coarse_to_fine_inference, infer_logits
from clouds.modeling.meta_arch.vfm_segmentor import VFMSegmentor
from tests.modeling.dgvfm_heads_utils import fill_state, load_fixture, tiny_mgrnet

NAMES = [f"vfm{i}" for i in range(4)]
MEAN, STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)


class StandIn(nn.Module):
    """The fixture's stand-in backbone: 16x16 average pool, per-map 1x1 conv + tanh."""

    size_divisibility = 16

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(3, 32, 1) for _ in range(4))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        pooled = F.avg_pool2d(x, 16)
        return {n: torch.tanh(c(pooled)) for n, c in zip(NAMES, self.convs)}


def _model(fixture: dict, mode: str) -> VFMSegmentor:
    model = VFMSegmentor(
        backbone=StandIn(),
        decode_head=VFMNet(in_features=NAMES, in_channels=32, num_classes=19),
        aux_decoder=tiny_mgrnet(num_layers=1),
        pixel_mean=MEAN,
        pixel_std=STD,
        inference=InferenceSettings(
            mode=mode, window=(48, 48), stride=(32, 32), coarse_size=(512, 1024)
        ),
    )
    assert {k: list(v.shape) for k, v in model.state_dict().items() if "pixel_" not in k} == {
        k: v for k, v in fixture["state_keys"].items() if not k.startswith("data_")
    }
    fill_state(model, 3)
    with torch.no_grad():
        model.decode_head.conv_seg.weight.mul_(fixture["scale"])
    return model.eval()


def _logits(model: VFMSegmentor, image: torch.Tensor) -> torch.Tensor:
    return infer_logits(
        model.inference_settings,
        model.normalize(image)[None],
        logits_fn=model.light_logits,
        refine_fn=model.refined_logits,
    )


def test_coarse_to_fine_equals_the_originals_ms_inference() -> None:
    fixture = load_fixture("coarse_to_fine.pt")
    model = _model(fixture, "coarse_to_fine")
    refined: list[tuple[int, int, int, int]] = []
    refine = model.refined_logits
    model.refined_logits = lambda *a: refined.append(a[0].shape) or refine(*a)
    logits = _logits(model, fixture["image"])
    assert len(refined) == 4  # the original refined the 4 right windows, the left 4 are sure
    torch.testing.assert_close(logits[..., ::4, ::4], fixture["logits"], rtol=1e-4, atol=1e-4)


def test_other_modes_equal_the_originals() -> None:
    fixture = load_fixture("coarse_to_fine.pt")
    for mode, key in [
        ("slide", "hr_slide"),
        ("hr_slide", "hr_slide"),
        ("lr_slide", "lr_slide"),
        ("msfull_slide", "msfull_slide"),
    ]:
        logits = _logits(_model(fixture, mode), fixture["image"])
        torch.testing.assert_close(logits[..., ::4, ::4], fixture[key], rtol=1e-4, atol=1e-4)


def test_sure_windows_add_their_coarse_logits_to_overlapping_refined_ones() -> None:
    """Windows 0..16 (sure) and 8..24 (unsure) overlap on 8..16: that strip is their mean."""
    coarse = torch.zeros(1, 2, 8, 24)
    coarse[:, 0, :, :16] = 10.0  # window 0..16 all sure, window 8..24 half sure

    def coarse_fn(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return coarse

    def refine_fn(window: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return torch.full_like(context, 3.0)

    out = coarse_to_fine_inference(
        coarse_fn,
        refine_fn,
        torch.zeros(1, 3, 8, 24),
        coarse_size=(8, 24),
        window=(8, 16),
        stride=(8, 8),
        confidence=0.968,
        sure_ratio=0.8,
    )
    torch.testing.assert_close(out[..., :8], coarse[..., :8])
    torch.testing.assert_close(out[..., 16:], torch.full((1, 2, 8, 8), 3.0))
    torch.testing.assert_close(out[..., 8:16], (coarse[..., 8:16] + 3.0) / 2)
