"""Joint training step of CLOUDS: ours vs the original code (yasserben/CLOUDS @ bac4305).

One step = what one joint-training iteration does on a batch of labelled source crops and
generated (unlabelled) images: the EMA teacher update when the iteration is on its period
(``--teacher-period``, default 1: every timed step updates; the configs update every 100), the
teacher's prediction on the clean generated images, the point prompts of their large regions,
SAM (MobileSAM, ``vit_t``) encoding each image and decoding the prompts, the pseudo-label maps
and mask targets, the student's weighted losses on the labelled crops and the colour-jittered
generated images, backward, gradient clipping and the AdamW step. Ours runs it as its Lightning
loop does (``JointTraining``'s batch-start hook, the pseudo-labeller as the module's batch
transform, ``clouds.engine.solver``'s optimizer and clipping); the original runs its model's
``forward`` (which holds the EMA update, teacher, SAM and losses) with its optimizer as in
bench_clouds_train_step.py. Both models come from the original's config at the same path
(``configs/joint_training/gta/train_jt_gta.yaml``: ConvNeXt-L; ``--config r50``:
``train_jt_gta_r50.yaml``), random CLIP weights, the original loading ours; both SAMs load the
same MobileSAM weights (``--sam-checkpoint``, e.g. the published mobile_sam.pt; default: a
random MobileSAM written to a temporary file), both in training mode as in the original.
Timed interleaved in one process (benchmarks/common.py).

Not timed: data loading and augmentation (the batch is fixed), logging, checkpointing. The
original's per-step debug output (``visualize_semantic_map_maxed``: a matplotlib ``imshow``;
``save_semantic_map_maxed``: a PNG written to the working directory, per generated image) is
switched off. Other adaptations the original needs here: MobileSAM's registry answers with the
same weights file instead of ``./weights/mobile_sam.pt``; SAM is told the generated images'
true size instead of the literal 768x768 of the original's generated images (only when the crop
is not 768x768); on a CPU, ``transform_masks``' ``.to("cuda")`` goes to the CPU.

The original and its detectron2 stand-ins are provided as for bench_clouds_train_step.py
(``--original-root`` / CLOUDS_ORIGINAL_ROOT, ``--original-shims`` / CLOUDS_ORIGINAL_SHIMS, see
its doc), with the ``mobile_sam`` package installed (``pip install mobilesam-mirror``).

    python -m benchmarks.bench_clouds_joint_step --original-root ~/CLOUDS --original-shims ~/d2_shims
    python -m benchmarks.bench_clouds_joint_step --device cuda --sam-checkpoint weights/mobile_sam.pt
"""

from __future__ import annotations

import contextlib
import functools
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmarks.bench_clouds_train_step import (
    ORIGINAL_PACKAGE,
    build_model_pair,
    optimizer_step,
    original_inputs,
    original_optimizer,
    original_parser,
    our_optimizer,
    publish_step_comparison,
    require_original,
    step_sizes,
)
from benchmarks.common import measure
from benchmarks.models import random_images, random_labels
from clouds.config import CfgNode
from clouds.engine.joint_training import JointTraining

__all__ = ["OurJointStep", "generated_images", "main", "prompted_regions"]

CONFIGS = {
    "full": "configs/joint_training/gta/train_jt_gta.yaml",
    "r50": "configs/joint_training/gta/train_jt_gta_r50.yaml",
}
_ORIGINAL_SAM_SIZE = (768, 768)  # the size the original tells SAM its generated images have


def generated_images(
    count: int, height: int, width: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, H, W) uint8 clean images of 32x32-pixel colour blocks with noise, and their
    colour-jittered copies (a fixed per-channel shift) that the student sees."""
    gen = torch.Generator().manual_seed(2)
    blocks = torch.randint(0, 256, (count, 3, -(-height // 32), -(-width // 32)), generator=gen)
    clean = blocks.repeat_interleave(32, 2).repeat_interleave(32, 3)[..., :height, :width]
    clean = clean + torch.randint(-12, 13, clean.shape, generator=gen)
    shift = torch.tensor([12, -18, 6])[:, None, None]
    jittered = clean + shift
    return (
        clean.clamp(0, 255).to(torch.uint8).to(device),
        jittered.clamp(0, 255).to(torch.uint8).to(device),
    )


class _Loop(SimpleNamespace):
    """What the joint-training hooks read of Lightning's trainer and module."""

    model: nn.Module
    device: torch.device
    global_step: int
    global_rank: int


class OurJointStep:
    """One joint-training iteration of ours, as our Lightning loop runs it."""

    def __init__(
        self, cfg: CfgNode, model: nn.Module, batch: list[dict[str, Any]], device: torch.device
    ) -> None:
        """
        Args:
            cfg: config with joint training on (``MODEL.CLOUDS.SAM.MINIBATCH``/``ENABLED``).
            model: our CLOUDS in training mode on ``device``.
            batch: labelled items ("image", "sem_seg") and generated ones ("image" jittered,
                "image_clean").
        """
        self.model = model
        self.batch = batch
        self.joint = JointTraining.from_config(cfg)
        self.loop = _Loop(model=model, device=device, global_step=0, global_rank=0)
        self.joint.on_fit_start(self.loop, self.loop)  # teacher = student; SAM to the device
        self.optimizer, self.clip = our_optimizer(cfg, model)

    def __call__(self) -> None:
        self.joint.on_train_batch_start(self.loop, self.loop, self.batch, 0)
        labelled = self.loop.batch_transform(self.batch)
        self.optimizer.zero_grad(set_to_none=True)
        sum(self.model(labelled).values()).backward()
        self.clip()
        self.optimizer.step()
        self.loop.global_step += 1


def prompted_regions(step: OurJointStep) -> int:
    """Regions SAM is prompted on when ``step``'s batch is labelled now (labels it once more)."""
    refiner = step.joint.labeler.refiner
    if refiner is None:
        return 0
    counts: list[int] = []
    prompts = refiner.prompts

    def counting(label_map: np.ndarray, generator: Any) -> tuple[np.ndarray, np.ndarray]:
        points, classes = prompts(label_map, generator)
        counts.append(len(classes))
        return points, classes

    refiner.prompts = counting
    try:
        step.joint.labeler.label(step.model, step.batch, step=step.loop.global_step)
    finally:
        del refiner.prompts
    return sum(counts)


def _write_random_mobile_sam(path: Path) -> None:
    from mobile_sam import sam_model_registry

    torch.manual_seed(0)
    torch.save(sam_model_registry["vit_t"](checkpoint=None).state_dict(), path)


@contextlib.contextmanager
def _original_sam_weights(weights: str) -> Iterator[None]:
    """While the original is built, MobileSAM's registry loads ``weights`` (not the path the
    original passes)."""
    from mobile_sam import sam_model_registry

    build = sam_model_registry["vit_t"]

    def build_from_weights(checkpoint: str | None = None) -> nn.Module:
        return build(checkpoint=weights)

    sam_model_registry["vit_t"] = build_from_weights
    try:
        yield
    finally:
        sam_model_registry["vit_t"] = build


def _to_device_instead_of_cuda(fn: Callable, device: torch.device) -> Callable:
    """``fn`` with its tensors' ``.to("cuda")`` going to ``device``."""
    to = torch.Tensor.to

    def redirected(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if args and args[0] == "cuda":
            args = (device, *args[1:])
        return to(tensor, *args, **kwargs)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        torch.Tensor.to = redirected
        try:
            return fn(*args, **kwargs)
        finally:
            torch.Tensor.to = to

    return wrapper


def _adapt_original(device: torch.device, size: tuple[int, int]) -> list[str]:
    """The harness adaptations of the original's joint step (module doc); their list."""
    clouds_module = sys.modules[f"{ORIGINAL_PACKAGE}.clouds"]
    sam_class = sys.modules[f"{ORIGINAL_PACKAGE}.sam"].SAM
    clouds_module.visualize_semantic_map_maxed = lambda *args, **kwargs: None
    clouds_module.save_semantic_map_maxed = lambda *args, **kwargs: None
    adaptations = ["per-step debug visualisation off", "MobileSAM weights from the same file"]
    if size != _ORIGINAL_SAM_SIZE:
        set_image, apply_coords = sam_class.set_torch_image, sam_class.apply_coords
        sam_class.set_torch_image = lambda self, image, _: set_image(self, image, size)
        sam_class.apply_coords = lambda self, coords, _: apply_coords(self, coords, size)
        adaptations.append(f"SAM told the true image size {size} instead of (768, 768)")
    if device.type != "cuda":
        clouds_module.transform_masks = _to_device_instead_of_cuda(
            clouds_module.transform_masks, device
        )
        adaptations.append(f'transform_masks .to("cuda") -> {device}')
    return adaptations


def _original_generated(clean: torch.Tensor, jittered: torch.Tensor) -> list[dict[str, Any]]:
    """Generated items as the original's mapper makes them: "image" clean, "image_aug" the
    student's view, no instances, an image id marking them as generated."""
    from detectron2.structures import Instances

    height, width = clean.shape[-2:]
    items = []
    for k, (image, view) in enumerate(zip(clean, jittered)):
        instances = Instances((height, width))
        instances.gt_classes = torch.zeros(0, dtype=torch.int64)
        instances.gt_masks = torch.zeros(0, height, width, dtype=torch.bool)
        items.append(
            {
                "image": image,
                "image_aug": view,
                "instances": instances,
                "file_name": f"sd/{k}.png",
                "image_id": f"generated_{k}",
                "height": height,
                "width": width,
            }
        )
    return items


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the Markdown table, write the JSON; returns the JSON payload."""
    parser = original_parser(__doc__, CONFIGS, "benchmarks/results/clouds_joint_step.json")
    parser.add_argument("--labelled", type=int, default=1, help="source crops per step")
    parser.add_argument("--generated", type=int, default=1, help="generated images per step")
    parser.add_argument("--teacher-period", type=int, default=1, help="ITERATION_UPDATE")
    parser.add_argument("--size-threshold", type=int, help="SAM.SIZE_THRESHOLD (config's: 5000)")
    parser.add_argument("--sam-checkpoint", help="MobileSAM weights (default: random ones)")
    args = parser.parse_args(argv)
    root, shims = require_original(args.original_root, args.original_shims)
    sizes = step_sizes(args)
    device, size = sizes.device, (sizes.height, sizes.width)
    overrides = ["MODEL.CLOUDS.ITERATION_UPDATE", str(args.teacher_period)]
    if args.size_threshold is not None:
        overrides += ["MODEL.CLOUDS.SAM.SIZE_THRESHOLD", str(args.size_threshold)]

    images = random_images(args.labelled, *size, device)
    labels = random_labels(args.labelled, *size, device)
    clean, jittered = generated_images(args.generated, *size, device)
    with tempfile.TemporaryDirectory() as scratch:
        sam_checkpoint = args.sam_checkpoint or str(Path(scratch) / "mobile_sam_random.pt")
        if not args.sam_checkpoint:
            _write_random_mobile_sam(Path(sam_checkpoint))
        torch.manual_seed(0)
        with _original_sam_weights(sam_checkpoint):
            pair = build_model_pair(
                CONFIGS[args.config],
                root,
                shims,
                device,
                overrides=overrides,
                our_overrides=["MODEL.CLOUDS.SAM.CHECKPOINT", sam_checkpoint],
                ignored_prefixes=("sem_seg_head_ema.", "sam."),
            )
        ours = OurJointStep(
            pair.cfg,
            pair.ours,
            [{"image": i, "sem_seg": s} for i, s in zip(images, labels)]
            + [{"image": j, "image_clean": c} for c, j in zip(clean, jittered)],
            device,
        )
    adaptations = _adapt_original(device, size)
    original = optimizer_step(
        pair.original,
        original_inputs(images, labels) + _original_generated(clean, jittered),
        *original_optimizer(pair.original_cfg, pair.original),
    )
    results = measure(
        {"peer": original, "ours": ours}, device=device, warmup=sizes.warmup, repeats=sizes.repeats
    )
    return publish_step_comparison(
        "clouds_joint_step",
        results,
        items_per_call=args.labelled + args.generated,
        device=device,
        settings={
            "config": CONFIGS[args.config],
            "crop_size": list(size),
            "labelled": args.labelled,
            "generated": args.generated,
            "teacher_period": args.teacher_period,
            "size_threshold": pair.cfg.MODEL.CLOUDS.SAM.SIZE_THRESHOLD,
            "sam": args.sam_checkpoint or "MobileSAM (vit_t), random weights, the same both sides",
            "prompted_regions_per_step": prompted_regions(ours),
            "warmup": sizes.warmup,
            "repeats": sizes.repeats,
            "original": "yasserben/CLOUDS@bac4305 (detectron2 stand-ins, pure-PyTorch MSDeformAttn)",
            "original_adaptations": adaptations,
            "original_tensors_not_from_ours": pair.unshared,
        },
        json_path=args.json,
    )


if __name__ == "__main__":
    main()
