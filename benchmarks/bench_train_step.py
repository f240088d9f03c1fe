"""Training-step throughput and peak memory: CLOUDS vs transformers' Mask2Former.

One step = zero the gradients, forward with the losses, backward of their sum, AdamW step, on
the same random crops and label maps (32x32-pixel blocks of random classes, some ignored).
Ours takes detectron2-style ``batched_inputs`` with "sem_seg"; the peer takes ``mask_labels``
/ ``class_labels`` built from the same label maps and computes its own Mask2Former loss with the
same point sampling (12,544 points), weights and no-object weight. Both backbones are frozen
(CLOUDS keeps CLIP frozen; the peer's ConvNeXt gets ``requires_grad=False``), so both train the
same kind of head. With ``--compile`` / ``--channels-last`` a third row shows our model with
those fast paths. bf16 / fp16 run under autocast for both models.

    python -m benchmarks.bench_train_step                               # CPU: 128x128 crops
    python -m benchmarks.bench_train_step --device cuda --batch 2 --dtype bf16 --compile
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
    freeze_peer_backbone,
    load_benchmark_config,
    peer_targets,
    random_images,
    random_labels,
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
    "ms_per_step",
    "best_images_per_s",
    "peak_MiB",
    "vs_peer",
    "vs_peer_best",
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="full", help="full (ConvNeXt-L) or toy (tiny, tests)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:i]")
    p.add_argument("--height", type=int, help="crop height (default 768 GPU, 128 CPU)")
    p.add_argument("--width", type=int, help="crop width (default 768 GPU, 128 CPU)")
    p.add_argument("--batch", type=int, help="images per step (default 2 GPU, 1 CPU)")
    p.add_argument("--dtype", default="fp32", help="fp32, or autocast bf16 / fp16 (both models)")
    p.add_argument("--compile", action="store_true", help="add a row: ours torch.compiled")
    p.add_argument(
        "--compile-parts",
        nargs="+",
        default=["pixel_decoder"],
        choices=COMPILABLE_PARTS,
        help="parts compiled by --compile",
    )
    p.add_argument("--channels-last", action="store_true", help="add a row: ours channels-last")
    p.add_argument("--warmup", type=int, help="untimed steps (default 3 GPU, 1 CPU)")
    p.add_argument("--repeats", type=int, help="timed steps (default 20 GPU, 5 CPU)")
    p.add_argument("--json", default="benchmarks/results/train_step.json")
    return p


def _step_fn(
    model: nn.Module, loss_fn: Callable[[], torch.Tensor], device: torch.device, amp: Any
) -> Callable[[], None]:
    """A closure running one optimisation step of ``model`` on its trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.05)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, amp):
            loss = loss_fn()
        loss.backward()
        optimizer.step()

    return step


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the Markdown table, write the JSON; returns the JSON payload."""
    args = _parser().parse_args(argv)
    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    height = args.height or (768 if gpu else 128)
    width = args.width or (768 if gpu else 128)
    batch = args.batch or (2 if gpu else 1)
    warmup = args.warmup if args.warmup is not None else (3 if gpu else 1)
    repeats = args.repeats or (20 if gpu else 5)
    dtype = resolve_dtype(args.dtype)
    amp = None if dtype == torch.float32 else dtype
    torch.manual_seed(0)

    cfg = load_benchmark_config(args.model)
    ours = build_ours(cfg, device).train()
    peer = build_peer(cfg, ours, device).train()
    freeze_peer_backbone(peer)
    images = random_images(batch, height, width, device)
    labels = random_labels(batch, height, width, device)
    inputs = [{"image": i, "sem_seg": s} for i, s in zip(images, labels)]
    mask_labels, class_labels = peer_targets(labels)
    mean, std = ours.pixel_mean, ours.pixel_std

    def peer_loss() -> torch.Tensor:
        pixel_values = (images.float() - mean) / std
        return peer(
            pixel_values=pixel_values, mask_labels=mask_labels, class_labels=class_labels
        ).loss

    fast, fast_label = fast_variant(
        args.channels_last, args.compile_parts if args.compile else None
    )
    models = {"peer": None, "ours": ours}
    if fast_label:
        models["ours (fast)"] = apply_acceleration(copy.deepcopy(ours), fast)
    fns: dict[str, Callable[[], object]] = {}
    for name, model in models.items():
        if model is None:
            fns[name] = _step_fn(peer, peer_loss, device, amp)
        else:
            fns[name] = _step_fn(model, lambda m=model: sum(m(inputs).values()), device, amp)

    results = measure(fns, device=device, warmup=warmup, repeats=repeats)
    rows = comparison_rows(
        results,
        items_per_call=batch,
        dtype=args.dtype,
        fast_label=fast_label,
        time_column=("ms_per_step", lambda m: m.median_s * 1000),
    )
    return publish(
        "train_step",
        device=device,
        settings={
            "model": args.model,
            "crop_size": [height, width],
            "batch": batch,
            "dtype": args.dtype,
            "warmup": warmup,
            "repeats": repeats,
            "frozen_backbones": True,
        },
        rows=rows,
        columns=_COLUMNS,
        json_path=args.json,
    )


if __name__ == "__main__":
    main()
