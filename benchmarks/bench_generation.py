"""Generation speed: the original script's settings vs our fast path, same model, steps and size.

- original: one image per call (batch 1), fp16 on GPU / fp32 on CPU, Euler, the pipeline as
  loaded (its default attention, NCHW), PIL output saved to PNG in the loop — as the original
  ``generate_txt_im.py`` does;
- ours: ``clouds.generation.runner.generate_images`` with batching, SDPA attention processors,
  channels-last UNet/VAE, optional ``torch.compile`` of the UNet, PNG encoding on a worker
  thread; same dtype unless ``--fast-dtype`` says otherwise.

The model is ``--model-id`` when it can be loaded (a local folder or a cached hub id); else the
Stable Diffusion 2 architecture (UNet, VAE, OpenCLIP-H text encoder) is built from its config
with random weights, which costs the same time per step. ``--arch tiny`` saves and loads the
few-channel model of ``clouds.generation.tiny`` instead (smoke tests). Prints a Markdown table
and writes JSON.

    python benchmarks/bench_generation.py                      # GPU: 768x768, 50 steps
    python benchmarks/bench_generation.py --device cpu --height 128 --width 128 --steps 4 \\
        --num-images 4 --batch-size 4                          # CPU: reduced, for the ratio
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    EulerDiscreteScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from clouds.generation.pipeline import (
    DTYPES,
    ModelNotFoundError,
    apply_fast_paths,
    load_pipeline,
    resolve_device,
    resolve_dtype,
    set_scheduler,
)
from clouds.generation.plan import plan_items
from clouds.generation.runner import GenerationSettings, generate_images
from clouds.generation.tiny import save_tiny_sd_pipeline
from clouds.utils.io import atomic_path

PROMPTS = [
    "A dashcam photo of a busy street with cars, a bus and pedestrians at noon",
    "A rainy night in a city with taxis, cyclists and traffic lights",
    "A foggy morning on an avenue with a tram, trees and parked cars",
]

# Stable Diffusion 2 (stabilityai/stable-diffusion-2) component configs.
SD2_UNET = dict(
    sample_size=96,
    in_channels=4,
    out_channels=4,
    layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    attention_head_dim=(5, 10, 20, 20),
    cross_attention_dim=1024,
    use_linear_projection=True,
)
SD2_VAE = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    layers_per_block=2,
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    sample_size=768,
)
SD2_TEXT = dict(
    vocab_size=49408,
    hidden_size=1024,
    intermediate_size=4096,
    num_hidden_layers=23,
    num_attention_heads=16,
    hidden_act="gelu",
    projection_dim=512,
    max_position_embeddings=77,
)
SD2_SCHEDULER = dict(
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    prediction_type="v_prediction",
    steps_offset=1,
)


def _char_tokenizer(eos_id: int) -> CLIPTokenizer:
    """A character-level CLIP tokenizer (the real BPE vocabulary cannot be downloaded here)."""
    chars = [chr(c) for c in range(33, 127)]
    vocab = {tok: i for i, tok in enumerate(chars + [c + "</w>" for c in chars])}
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = eos_id
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def build_sd2_pipeline(dtype: torch.dtype) -> StableDiffusionPipeline:
    """The Stable Diffusion 2 architecture with random weights."""
    tokenizer = _char_tokenizer(eos_id=SD2_TEXT["vocab_size"] - 1)
    text_config = CLIPTextConfig(
        **SD2_TEXT,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    pipe = StableDiffusionPipeline(
        unet=UNet2DConditionModel(**SD2_UNET),
        vae=AutoencoderKL(**SD2_VAE),
        text_encoder=CLIPTextModel(text_config),
        tokenizer=tokenizer,
        scheduler=EulerDiscreteScheduler(**SD2_SCHEDULER),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    return pipe if dtype == torch.float32 else pipe.to(dtype=dtype)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def run_original(
    pipe: StableDiffusionPipeline, args: argparse.Namespace, device: torch.device, out_dir: Path
) -> dict[str, Any]:
    """Batch 1, PIL output, PNG saved in the loop; one warm-up image first."""
    items = plan_items(PROMPTS, num_images=args.num_images + 1, part=0, base_seed=0)
    out_dir.mkdir(parents=True, exist_ok=True)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = 0.0
    for n, item in enumerate(items):
        if n == 1:
            _sync(device)
            start = time.perf_counter()
        image = pipe(
            item.prompt,
            height=args.height,
            width=args.width,
            num_inference_steps=args.steps,
            guidance_scale=args.guidance,
            generator=torch.Generator("cpu").manual_seed(item.seed),
        ).images[0]
        image.save(out_dir / item.file_name)
    _sync(device)
    seconds = time.perf_counter() - start
    return {"seconds_per_image": seconds / args.num_images, "peak_gib": _peak_memory_gib(device)}


def run_fast(
    pipe: StableDiffusionPipeline,
    args: argparse.Namespace,
    device: torch.device,
    out_dir: Path,
    dtype_name: str,
) -> dict[str, Any]:
    """``generate_images`` over ``num_images`` images after a warm-up batch (compiles if asked)."""
    apply_fast_paths(pipe, channels_last=True, compile_unet=args.compile)

    def settings(folder: Path, num_images: int) -> GenerationSettings:
        return GenerationSettings(
            prompts=PROMPTS,
            folder=folder,
            num_images=num_images,
            model_id=args.model_id,
            dtype=dtype_name,
            steps=args.steps,
            guidance=args.guidance,
            height=args.height,
            width=args.width,
            batch_size=args.batch_size,
        )

    generate_images(settings(out_dir / "warmup", args.batch_size), lambda: pipe, progress=False)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    start = time.perf_counter()
    generate_images(settings(out_dir / "timed", args.num_images), lambda: pipe, progress=False)
    _sync(device)
    seconds = time.perf_counter() - start
    return {"seconds_per_image": seconds / args.num_images, "peak_gib": _peak_memory_gib(device)}


def load_or_build(
    args: argparse.Namespace, dtype: torch.dtype, device: torch.device, work_dir: Path
) -> tuple[StableDiffusionPipeline, str]:
    """The model's pipeline (Euler, as loaded otherwise) and where its weights came from."""
    if args.arch == "auto":
        try:
            pipe = load_pipeline(
                args.model_id, dtype=dtype, device=device, local_files_only=args.local_files_only
            )
        except ModelNotFoundError:
            pass
        else:
            # load_pipeline applies the fast paths; the original used the pipeline as loaded
            pipe.unet.to(memory_format=torch.contiguous_format)
            pipe.vae.to(memory_format=torch.contiguous_format)
            return pipe, f"{args.model_id} (pretrained)"
    if args.arch == "tiny":
        pipe = StableDiffusionPipeline.from_pretrained(
            save_tiny_sd_pipeline(work_dir / "tiny_sd"), torch_dtype=dtype
        )
    else:
        torch.manual_seed(0)
        pipe = build_sd2_pipeline(dtype)
    pipe.to(device)
    set_scheduler(pipe, "euler")
    pipe.set_progress_bar_config(disable=True)
    return pipe, f"{args.arch if args.arch == 'tiny' else 'sd2'} architecture, random weights"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-id", default="stabilityai/stable-diffusion-2")
    p.add_argument("--local-files-only", action="store_true")
    p.add_argument(
        "--arch",
        choices=["auto", "sd2", "tiny"],
        default="auto",
        help="auto: --model-id if loadable, else SD 2 with random weights",
    )
    p.add_argument("--device", default=None)
    p.add_argument("--height", type=int, default=768)
    p.add_argument("--width", type=int, default=768)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--num-images", type=int, default=8, help="timed images per method")
    p.add_argument("--batch-size", type=int, default=8, help="our batch size")
    p.add_argument(
        "--fast-dtype",
        choices=["auto", *DTYPES],
        default="auto",
        help="our dtype (auto: the original's: fp16 on GPU, fp32 on CPU)",
    )
    p.add_argument("--compile", action="store_true", help="torch.compile our UNet")
    p.add_argument("--json", type=Path, default=Path("benchmarks/results/bench_generation.json"))
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    device = resolve_device(args.device)
    original_dtype = resolve_dtype("auto", device)
    fast_dtype = resolve_dtype(args.fast_dtype, device)
    names = {v: k for k, v in DTYPES.items()}
    with tempfile.TemporaryDirectory() as tmp:
        pipe, weights = load_or_build(args, original_dtype, device, Path(tmp))
        original = run_original(pipe, args, device, Path(tmp) / "original")
        if fast_dtype != original_dtype:
            pipe.to(dtype=fast_dtype)
        fast = run_fast(pipe, args, device, Path(tmp), names[fast_dtype])
    result = {
        "benchmark": "generation",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": platform.node(),
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "torch": torch.__version__,
        "weights": weights,
        "size": [args.height, args.width],
        "steps": args.steps,
        "guidance": args.guidance,
        "num_images": args.num_images,
        "original": {"batch_size": 1, "dtype": names[original_dtype], **original},
        "ours": {
            "batch_size": args.batch_size,
            "dtype": names[fast_dtype],
            "compile": args.compile,
            **fast,
        },
        "speedup": original["seconds_per_image"] / fast["seconds_per_image"],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.json) as tmp:
        Path(tmp).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(markdown_table(result))
    return result


def markdown_table(result: dict[str, Any]) -> str:
    def mem(gib: float | None) -> str:
        return "-" if gib is None else f"{gib:.2f}"

    rows = [
        f"Generation, {result['weights']}, {result['size'][0]}x{result['size'][1]}, "
        f"{result['steps']} Euler steps, guidance {result['guidance']}, {result['device']}",
        "",
        "| method | batch | dtype | s/image | peak GiB |",
        "|---|---|---|---|---|",
    ]
    for key, label in (("original", "original script"), ("ours", "ours (fast path)")):
        r = result[key]
        if key == "ours" and r["compile"]:
            label += " + compile"
        rows.append(
            f"| {label} | {r['batch_size']} | {r['dtype']} | {r['seconds_per_image']:.3f} | {mem(r['peak_gib'])} |"
        )
    rows.append(f"\nSpeed-up per image: {result['speedup']:.2f}x")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
