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
ours). The joint step (EMA teacher, SAM-refined pseudo-labels) is timed by
bench_clouds_joint_step.py, which shares this script's loading code.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.common import Measurement, comparison_rows, measure, publish, resolve_device
from benchmarks.models import build_ours, random_images, random_labels
from clouds.config import CfgNode, load_config
from clouds.engine.solver import build_optimizer, clip_gradients, trainable_parameters

__all__ = [
    "ModelPair",
    "OriginalNotFoundError",
    "StepSizes",
    "build_model_pair",
    "main",
    "optimizer_step",
    "original_inputs",
    "original_optimizer",
    "original_parser",
    "our_optimizer",
    "publish_step_comparison",
    "require_original",
    "step_sizes",
]

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


def original_parser(
    description: str, configs: dict[str, str], json_path: str
) -> argparse.ArgumentParser:
    """Options of the side-by-side step benchmarks: config, the original's location, device,
    crop size, warm-up and timed steps, JSON path."""
    p = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--config", default="full", choices=sorted(configs))
    p.add_argument("--original-root", default=os.environ.get("CLOUDS_ORIGINAL_ROOT"))
    p.add_argument("--original-shims", default=os.environ.get("CLOUDS_ORIGINAL_SHIMS"))
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:i]")
    p.add_argument("--height", type=int, help="crop height (default 768 GPU, 128 CPU)")
    p.add_argument("--width", type=int, help="crop width (default 768 GPU, 128 CPU)")
    p.add_argument("--warmup", type=int, help="untimed steps (default 3 GPU, 1 CPU)")
    p.add_argument("--repeats", type=int, help="timed steps (default 20 GPU, 5 CPU)")
    p.add_argument("--json", default=json_path)
    return p


@dataclass(frozen=True)
class StepSizes:
    """Crop size and step counts of a run (the command line's, else the device's defaults)."""

    device: torch.device
    height: int
    width: int
    warmup: int
    repeats: int


def step_sizes(args: argparse.Namespace) -> StepSizes:
    """Defaults: 768x768 crops, 3 warm-up and 20 timed steps on a GPU; 128x128, 1 and 5 on CPU."""
    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    return StepSizes(
        device=device,
        height=args.height or (768 if gpu else 128),
        width=args.width or (768 if gpu else 128),
        warmup=args.warmup if args.warmup is not None else (3 if gpu else 1),
        repeats=args.repeats or (20 if gpu else 5),
    )


def require_original(root: str | None, shims: str | None) -> tuple[Path, Path]:
    """The checked original root and shim folder; a message saying what to provide else."""
    usage = (
        "Give --original-root (or CLOUDS_ORIGINAL_ROOT): a checkout of "
        "https://github.com/yasserben/CLOUDS at commit bac4305, and --original-shims (or "
        "CLOUDS_ORIGINAL_SHIMS): a folder with detectron2 stand-ins (see "
        "benchmarks/bench_clouds_train_step.py's doc)."
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


def _original_config(
    root: Path, config: str, class_names: list[str], overrides: Sequence[str]
) -> Any:
    from detectron2.config import get_cfg
    from detectron2.data import MetadataCatalog

    config_module = sys.modules[f"{ORIGINAL_PACKAGE}.config"]
    cfg = get_cfg()
    cfg.set_new_allowed(True)
    for add in ("add_maskformer2_config", "add_clouds_config", "add_wandb_config"):
        getattr(config_module, add)(cfg)
    config_module.add_prerocessing_training_set_config(cfg)
    cfg.merge_from_file(str(root / config))
    cfg.merge_from_list(["MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS", "", *overrides])
    for name in (*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST):
        MetadataCatalog.get(name).set(stuff_classes=class_names, ignore_label=255)
    return cfg


@dataclass
class ModelPair:
    """Our model and the original, built from the same config path, with the same weights."""

    cfg: CfgNode
    ours: nn.Module
    original_cfg: Any
    original: nn.Module
    unshared: list[str]
    """The original's tensors not loaded from ours (besides ``ignored_prefixes``)."""


def build_model_pair(
    config: str,
    root: Path,
    shims: Path,
    device: torch.device,
    *,
    overrides: Sequence[str] = (),
    our_overrides: Sequence[str] = (),
    ignored_prefixes: tuple[str, ...] = (),
) -> ModelPair:
    """Both models from ``config`` (random CLIP weights), in training mode on ``device``.

    Args:
        config: config path, the same in this project and in the original checkout.
        overrides: ``KEY VALUE`` pairs applied to both configs.
        our_overrides: pairs applied to ours only (keys the original does not have).
        ignored_prefixes: the original's tensors that are not the student's (e.g. its teacher
            head and SAM), left out of :attr:`ModelPair.unshared`.
    """
    cfg: CfgNode = load_config(
        config,
        ["MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS", "", "MODEL.DEVICE", "cpu", *overrides]
        + list(our_overrides),
    )
    ours = build_ours(cfg, device).train()
    _import_original(root, shims)
    from detectron2.modeling import META_ARCH_REGISTRY

    class_names = list(ours.class_names[ours.train_dataset])
    original_cfg = _original_config(root, config, class_names, overrides)
    root_logger = logging.getLogger()
    level = root_logger.level
    root_logger.setLevel(logging.ERROR)  # open_clip: "no pretrained weights" (intended)
    try:
        original = META_ARCH_REGISTRY.get("CLOUDS")(original_cfg)
    finally:
        root_logger.setLevel(level)
    missing = original.load_state_dict(ours.state_dict(), strict=False).missing_keys
    original = original.to(device).train()
    # The original caches its text classifier on the first training call; a fixed one spares
    # its text encoder (written for open_clip 2.20's sequence-first transformer), as ours.
    embed_dim = original.void_embedding.weight.shape[1]
    original.train_text_classifier = F.normalize(
        torch.randn(len(class_names), embed_dim, device=device), dim=-1
    )
    unshared = [k for k in missing if not k.startswith(ignored_prefixes)]
    return ModelPair(cfg, ours, original_cfg, original, unshared)


def original_inputs(images: torch.Tensor, labels: torch.Tensor) -> list[dict[str, Any]]:
    """Labelled training inputs as the original's mapper makes them: per-class binary masks."""
    from detectron2.structures import Instances

    inputs = []
    for k, (image, label) in enumerate(zip(images, labels)):
        classes = np.unique(label.cpu().numpy())
        classes = classes[classes != 255]
        instances = Instances(tuple(label.shape))
        instances.gt_classes = torch.as_tensor(classes, dtype=torch.int64)
        instances.gt_masks = torch.stack([label == int(c) for c in classes])
        inputs.append(
            {"image": image, "sem_seg": label, "instances": instances, "image_id": f"gta_{k}"}
        )
    return inputs


def optimizer_step(
    model: nn.Module,
    inputs: list[dict[str, Any]],
    optimizer: torch.optim.Optimizer,
    clip: Callable[[], object],
) -> Callable[[], None]:
    """One training step: zero the gradients, backward of the summed losses, clip, step."""

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        sum(model(inputs).values()).backward()
        clip()
        optimizer.step()

    return step


def original_optimizer(cfg: Any, model: nn.Module) -> tuple[torch.optim.Optimizer, Callable]:
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


def our_optimizer(cfg: CfgNode, model: nn.Module) -> tuple[torch.optim.Optimizer, Callable]:
    """The optimizer our trainer builds and its gradient clipping."""
    params = trainable_parameters(model)
    return build_optimizer(cfg, model), lambda: clip_gradients(cfg, params)


def publish_step_comparison(
    benchmark: str,
    results: dict[str, Measurement],
    *,
    items_per_call: int,
    device: torch.device,
    settings: dict[str, Any],
    json_path: str,
) -> dict[str, Any]:
    """The table (the original's row first, as "original") and the JSON of a step comparison."""
    rows = comparison_rows(
        results,
        items_per_call=items_per_call,
        dtype="fp32",
        fast_label="-",
        time_column=("ms_per_step", lambda m: m.median_s * 1000),
    )
    rows[0]["model"] = "original"
    return publish(
        benchmark,
        device=device,
        settings=settings,
        rows=rows,
        columns=_COLUMNS,
        json_path=json_path,
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the Markdown table, write the JSON; returns the JSON payload."""
    parser = original_parser(__doc__, CONFIGS, "benchmarks/results/clouds_train_step.json")
    parser.add_argument("--batch", type=int, help="images per step (default 2 GPU, 1 CPU)")
    args = parser.parse_args(argv)
    root, shims = require_original(args.original_root, args.original_shims)
    sizes = step_sizes(args)
    device = sizes.device
    batch = args.batch or (2 if device.type == "cuda" else 1)
    torch.manual_seed(0)

    pair = build_model_pair(CONFIGS[args.config], root, shims, device)
    images = random_images(batch, sizes.height, sizes.width, device)
    labels = random_labels(batch, sizes.height, sizes.width, device)
    our_opt, our_clip = our_optimizer(pair.cfg, pair.ours)
    fns = {
        "peer": optimizer_step(
            pair.original,
            original_inputs(images, labels),
            *original_optimizer(pair.original_cfg, pair.original),
        ),
        "ours": optimizer_step(
            pair.ours,
            [{"image": i, "sem_seg": s} for i, s in zip(images, labels)],
            our_opt,
            our_clip,
        ),
    }
    results = measure(fns, device=device, warmup=sizes.warmup, repeats=sizes.repeats)
    return publish_step_comparison(
        "clouds_train_step",
        results,
        items_per_call=batch,
        device=device,
        settings={
            "config": CONFIGS[args.config],
            "crop_size": [sizes.height, sizes.width],
            "batch": batch,
            "warmup": sizes.warmup,
            "repeats": sizes.repeats,
            "original": "yasserben/CLOUDS@bac4305 (detectron2 stand-ins, pure-PyTorch MSDeformAttn)",
            "original_tensors_not_from_ours": pair.unshared,
        },
        json_path=args.json,
    )


if __name__ == "__main__":
    main()
