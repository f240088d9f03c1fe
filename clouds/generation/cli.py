"""Command line of ``generate_txt_im.py``: Stable Diffusion images from a prompt file.

The flags of the original CLOUDS ``generate_txt_im.py`` keep its meaning: ``--num-images N``
is the count of ONE part, ``--part K`` numbers its images ``K*N .. K*N+N-1`` and the prompt
order restarts in each part (files ``im_<j + K*N>_p<j % P>.png``, see clouds.generation.plan).

Examples::

    # the paper's prompts (downloaded by tools/fetch_original_prompts.py) -> dataset sd_llama70b_v2:
    # 5,000 SD 2 images, 768x768, Euler 50 steps, cfg 7.5
    python generate_txt_im.py --input prompt_llama70b --folder sd_llama70b_v2 --num-images 5000 \\
        --part 0

    # 4 parts of 1,250 images on 4 GPUs (or machines sharing the output folder): im_0 .. im_4999
    for k in 0 1 2 3; do
        python generate_txt_im.py --input prompt_llama70b --folder sd_llama70b_v2 \\
            --num-images 1250 --part $k --device cuda:$k --batch-size 8 &
    done
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from clouds.cli_errors import UserFileError
from clouds.data.datasets import datasets_root
from clouds.generation.options import (
    DTYPE_NAMES,
    ORIGINAL_PROMPTS_STEM,
    PROJECT_PROMPTS_STEM,
    SCHEDULER_NAMES,
    SD2_MODEL_ID,
    ValueDefaultsHelpFormatter,
)
from clouds.generation.prompts import PromptFileError, load_prompts, resolve_prompt_file
from clouds.utils.output_dir import check_output_dir
from clouds.utils.weights_file import WeightsFileError, pipeline_weight_files
from clouds.utils.weights_source import (
    HubNeed,
    OfficialFile,
    in_hub_cache,
    is_hub_id,
    prepare_hub_access,
    weights_unavailable_message,
)

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="generate_txt_im.py",
        description="Generate an unlabelled image set with Stable Diffusion from a prompt file, "
        "named as the original CLOUDS names it (resumable, reproducible per image).",
        formatter_class=ValueDefaultsHelpFormatter,
    )
    p.add_argument(
        "--input",
        default=ORIGINAL_PROMPTS_STEM,
        help="prompt file (one prompt per line): a path, or the stem of a .txt in the current "
        "folder or the project root; prompt_llama70b (the paper's prompts) comes from "
        "`python tools/fetch_original_prompts.py`, this project's own prompts are "
        f"{PROJECT_PROMPTS_STEM}",
    )
    p.add_argument(
        "--folder",
        required=True,
        help="output folder under the generated-sets root; folder F registers as dataset "
        "'sd_' + F without 'sd_' (sd_llama70b_v2 -> dataset sd_llama70b_v2)",
    )
    p.add_argument(
        "--num-images",
        "--num_images",
        dest="num_images",
        type=int,
        default=5000,
        help="number of images of THIS part (as in the original)",
    )
    p.add_argument(
        "--part",
        type=int,
        default=0,
        help="part K: its images are im_<j + K*N>_p<j %% P>.png for j < N (--num-images), "
        "P prompts",
    )
    p.add_argument(
        "--model-id",
        default=SD2_MODEL_ID,
        help="diffusers model id on the hub, or a local pipeline folder",
    )
    p.add_argument(
        "--local-files-only",
        action="store_true",
        help="never download; load from the folder or the local hub cache only",
    )
    p.add_argument(
        "--scheduler",
        default="euler",
        choices=sorted(SCHEDULER_NAMES),
        help="sampler, built from the model's scheduler config",
    )
    p.add_argument("--steps", type=int, default=50, help="denoising steps")
    p.add_argument("--guidance", type=float, default=7.5, help="classifier-free guidance scale")
    p.add_argument("--height", type=int, default=768, help="image height (multiple of 8)")
    p.add_argument("--width", type=int, default=768, help="image width (multiple of 8)")
    p.add_argument("--batch-size", type=int, default=1, help="images per forward pass")
    p.add_argument(
        "--seed", type=int, default=0, help="base seed; image i uses a seed hashed from (seed, i)"
    )
    p.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", *DTYPE_NAMES],
        help="weights/compute dtype; auto: fp16 on CUDA, fp32 on CPU",
    )
    p.add_argument(
        "--device", default=None, help="torch device (default: cuda if available, else cpu)"
    )
    p.add_argument(
        "--output-root",
        type=Path,
        default=None,
        help="root of generated sets (default: $DETECTRON2_DATASETS/stable_diffusion, "
        "else datasets/stable_diffusion)",
    )
    p.add_argument(
        "--compile", action="store_true", help="torch.compile the UNet (GPU, large runs)"
    )
    p.add_argument(
        "--no-channels-last",
        dest="channels_last",
        action="store_false",
        help="keep the UNet/VAE in contiguous (NCHW) memory format (default: channels-last)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="regenerate every image of this part even if it exists",
    )
    return p


def _hub_need(model_id: str) -> list[HubNeed]:
    """The download ``--model-id`` asks for (none for a local folder)."""
    if Path(model_id).expanduser().exists() or not is_hub_id(model_id):
        return []
    folder = model_id.rstrip("/").rsplit("/", 1)[-1]
    source = OfficialFile(
        "--model-id",
        folder,
        f"https://huggingface.co/{model_id} (e.g. `hf download {model_id} --local-dir {folder}`)",
    )
    return [HubNeed("--model-id", model_id, source)]


def _check_model_folder(model_id: str) -> None:
    """A local ``--model-id`` exists and, when it is a diffusers pipeline folder, its weight
    files are whole (:func:`clouds.utils.weights_file.pipeline_weight_files`)."""
    local = Path(model_id).expanduser()
    if not local.exists():
        if not is_hub_id(model_id):
            raise UserFileError(f"Model folder {model_id} does not exist")
        return
    if (local / "model_index.json").is_file():
        todo = f"Download the pipeline again (e.g. `hf download {SD2_MODEL_ID} --local-dir DIR`)"
        pipeline_weight_files(local, key="--model-id", todo=todo)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    needs = _hub_need(args.model_id)
    hub_problem = prepare_hub_access(needs, local_files_only=args.local_files_only)
    if hub_problem and not in_hub_cache(args.model_id, "model_index.json"):
        parser.exit(
            2, f"{parser.prog}: error: {weights_unavailable_message(needs[0], hub_problem)}\n"
        )
    folder = (args.output_root or datasets_root() / "stable_diffusion") / args.folder
    try:  # the cheap checks, before torch and diffusers are imported
        prompts = load_prompts(resolve_prompt_file(args.input))
        _check_model_folder(args.model_id)
        check_output_dir(str(folder), key="--output-root/--folder")
    except (PromptFileError, UserFileError, WeightsFileError) as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    # heavy imports (torch, diffusers) only once the command line is valid
    from clouds.generation.manifest import manifest_name
    from clouds.generation.pipeline import (
        DTYPES,
        ModelNotFoundError,
        load_pipeline,
        resolve_device,
        resolve_dtype,
    )
    from clouds.generation.runner import GenerationSettings, generate_images

    try:
        device = resolve_device(args.device)
        dtype = resolve_dtype(args.dtype, device)
        local = Path(args.model_id).expanduser()
        model_id = str(local.resolve()) if local.exists() else args.model_id
        settings = GenerationSettings(
            prompts=prompts,
            folder=folder,
            num_images=args.num_images,
            model_id=model_id,
            dtype={v: k for k, v in DTYPES.items()}[dtype],
            scheduler=args.scheduler,
            steps=args.steps,
            guidance=args.guidance,
            height=args.height,
            width=args.width,
            batch_size=args.batch_size,
            seed=args.seed,
            part=args.part,
            overwrite=args.overwrite,
        )
        summary = generate_images(
            settings,
            lambda: load_pipeline(
                model_id,
                dtype=dtype,
                device=device,
                local_files_only=args.local_files_only,
                scheduler=args.scheduler,
                channels_last=args.channels_last,
                compile_unet=args.compile,
            ),
        )
    except ModelNotFoundError as e:
        message = weights_unavailable_message(needs[0], hub_problem) if hub_problem else e
        parser.exit(2, f"{parser.prog}: error: {message}\n")
    except ValueError as e:  # bad settings, or a settings mismatch with an earlier run
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    print(
        f"part {args.part}: {summary.written} written, {summary.skipped} already done, "
        f"{summary.planned} in this part; images in {settings.image_dir}, manifest "
        f"{settings.folder / manifest_name(args.part)}"
    )
    return 0
