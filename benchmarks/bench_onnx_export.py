"""ONNX export: file size and CPU inference speed of onnxruntime vs PyTorch, side by side.

The CLOUDS model (random weights; ConvNeXt-L for ``--model full``) is exported with
``clouds.export.export_onnx`` and both run the same uint8 images through the same interface
(``model(batched_inputs)`` and ``OnnxSegmenter(batched_inputs)``: per-class scores at the input
size). Reported per backend: images per second (median and best repeat), peak memory, the
speed ratio to PyTorch, the size of the weights on disk (PyTorch: ``torch.save`` of the
state dict; onnxruntime: the ONNX file) and its ratio, the export time, and the largest
difference of the onnxruntime scores from PyTorch's on the benchmark image.

    python -m benchmarks.bench_onnx_export                         # full size, 256x512, CPU
    python -m benchmarks.bench_onnx_export --model toy --height 64 --width 128
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import measure, publish
from benchmarks.models import build_ours, load_benchmark_config, random_images
from clouds.export.exporter import export_onnx
from clouds.export.runtime import OnnxSegmenter

__all__ = ["main"]

_COLUMNS = (
    "backend",
    "images_per_s",
    "ms_per_image",
    "best_images_per_s",
    "peak_MiB",
    "vs_pytorch",
    "vs_pytorch_best",
    "size_MB",
    "size_vs_pytorch",
    "export_s",
    "max_abs_diff",
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="full", help="full (ConvNeXt-L) or toy (tiny, tests)")
    p.add_argument("--height", type=int, default=256, help="input height")
    p.add_argument("--width", type=int, default=512, help="input width")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: its default)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls per backend")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per backend")
    p.add_argument("--json", default="benchmarks/results/onnx_export.json")
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the Markdown table, write the JSON; returns the JSON payload."""
    args = _parser().parse_args(argv)
    device = torch.device("cpu")
    torch.manual_seed(0)
    cfg = load_benchmark_config(args.model)
    model = build_ours(cfg, device).eval()
    inputs = [
        {"image": image, "height": args.height, "width": args.width}
        for image in random_images(1, args.height, args.width, device)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "model.pth"
        torch.save(model.state_dict(), weights)
        start = time.perf_counter()
        onnx_path = export_onnx(cfg, Path(tmp) / "model.onnx", model=model)[0]
        export_s = time.perf_counter() - start
        sizes = {"pytorch": weights.stat().st_size, "onnxruntime": onnx_path.stat().st_size}
        onnx_model = OnnxSegmenter(onnx_path, threads=args.threads)

        def run_pytorch() -> object:
            with torch.inference_mode():
                return model(inputs)

        def run_onnxruntime() -> object:
            return onnx_model(inputs)

        with torch.inference_mode():
            expected = model(inputs)[0]["sem_seg"]
        max_diff = (onnx_model(inputs)[0]["sem_seg"] - expected).abs().max().item()
        results = measure(
            {"pytorch": run_pytorch, "onnxruntime": run_onnxruntime},
            device=device,
            warmup=args.warmup,
            repeats=args.repeats,
        )
    base, base_best = results["pytorch"].per_second(1), results["pytorch"].best_per_second(1)
    rows = []
    for name, m in results.items():
        rows.append(
            {
                "backend": name,
                "images_per_s": m.per_second(1),
                "ms_per_image": 1000 * m.median_s,
                "best_images_per_s": m.best_per_second(1),
                "peak_MiB": m.to_dict(1)["peak_memory_mib"],
                "vs_pytorch": m.per_second(1) / base,
                "vs_pytorch_best": m.best_per_second(1) / base_best,
                "size_MB": sizes[name] / 1e6,
                "size_vs_pytorch": sizes[name] / sizes["pytorch"],
                "export_s": export_s if name == "onnxruntime" else "-",
                "max_abs_diff": max_diff if name == "onnxruntime" else 0.0,
                "seconds": m.seconds,
            }
        )
    return publish(
        "onnx_export",
        device=device,
        settings={
            "model": args.model,
            "input_size": [args.height, args.width],
            "onnxruntime_threads": args.threads,
            "torch_threads": torch.get_num_threads(),
            "warmup": args.warmup,
            "repeats": args.repeats,
        },
        rows=rows,
        columns=_COLUMNS,
        json_path=args.json,
    )


if __name__ == "__main__":
    main()
