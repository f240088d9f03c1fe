"""Multi-scale deformable attention core: ours eager vs ours compiled vs transformers' function.

Shapes are the pixel decoder's: an input image of --height x --width gives three levels at
strides 8, 16 and 32; every token of every level is a query (encoder self-attention); 8 heads
of 32 channels, 4 points per level and head. Forward runs under ``torch.inference_mode``;
forward+backward computes gradients for the values, locations and weights. Each row also
reports the largest absolute difference of its forward output from our eager core.

    python -m benchmarks.bench_ms_deform_attn                      # CPU: 256x512 input
    python -m benchmarks.bench_ms_deform_attn --device cuda        # GPU: 1024x2048 input
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from transformers.models.mask2former.modeling_mask2former import (
    multi_scale_deformable_attention,
)

from benchmarks.common import (
    measure,
    publish,
    resolve_device,
    resolve_dtype,
)
from clouds.modeling.pixel_decoder.ms_deform_attn import ms_deform_attn_core

__all__ = ["IMPLEMENTATIONS", "level_shapes", "main", "make_inputs"]

IMPLEMENTATIONS = ("ours", "ours_compiled", "peer")
STRIDES = (8, 16, 32)
_COLUMNS = (
    "implementation",
    "pass",
    "median_ms",
    "best_ms",
    "peak_MiB",
    "speedup_vs_peer",
    "max_abs_diff",
)

CoreFn = Callable[[Tensor, list[tuple[int, int]], Tensor, Tensor], Tensor]


def level_shapes(height: int, width: int) -> list[tuple[int, int]]:
    """(H, W) of the encoder levels (strides 32, 16, 8: coarse first, as the encoder orders)."""
    if height % 32 or width % 32:
        raise ValueError(f"--height/--width must be multiples of 32, got {height}x{width}")
    return [(height // s, width // s) for s in reversed(STRIDES)]


def make_inputs(
    shapes: Sequence[tuple[int, int]],
    *,
    batch: int,
    heads: int,
    head_dim: int,
    points: int,
    dtype: torch.dtype,
    device: torch.device,
    seed: int = 0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Random (value (N, S, M, D), locations (N, S, M, L, P, 2) in [0, 1], softmaxed weights
    (N, S, M, L, P)), all leaves that require grad."""
    gen = torch.Generator().manual_seed(seed)
    tokens = sum(h * w for h, w in shapes)
    levels = len(shapes)
    value = torch.randn(batch, tokens, heads, head_dim, generator=gen)
    locations = torch.rand(batch, tokens, heads, levels, points, 2, generator=gen)
    logits = torch.randn(batch, tokens, heads, levels * points, generator=gen)
    weights = logits.softmax(-1).view(batch, tokens, heads, levels, points)
    return tuple(
        t.to(device=device, dtype=dtype).requires_grad_(True) for t in (value, locations, weights)
    )


def _implementation(name: str) -> CoreFn:
    if name == "ours":
        return ms_deform_attn_core
    if name == "ours_compiled":
        return torch.compile(ms_deform_attn_core, dynamic=False)
    if name == "peer":
        return multi_scale_deformable_attention
    raise ValueError(f"--implementations: unknown {name!r}; choose from {IMPLEMENTATIONS}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:i]")
    p.add_argument("--height", type=int, help="input image height (default 1024 GPU, 256 CPU)")
    p.add_argument("--width", type=int, help="input image width (default 2048 GPU, 512 CPU)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--head-dim", type=int, default=32)
    p.add_argument("--points", type=int, default=4)
    p.add_argument("--dtype", default="fp32", help="fp32, bf16 or fp16 inputs")
    p.add_argument("--implementations", nargs="+", default=list(IMPLEMENTATIONS))
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, help="timed repeats (default 20 GPU, 5 CPU)")
    p.add_argument("--json", default="benchmarks/results/ms_deform_attn.json")
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the Markdown table, write the JSON; returns the JSON payload."""
    args = _parser().parse_args(argv)
    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    height = args.height or (1024 if gpu else 256)
    width = args.width or (2048 if gpu else 512)
    repeats = args.repeats or (20 if gpu else 5)
    dtype = resolve_dtype(args.dtype)
    shapes = level_shapes(height, width)
    value, locations, weights = make_inputs(
        shapes,
        batch=args.batch,
        heads=args.heads,
        head_dim=args.head_dim,
        points=args.points,
        dtype=dtype,
        device=device,
    )
    with torch.inference_mode():
        reference = ms_deform_attn_core(value, shapes, locations, weights).float()

    fns: dict[tuple[str, str], Callable[[], object]] = {}
    diffs: dict[str, float] = {}
    for name in args.implementations:
        core = _implementation(name)

        def forward(core: CoreFn = core) -> Tensor:
            with torch.inference_mode():
                return core(value, shapes, locations, weights)

        def forward_backward(core: CoreFn = core) -> None:
            for t in (value, locations, weights):
                t.grad = None
            core(value, shapes, locations, weights).float().sum().backward()

        diffs[name] = (forward().float() - reference).abs().max().item()
        fns[(name, "forward")] = forward
        fns[(name, "forward+backward")] = forward_backward
    results = measure(fns, device=device, warmup=args.warmup, repeats=repeats)
    rows: list[dict[str, Any]] = [
        {
            "implementation": name,
            "pass": pass_name,
            "median_ms": m.median_s * 1000,
            "best_ms": m.best_s * 1000,
            "peak_MiB": m.to_dict(1)["peak_memory_mib"],
            "max_abs_diff": diffs[name],
            "seconds": m.seconds,
        }
        for (name, pass_name), m in results.items()
    ]
    for row in rows:
        peer = next(
            (r for r in rows if r["implementation"] == "peer" and r["pass"] == row["pass"]), None
        )
        row["speedup_vs_peer"] = peer["median_ms"] / row["median_ms"] if peer else None

    settings = {
        "input_size": [height, width],
        "levels": shapes,
        "queries": sum(h * w for h, w in shapes),
        "batch": args.batch,
        "heads": args.heads,
        "head_dim": args.head_dim,
        "points": args.points,
        "dtype": args.dtype,
        "warmup": args.warmup,
        "repeats": repeats,
    }
    return publish(
        "ms_deform_attn",
        device=device,
        settings=settings,
        rows=rows,
        columns=_COLUMNS,
        json_path=args.json,
    )


if __name__ == "__main__":
    main()
