"""Warm-up training step of CLOUDS: ours vs the original code (yasserben/CLOUDS @ bac4305).

One step = zero the gradients, the model's weighted losses on a batch of random crops and
label maps (32x32-pixel blocks of random classes, some ignored), backward of their sum,
full-model gradient clipping and the AdamW step, each side with the optimizer its trainer
builds from the config (ours: ``clouds.engine.solver``; the original: AdamW over the trainable
parameters with ``clip_grad_norm_`` of the whole model at SOLVER.CLIP_GRADIENTS.CLIP_VALUE, as
its ``build_optimizer``). Both models are built from the original's config at the same path
(``configs/warmup/gta/train_gta.yaml``: ConvNeXt-L, linear class head; ``--config r50``:
``train_gta_r50.yaml``, CLIP RN50) with random CLIP weights, and the original gets our weights.
Timed interleaved in one process (benchmarks/common.py).

The original is not part of this project. Provide it with ``--original-root`` (or the
environment variable CLOUDS_ORIGINAL_ROOT): a checkout of https://github.com/yasserben/CLOUDS at
commit bac4305 (its ``clouds/`` and ``my_utils/`` are imported, the package under another name),
and ``--original-shims`` (or CLOUDS_ORIGINAL_SHIMS): a folder on which Python finds stand-ins of
what the original imports but cannot be installed (no detectron2 wheel):
``detectron2.config`` (``configurable``, ``get_cfg`` with detectron2's defaults, new keys
allowed), ``detectron2.data`` (``MetadataCatalog``, ``DatasetCatalog``),
``detectron2.modeling`` (the registries, ``build_backbone``, ``build_sem_seg_head``,
``Backbone``, ``ShapeSpec``), ``detectron2.modeling.backbone``, ``detectron2.modeling.postprocessing``,
``detectron2.layers`` (``Conv2d`` with norm/activation, ``ShapeSpec``, ``get_norm``),
``detectron2.structures`` (``ImageList``, ``Instances``, ``BitMasks``, ``Boxes``),
``detectron2.utils.{comm,registry,memory,file_io}``,
``detectron2.projects.point_rend`` (``ColorAugSSDTransform``) and its ``point_features``
(``point_sample``, ``get_uncertain_point_coords_with_randomness``), and, unless the original's
compiled op ``MultiScaleDeformableAttention`` is installed (its ``ops/make.sh``; what it uses
on a GPU), an empty module of that name there (the original then runs its pure-PyTorch
deformable attention; ours uses its own kernels, see bench_ms_deform_attn.py). Its
Python packages: segment-anything, fvcore, scipy, matplotlib, opencv (open_clip and timm are
ours). Only the warm-up step is timed: the joint step needs Segment Anything weights and the
original's SAM wrapper on both sides.

    python -m benchmarks.bench_clouds_train_step --original-root ~/CLOUDS --original-shims ~/d2_shims
    python -m benchmarks.bench_clouds_train_step --device cuda --height 768 --width 768 --batch 2
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import itertools
import logging
import os
import sys
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.common import comparison_rows, measure, publish, resolve_device
from benchmarks.models import build_ours, random_images, random_labels
from clouds.config import CfgNode, load_config
from clouds.engine.solver import build_optimizer, clip_gradients, trainable_parameters

__all__ = ["OriginalNotFoundError", "main"]

CONFIGS = {
    "full": "configs/warmup/gta/train_gta.yaml",
    "r50": "configs/warmup/gta/train_gta_r50.yaml",
}
ORIGINAL_PACKAGE = "clouds_original"
_SHIM_MODULES = (
    "detectron2.config",
    "detectron2.data",
    "detectron2.modeling",
    "detectron2.layers",
    "detectron2.structures",
    "detectron2.utils.comm",
    "detectron2.projects.point_rend.point_features",
)
_DEFORMABLE_OP = "MultiScaleDeformableAttention"
_COLUMNS = (
    "model",
    "dtype",
    "images_per_s",
    "ms_per_step",
    "best_images_per_s",
    "peak_MiB",
    "vs_peer",
    "vs_peer_best",
)


class OriginalNotFoundError(RuntimeError):
    """The original code or its detectron2 stand-ins are not where the options point."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", default="full", choices=sorted(CONFIGS))
    p.add_argument("--original-root", default=os.environ.get("CLOUDS_ORIGINAL_ROOT"))
    p.add_argument("--original-shims", default=os.environ.get("CLOUDS_ORIGINAL_SHIMS"))
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:i]")
    p.add_argument("--height", type=int, help="crop height (default 768 GPU, 128 CPU)")
    p.add_argument("--width", type=int, help="crop width (default 768 GPU, 128 CPU)")
    p.add_argument("--batch", type=int, help="images per step (default 2 GPU, 1 CPU)")
    p.add_argument("--warmup", type=int, help="untimed steps (default 3 GPU, 1 CPU)")
    p.add_argument("--repeats", type=int, help="timed steps (default 20 GPU, 5 CPU)")
    p.add_argument("--json", default="benchmarks/results/clouds_train_step.json")
    return p


def _require_original(root: str | None, shims: str | None) -> tuple[Path, Path]:
    """The checked original root and shim folder; a message saying what to provide else."""
    usage = (
        "Give --original-root (or CLOUDS_ORIGINAL_ROOT): a checkout of "
        "https://github.com/yasserben/CLOUDS at commit bac4305, and --original-shims (or "
        "CLOUDS_ORIGINAL_SHIMS): a folder with detectron2 stand-ins (see this script's doc)."
    )
    if not root or not (Path(root) / "clouds" / "clouds.py").is_file():
        raise OriginalNotFoundError(f"No original CLOUDS checkout at {root!r}. {usage}")
    if not (Path(root) / "my_utils").is_dir():
        raise OriginalNotFoundError(f"{root} has no my_utils/ (original CLOUDS). {usage}")
    if not shims or not Path(shims).is_dir():
        raise OriginalNotFoundError(f"No detectron2 stand-in folder at {shims!r}. {usage}")
    missing = [
        m
        for m in _SHIM_MODULES
        if not (Path(shims) / Path(*m.split("."))).with_suffix(".py").is_file()
        and not (Path(shims) / Path(*m.split(".")) / "__init__.py").is_file()
    ]
    if not (Path(shims) / f"{_DEFORMABLE_OP}.py").is_file() and not importlib.util.find_spec(
        _DEFORMABLE_OP
    ):
        missing.append(_DEFORMABLE_OP)
    if missing:
        raise OriginalNotFoundError(f"{shims} lacks the stand-in module(s) {missing}. {usage}")
    return Path(root), Path(shims)


def _import_original(root: Path, shims: Path) -> types.ModuleType:
    """The original ``clouds`` package imported as ``clouds_original`` (its ``__init__``s that
    register datasets and log to wandb skipped), its model modules registered."""
    for path in (str(shims), str(root)):
        if path not in sys.path:
            sys.path.insert(0, path)
    for name, folder in (
        (ORIGINAL_PACKAGE, "clouds"),
        (f"{ORIGINAL_PACKAGE}.utils", "clouds/utils"),
    ):
        package = types.ModuleType(name)
        package.__path__ = [str(root / folder)]
        sys.modules[name] = package
    importlib.import_module(f"{ORIGINAL_PACKAGE}.modeling")
    importlib.import_module(f"{ORIGINAL_PACKAGE}.clouds")
    return importlib.import_module(f"{ORIGINAL_PACKAGE}.config")


def _original_config(root: Path, config: str, class_names: list[str]) -> Any:
    from detectron2.config import get_cfg
    from detectron2.data import MetadataCatalog

    config_module = sys.modules[f"{ORIGINAL_PACKAGE}.config"]
    cfg = get_cfg()
    cfg.set_new_allowed(True)
    for add in ("add_maskformer2_config", "add_clouds_config", "add_wandb_config"):
        getattr(config_module, add)(cfg)
    config_module.add_prerocessing_training_set_config(cfg)
    cfg.merge_from_file(str(root / config))
    cfg.merge_from_list(["MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS", ""])
    for name in (*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST):
        MetadataCatalog.get(name).set(stuff_classes=class_names, ignore_label=255)
    return cfg


def _original_inputs(images: torch.Tensor, labels: torch.Tensor) -> list[dict[str, Any]]:
    """Training inputs as the original's mapper makes them: per-class binary masks."""
    from detectron2.structures import Instances

    inputs = []
    for image, label in zip(images, labels):
        classes = np.unique(label.cpu().numpy())
        classes = classes[classes != 255]
        instances = Instances(tuple(label.shape))
        instances.gt_classes = torch.as_tensor(classes, dtype=torch.int64)
        instances.gt_masks = torch.stack([label == int(c) for c in classes])
        inputs.append({"image": image, "sem_seg": label, "instances": instances})
    return inputs


def _step(
    model: nn.Module,
    inputs: list[dict[str, Any]],
    optimizer: torch.optim.Optimizer,
    clip: Callable[[], object],
) -> Callable[[], None]:
    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        sum(model(inputs).values()).backward()
        clip()
        optimizer.step()

    return step


def _original_optimizer(cfg: Any, model: nn.Module) -> tuple[torch.optim.Optimizer, Callable]:
    """AdamW with one group per trainable parameter, as the original's ``build_optimizer``
    (the per-group rates and decays do not change the cost), and whole-model norm clipping."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p]} for p in params]
    optimizer = torch.optim.AdamW(
        groups, lr=cfg.SOLVER.BASE_LR, weight_decay=cfg.SOLVER.WEIGHT_DECAY
    )
    clip_value = cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE

    def clip() -> None:
        torch.nn.utils.clip_grad_norm_(
            itertools.chain(*[g["params"] for g in optimizer.param_groups]), clip_value
        )

    return optimizer, clip


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the Markdown table, write the JSON; returns the JSON payload."""
    args = _parser().parse_args(argv)
    root, shims = _require_original(args.original_root, args.original_shims)
    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    height = args.height or (768 if gpu else 128)
    width = args.width or (768 if gpu else 128)
    batch = args.batch or (2 if gpu else 1)
    warmup = args.warmup if args.warmup is not None else (3 if gpu else 1)
    repeats = args.repeats or (20 if gpu else 5)
    torch.manual_seed(0)

    cfg: CfgNode = load_config(
        CONFIGS[args.config], ["MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS", "", "MODEL.DEVICE", "cpu"]
    )
    ours = build_ours(cfg, device).train()
    _import_original(root, shims)
    from detectron2.modeling import META_ARCH_REGISTRY

    class_names = list(ours.class_names[ours.train_dataset])
    original_cfg = _original_config(root, CONFIGS[args.config], class_names)
    root_logger = logging.getLogger()
    level = root_logger.level
    root_logger.setLevel(logging.ERROR)  # open_clip: "no pretrained weights" (intended)
    try:
        original = META_ARCH_REGISTRY.get("CLOUDS")(original_cfg)
    finally:
        root_logger.setLevel(level)
    unshared = original.load_state_dict(ours.state_dict(), strict=False).missing_keys
    original = original.to(device).train()
    # The original caches its text classifier on the first training call; a fixed one spares
    # its text encoder (written for open_clip 2.20's sequence-first transformer), as ours.
    embed_dim = original.void_embedding.weight.shape[1]
    original.train_text_classifier = F.normalize(
        torch.randn(len(class_names), embed_dim, device=device), dim=-1
    )

    images = random_images(batch, height, width, device)
    labels = random_labels(batch, height, width, device)
    our_optimizer = build_optimizer(cfg, ours)
    our_params = trainable_parameters(ours)
    original_optimizer, original_clip = _original_optimizer(original_cfg, original)
    fns = {
        "peer": _step(
            original, _original_inputs(images, labels), original_optimizer, original_clip
        ),
        "ours": _step(
            ours,
            [{"image": i, "sem_seg": s} for i, s in zip(images, labels)],
            our_optimizer,
            lambda: clip_gradients(cfg, our_params),
        ),
    }
    results = measure(fns, device=device, warmup=warmup, repeats=repeats)
    rows = comparison_rows(
        results,
        items_per_call=batch,
        dtype="fp32",
        fast_label="-",
        time_column=("ms_per_step", lambda m: m.median_s * 1000),
    )
    rows[0]["model"] = "original"
    return publish(
        "clouds_train_step",
        device=device,
        settings={
            "config": CONFIGS[args.config],
            "crop_size": [height, width],
            "batch": batch,
            "warmup": warmup,
            "repeats": repeats,
            "original": "yasserben/CLOUDS@bac4305 (detectron2 stand-ins, pure-PyTorch MSDeformAttn)",
            "original_tensors_not_from_ours": unshared,
        },
        rows=rows,
        columns=_COLUMNS,
        json_path=args.json,
    )


if __name__ == "__main__":
    main()
