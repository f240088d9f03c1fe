"""The export form of DINOv2's position embedding (resampling matrices, the n x n grid chosen
by value) equals the eager form: F.interpolate by scale factor, the embedding kept on its grid."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from clouds.modeling.backbone.vfm import dinov2
from clouds.modeling.backbone.vfm.embed import bicubic_resize_by_scale


@pytest.mark.parametrize("size", [(3, 5), (6, 2), (4, 4), (9, 7)])
def test_bicubic_resize_by_scale_matches_interpolate(size) -> None:
    x = torch.randn(1, 8, 4, 4)
    scale = ((size[0] + 0.1) / 4, (size[1] + 0.1) / 4)
    expected = F.interpolate(x, scale_factor=scale, mode="bicubic")
    torch.testing.assert_close(bicubic_resize_by_scale(x, size, scale), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("grid", [(4, 4), (3, 5), (6, 6)])
@pytest.mark.parametrize("offset", [0.1, 0.0])
def test_exportable_pos_embed_matches_eager(grid, offset, monkeypatch) -> None:
    pos_embed = torch.randn(1, 1 + 4 * 4, 8)
    expected = dinov2.dinov2_pos_embed(pos_embed, grid, offset)
    monkeypatch.setattr(torch.compiler, "is_exporting", lambda: True)
    got = dinov2.dinov2_pos_embed(pos_embed, grid, offset)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
