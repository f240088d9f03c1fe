import math

import pytest
import torch

from clouds.modeling.pixel_decoder.ms_deform_attn import MSDeformAttn, ms_deform_attn_core

SHAPES = [(3, 4), (2, 5), (1, 1)]


def _bilinear(value_l: torch.Tensor, h: int, w: int, x: float, y: float) -> torch.Tensor:
    """Value (H*W, D) at normalised (x, y), zero outside, pixel centres at (i + 0.5) / size."""
    px, py = x * w - 0.5, y * h - 0.5
    x0, y0 = math.floor(px), math.floor(py)
    out = torch.zeros(value_l.shape[-1], dtype=value_l.dtype)
    for xi, yi in [(x0, y0), (x0 + 1, y0), (x0, y0 + 1), (x0 + 1, y0 + 1)]:
        if 0 <= xi < w and 0 <= yi < h:
            weight = (1 - abs(px - xi)) * (1 - abs(py - yi))
            out += weight * value_l[yi * w + xi]
    return out


def _reference(value, shapes, locations, weights) -> torch.Tensor:
    n, _, m, d = value.shape
    _, lq, _, num_levels, p, _ = locations.shape
    starts = [0]
    for h, w in shapes:
        starts.append(starts[-1] + h * w)
    out = torch.zeros(n, lq, m, d, dtype=value.dtype)
    for b in range(n):
        for q in range(lq):
            for head in range(m):
                for lvl, (h, w) in enumerate(shapes):
                    value_l = value[b, starts[lvl] : starts[lvl + 1], head]
                    for pt in range(p):
                        x, y = locations[b, q, head, lvl, pt].tolist()
                        out[b, q, head] += weights[b, q, head, lvl, pt] * _bilinear(
                            value_l, h, w, x, y
                        )
    return out.flatten(2)


def _inputs(n=2, lq=3, m=2, d=3, p=2):
    s = sum(h * w for h, w in SHAPES)
    value = torch.randn(n, s, m, d, dtype=torch.float64)
    # Many points fall outside [0, 1] (partially or completely outside the maps).
    locations = torch.rand(n, lq, m, len(SHAPES), p, 2, dtype=torch.float64) * 1.6 - 0.3
    weights = torch.rand(n, lq, m, len(SHAPES), p, dtype=torch.float64)
    return value, locations, weights


def test_core_matches_per_point_bilinear_reference():
    value, locations, weights = _inputs()
    spatial_shapes = torch.tensor(SHAPES, dtype=torch.int64)
    out = ms_deform_attn_core(value, spatial_shapes, locations, weights)
    assert out.shape == (2, 3, 2 * 3)
    torch.testing.assert_close(out, _reference(value, SHAPES, locations, weights))
    # Python pairs (the compile-friendly form) give the same result.
    torch.testing.assert_close(ms_deform_attn_core(value, SHAPES, locations, weights), out)


def test_core_reads_pixel_centres_exactly_and_zero_far_outside():
    value, _, _ = _inputs(n=1, lq=1, m=1, d=2, p=1)
    h, w = SHAPES[0]
    locations = torch.zeros(1, 1, 1, len(SHAPES), 1, 2, dtype=torch.float64)
    locations[0, 0, 0, 0, 0] = torch.tensor([(2 + 0.5) / w, (1 + 0.5) / h], dtype=torch.float64)
    locations[0, 0, 0, 1, 0] = 5.0  # far outside level 1
    locations[0, 0, 0, 2, 0] = 0.5  # centre of the 1x1 level
    weights = torch.tensor([1.0, 7.0, 0.0], dtype=torch.float64).view(1, 1, 1, 3, 1)
    out = ms_deform_attn_core(value, SHAPES, locations, weights)
    torch.testing.assert_close(out[0, 0], value[0, 1 * w + 2, 0])


def test_core_samples_half_precision_values_in_float32():
    value, locations, weights = _inputs()
    expected = ms_deform_attn_core(value.float(), SHAPES, locations.float(), weights.float())
    out = ms_deform_attn_core(value.bfloat16(), SHAPES, locations.float(), weights.bfloat16())
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), expected, atol=0.05, rtol=0.05)


def test_core_rejects_inconsistent_shapes():
    value, locations, weights = _inputs()
    with pytest.raises(ValueError, match="do not add up"):
        ms_deform_attn_core(value, [(3, 4), (2, 5), (1, 2)], locations, weights)
    with pytest.raises(ValueError, match="levels"):
        ms_deform_attn_core(value, SHAPES[:2], locations, weights)


def test_module_shapes_gradients_and_init():
    attn = MSDeformAttn(d_model=16, n_levels=len(SHAPES), n_heads=4, n_points=3)
    # Initial offsets: head 0 looks along +x at 1, 2, 3 pixels on every level.
    bias = attn.sampling_offsets.bias.view(4, len(SHAPES), 3, 2)
    torch.testing.assert_close(bias[0, 1, :, 0], torch.tensor([1.0, 2.0, 3.0]))
    torch.testing.assert_close(bias[0, 1, :, 1], torch.zeros(3))
    s = sum(h * w for h, w in SHAPES)
    src = torch.randn(2, s, 16, requires_grad=True)
    query = torch.randn(2, 5, 16)
    ref = torch.rand(2, 5, len(SHAPES), 2)
    out = attn(query, ref, src, SHAPES)
    assert out.shape == (2, 5, 16)
    out.square().sum().backward()
    assert src.grad is not None and src.grad.abs().sum() > 0
    for name, param in attn.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_module_rejects_bad_arguments():
    with pytest.raises(ValueError, match="divisible"):
        MSDeformAttn(d_model=10, n_levels=1, n_heads=4, n_points=1)
    attn = MSDeformAttn(d_model=8, n_levels=1, n_heads=2, n_points=1)
    with pytest.raises(ValueError, match=r"\(x, y\)"):
        attn(torch.randn(1, 2, 8), torch.rand(1, 2, 1, 4), torch.randn(1, 6, 8), [(2, 3)])


@pytest.mark.parametrize("offset", [(1.0, 0.0), (0.0, 1.0)])
def test_module_pixel_offset_shifts_a_non_square_level_by_one_pixel(offset):
    # Identity projections, one head and point, offset bias of one pixel in x (or y): every query
    # sitting on a pixel centre of a 3x5 (H x W) level reads its right (or lower) neighbour, which
    # holds only if offsets are divided by (W, H) and not (H, W).
    h, w, d = 3, 5, 4
    attn = MSDeformAttn(d_model=d, n_levels=1, n_heads=1, n_points=1)
    with torch.no_grad():
        for proj in (attn.value_proj, attn.output_proj):
            proj.weight.copy_(torch.eye(d))
        attn.sampling_offsets.bias.copy_(torch.tensor(offset))
    value_map = torch.randn(1, d, h, w)
    src = value_map.flatten(2).transpose(1, 2)  # (1, H*W, D), row-major
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    centres = torch.stack([(xs + 0.5) / w, (ys + 0.5) / h], dim=-1).view(1, h * w, 1, 2)
    out = attn(torch.randn(1, h * w, d), centres, src, [(h, w)])
    dx, dy = int(offset[0]), int(offset[1])
    shifted = torch.zeros_like(value_map)
    shifted[..., : h - dy, : w - dx] = value_map[..., dy:, dx:]  # zeros read beyond the border
    torch.testing.assert_close(out, shifted.flatten(2).transpose(1, 2))
