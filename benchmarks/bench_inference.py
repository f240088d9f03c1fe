"""Inference throughput and peak memory: CLOUDS vs transformers' Mask2Former at equal settings.

Both models have random weights, a ConvNeXt backbone of the same size (ConvNeXt-L for
``--model full``), the same head sizes, queries, decoder layers and 19 classes; they get the
same uint8 images (same batch, size and autocast dtype) and produce the same output: per-class
score maps (B, 19, H, W) at the input size (ours through ``model(batched_inputs)``, the peer
through its forward plus the same softmax x sigmoid-mask combination). Everything runs under
``torch.inference_mode``. With ``--compile`` / ``--channels-last`` a third row shows our model
with those fast paths (``clouds.modeling.acceleration``).

    python -m benchmarks.bench_inference                                  # CPU: 256x512
    python -m benchmarks.bench_inference --device cuda --dtype bf16 --compile --channels-last
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from benchmarks.common import (
    comparison_rows,
    measure,
    publish,
    resolve_device,
    resolve_dtype,
)
from benchmarks.models import (
    build_ours,
    build_peer,
    fast_variant,
    load_benchmark_config,
    peer_semantic_scores,
    random_images,
)
from clouds.modeling.acceleration import (
    COMPILABLE_PARTS,
    apply_acceleration,
    autocast,
)

__all__ = ["main"]

_COLUMNS = (
    "model",
    "dtype",
    "fast_paths",
    "images_per_s",
    "ms_per_image",
    "best_images_per_s",
    "peak_MiB",
    "vs_peer",
    "vs_peer_best",
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="full", help="full (ConvNeXt-L) or toy (tiny, tests)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:i]")
    p.add_argument("--height", type=int, help="input height (default 1024 GPU, 256 CPU)")
    p.add_argument("--width", type=int, help="input width (default 2048 GPU, 512 CPU)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--dtype", default="fp32", help="fp32, or autocast bf16 / fp16 (both models)")
    p.add_argument("--compile", action="store_true", help="add a row: ours torch.compiled")
    p.add_argument(
        "--compile-parts",
        nargs="+",
        default=["backbone", "pixel_decoder"],
        choices=COMPILABLE_PARTS,
        help="parts compiled by --compile",
    )
    p.add_argument("--channels-last", action="store_true", help="add a row: ours channels-last")
    p.add_argument("--warmup", type=int, help="untimed calls (default 3 GPU, 1 CPU)")
    p.add_argument("--repeats", type=int, help="timed calls (default 20 GPU, 5 CPU)")
    p.add_argument("--json", default="benchmarks/results/inference.json")
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the Markdown table, write the JSON; returns the JSON payload."""
    args = _parser().parse_args(argv)
    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    height = args.height or (1024 if gpu else 256)
    width = args.width or (2048 if gpu else 512)
    warmup = args.warmup if args.warmup is not None else (3 if gpu else 1)
    repeats = args.repeats or (20 if gpu else 5)
    dtype = resolve_dtype(args.dtype)
    amp = None if dtype == torch.float32 else dtype
    torch.manual_seed(0)

    cfg = load_benchmark_config(args.model)
    ours = build_ours(cfg, device).eval()
    peer = build_peer(cfg, ours, device).eval()
    images = random_images(args.batch, height, width, device)
    inputs = [{"image": img, "height": height, "width": width} for img in images]
    mean = ours.pixel_mean
    std = ours.pixel_std

    def run_ours(model: nn.Module = ours) -> object:
        with torch.inference_mode(), autocast(device, amp):
            return model(inputs)

    def run_peer() -> object:
        with torch.inference_mode(), autocast(device, amp):
            pixel_values = (images.float() - mean) / std
            return peer_semantic_scores(peer(pixel_values=pixel_values), (height, width))

    fns: dict[str, Callable[[], object]] = {"peer": run_peer, "ours": run_ours}
    fast, fast_label = fast_variant(
        args.channels_last, args.compile_parts if args.compile else None
    )
    if fast_label:
        fast_model = apply_acceleration(copy.deepcopy(ours), fast)
        fns["ours (fast)"] = lambda: run_ours(fast_model)

    results = measure(fns, device=device, warmup=warmup, repeats=repeats)
    rows = comparison_rows(
        results,
        items_per_call=args.batch,
        dtype=args.dtype,
        fast_label=fast_label,
        time_column=("ms_per_image", lambda m: 1000 / m.per_second(args.batch)),
    )
    return publish(
        "inference",
        device=device,
        settings={
            "model": args.model,
            "input_size": [height, width],
            "batch": args.batch,
            "dtype": args.dtype,
            "warmup": warmup,
            "repeats": repeats,
        },
        rows=rows,
        columns=_COLUMNS,
        json_path=args.json,
    )


if __name__ == "__main__":
    main()
