"""SAM pseudo-label refinement speed: the original's loop vs ours, same SAM, same prompts.

- original: for each image, segment-anything's ``SamPredictor.set_image`` (numpy, one image),
  then one ``predict`` call per region prompt, every multimask output upsampled to full size,
  the best kept by predicted IoU;
- ours: ``clouds.sam.SamRefiner`` with ``SamBatchPredictor``: ``--image-batch-size`` images
  encoded per image-encoder call, ``--prompt-batch-size`` prompts per decoder call, only the kept
  masks upsampled.

Both refine the same teacher label maps (toy street scenes, shifted and blotched) with the same
seeded point prompts and the same merging, so the work is identical; the table also gives the
share of pixels on which both agree. SAM is ``--model-type`` with ``--checkpoint`` when given,
else random weights of that architecture (same cost). Prints a Markdown table and writes JSON.

    python benchmarks/bench_sam_refinement.py --device cuda --model-type vit_h   # GPU
    python benchmarks/bench_sam_refinement.py --device cpu --model-type vit_b \\
        --num-images 4 --height 256 --width 512                              # CPU, reduced
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from segment_anything import SamPredictor

from clouds.data.toy.scene import sample_scene
from clouds.sam import SamBatchPredictor, SamRefiner, build_sam, merge_masks
from clouds.utils.io import atomic_path


def make_inputs(
    num_images: int, height: int, width: int, seed: int
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Toy street images (one colour per class plus noise) and imperfect teacher labels."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (256, 3))
    images, labels = [], []
    for _ in range(num_images):
        truth = sample_scene(rng, height, width).label.astype(np.int64)
        noise = rng.integers(-20, 21, (height, width, 3))
        image = np.clip(palette[truth] + noise, 0, 255).astype(np.uint8)
        teacher = np.roll(np.where(truth == 255, 0, truth), tuple(rng.integers(-3, 4, 2)), (0, 1))
        images.append(torch.from_numpy(image).permute(2, 0, 1).contiguous())
        labels.append(torch.from_numpy(teacher))
    return images, labels


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def run_original(
    sam: torch.nn.Module,
    refiner: SamRefiner,
    images: Sequence[torch.Tensor],
    labels: Sequence[torch.Tensor],
    seed: int,
) -> list[torch.Tensor]:
    """One image at a time, one ``SamPredictor.predict`` call per prompt."""
    predictor = SamPredictor(sam)
    generator = np.random.default_rng(seed)
    prompts = [refiner.prompts(label.numpy(), generator) for label in labels]
    outputs = []
    for image, label, (points, classes) in zip(images, labels, prompts):
        predictor.set_image(image.permute(1, 2, 0).numpy())
        masks = []
        for region_points in points:
            candidates, scores, _ = predictor.predict(
                point_coords=region_points,
                point_labels=np.ones(len(region_points), dtype=np.int64),
                multimask_output=True,
            )
            masks.append(torch.from_numpy(candidates[int(np.argmax(scores))]))
        if not masks:  # no prompt: the teacher's map, as SamRefiner
            outputs.append(label.clone())
            continue
        fallback = (
            label.clone()
            if refiner.uncovered == "teacher"
            else torch.full_like(label, refiner.ignore_label)
        )
        outputs.append(
            merge_masks(
                torch.stack(masks),
                torch.from_numpy(classes),
                fallback,
                rm_intersection=refiner.rm_intersection,
                overlap=refiner.overlap,
            )
        )
    return outputs


def run_ours(
    refiner: SamRefiner,
    images: Sequence[torch.Tensor],
    labels: Sequence[torch.Tensor],
    seed: int,
    image_batch_size: int,
) -> list[torch.Tensor]:
    """``SamRefiner.refine`` over batches of images."""
    generator = np.random.default_rng(seed)
    outputs: list[torch.Tensor] = []
    for start in range(0, len(images), image_batch_size):
        chunk = slice(start, start + image_batch_size)
        refined = refiner.refine(images[chunk], labels[chunk], generator=generator)
        outputs.extend(r.label for r in refined)
    return outputs


def _timed(fn: Any, device: torch.device, repeats: int) -> tuple[float, Any]:
    fn()  # warm-up
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        result = fn()
    _sync(device)
    return (time.perf_counter() - start) / repeats, result


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-type", default="vit_b", help="tiny, vit_t, vit_b, vit_l or vit_h")
    p.add_argument("--checkpoint", default="", help="SAM weights (default: random init)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--num-images", type=int, default=8)
    p.add_argument("--height", type=int, default=768)
    p.add_argument("--width", type=int, default=768)
    p.add_argument("--image-batch-size", type=int, default=4)
    p.add_argument("--prompt-batch-size", type=int, default=64)
    p.add_argument("--num-points", type=int, default=5)
    p.add_argument("--size-threshold", type=int, default=5000, help="px at 768x768")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--json", type=Path, default=Path("benchmarks/results/bench_sam_refinement.json")
    )
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    device = torch.device(args.device)
    sam = build_sam(args.model_type, args.checkpoint, device=device)
    predictor = SamBatchPredictor(model=sam, prompt_batch_size=args.prompt_batch_size)
    refiner = SamRefiner(
        predictor=predictor,
        num_points=args.num_points,
        size_threshold=args.size_threshold,
        size_reference=(768, 768),  # the threshold shrinks with the benchmark images' area
    )
    images, labels = make_inputs(args.num_images, args.height, args.width, args.seed)
    num_prompts = sum(
        len(refiner.prompts(label.numpy(), np.random.default_rng(0))[1]) for label in labels
    )
    original_s, original = _timed(
        lambda: run_original(sam, refiner, images, labels, args.seed), device, args.repeats
    )
    ours_s, ours = _timed(
        lambda: run_ours(refiner, images, labels, args.seed, args.image_batch_size),
        device,
        args.repeats,
    )
    agreement = float(
        np.mean([(a.cpu() == b.cpu()).float().mean().item() for a, b in zip(original, ours)])
    )
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "torch": torch.__version__,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "num_prompts": num_prompts,
        "original": {"seconds": original_s, "images_per_s": args.num_images / original_s},
        "ours": {"seconds": ours_s, "images_per_s": args.num_images / ours_s},
        "speedup": original_s / ours_s,
        "pixel_agreement": agreement,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.json) as tmp:
        Path(tmp).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(markdown_table(result))
    return result


def markdown_table(result: dict[str, Any]) -> str:
    s = result["settings"]
    lines = [
        f"SAM {s['model_type']} on {result['device']}, {s['num_images']} images "
        f"{s['height']}x{s['width']}, {result['num_prompts']} region prompts",
        "",
        "| method | images/s | s per run | speed-up |",
        "|---|---|---|---|",
        f"| original (per image, per prompt) | {result['original']['images_per_s']:.3f} "
        f"| {result['original']['seconds']:.3f} | 1.00x |",
        f"| ours (batched images {s['image_batch_size']}, prompts {s['prompt_batch_size']}) "
        f"| {result['ours']['images_per_s']:.3f} | {result['ours']['seconds']:.3f} "
        f"| {result['speedup']:.2f}x |",
        "",
        f"Pixel agreement of the refined label maps: {100 * result['pixel_agreement']:.2f}%",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
