"""DGVFM beside the original code (tpy001/VFMSeg): one training step and coarse-to-fine inference.

Both sides build ``dg_lora_dinov2_ms_masked`` (ours: the YAML config; the original: its own
``.py`` config through mmengine) with the same smaller DINOv2 (``--width``/``--depth``/``--heads``;
heads, LoRA rank and test settings as the configs set them), and ours loads the original's
initial weights, so that both do the same work (the refinement of a window depends on the
coarse prediction's confidence; the script checks that both predict the same).

- training step: ``--batch`` random uint8 crops of ``--crop`` pixels with random 19-class labels;
  forward (light head on the half-size image, refinement head on a ``--sub-crop`` sub-crop),
  backward of the summed losses, AdamW step on the trainable tensors (LoRA and heads). The
  original runs mmengine's ``train_step`` (data preprocessor included) with an ``OptimWrapper``.
- inference: one ``--image`` (h w) image, coarse-to-fine as TEST.MODE "ms_slide" /
  ``ms_slide_inference`` (whole image at 512x1024, then 512 windows at stride 320), data
  normalisation and output post-processing included (the original: ``test_step``).

The original needs a setup outside this project, given by ``--original-root DIR`` or the
environment variable ``DGVFM_ORIGINAL_ROOT``:

- ``DIR`` or ``DIR/orig``: a checkout of tpy001/VFMSeg (``rein/`` and ``configs/``);
- an interpreter that imports mmsegmentation 1.2.2, mmengine, mmcv (``mmcv-lite`` is enough: its
  compiled operators are not used), peft and timm besides this project: the running one, else
  ``DIR/venv/bin/python`` (e.g. ``python -m venv --system-site-packages DIR/venv``), which the
  script then re-runs itself with;
- optionally ``DIR/shims``: modules put first on ``sys.path`` (e.g. a CPU stand-in for
  ``xformers.ops``, which the original's DINOv2 attention uses when it can import it).

Without it the script says so and times our side alone. Timing and peak memory as in
:mod:`benchmarks.common` (round-robin over the four calls).

    python -m benchmarks.bench_dgvfm_original --original-root /path/to/setup
    DGVFM_ORIGINAL_ROOT=/path/to/setup python -m benchmarks.bench_dgvfm_original --device cuda
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import tempfile
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmarks.common import Measurement, measure, publish, resolve_device
from clouds.config import CfgNode, load_config
from clouds.modeling import build_model
from clouds.modeling.checkpoint.mmengine import map_original_state_dict

__all__ = ["main"]

REPO = Path(__file__).resolve().parents[1]
OUR_CONFIG = REPO / "configs/dg/gta2citys/dg_lora_dinov2_ms_masked.yaml"
ORIGINAL_CONFIG = "configs/dg/gta2citys/dg_lora_dinov2_ms_masked.py"
ROOT_VARIABLE = "DGVFM_ORIGINAL_ROOT"
_REEXEC_MARK = "DGVFM_BENCH_REEXEC"  # set when the script re-ran itself in DIR/venv
_COLUMNS = ("task", "model", "ms_median", "ms_best", "peak_MiB", "speed_vs_original")
_NUM_CLASSES = 19


@dataclass(frozen=True)
class Sizes:
    """The sizes both sides are built and run at."""

    width: int
    depth: int
    heads: int
    crop: int
    sub_crop: int
    batch: int
    image: tuple[int, int]

    @property
    def out_indices(self) -> list[int]:
        """Four evenly spaced blocks ending with the last (DINOv2-L's 7, 11, 15, 23 at depth 24)."""
        return [self.depth * k // 4 - 1 for k in range(1, 5)]


@dataclass(frozen=True)
class OriginalSetup:
    root: Path
    checkout: Path
    shims: Path | None
    python: Path | None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--original-root",
        default=os.environ.get(ROOT_VARIABLE, ""),
        help=f"setup of the original code (default: ${ROOT_VARIABLE}); see above",
    )
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:i]")
    p.add_argument("--width", type=int, default=384, help="ViT width (DINOv2-L: 1024)")
    p.add_argument("--depth", type=int, default=12, help="ViT blocks (DINOv2-L: 24)")
    p.add_argument("--heads", type=int, default=6, help="ViT attention heads (DINOv2-L: 16)")
    p.add_argument("--crop", type=int, default=512, help="training crop side (config: 1024)")
    p.add_argument("--sub-crop", type=int, default=256, help="refinement sub-crop (config: 512)")
    p.add_argument("--batch", type=int, default=2, help="training images per step (config: 2)")
    p.add_argument(
        "--image",
        type=int,
        nargs=2,
        default=(512, 1024),
        help="inference image h w (eval 1024 2048)",
    )
    p.add_argument("--warmup", type=int, default=1, help="untimed calls each")
    p.add_argument("--repeats", type=int, default=5, help="timed calls each")
    p.add_argument("--json", default="benchmarks/results/dgvfm_original.json")
    return p


# ---------------------------------------------------------------------------- the original


def find_original_setup(root: str) -> OriginalSetup | None:
    """The setup under ``root`` (None when ``root`` is empty); a clear error when incomplete."""
    if not root:
        return None
    base = Path(root).expanduser().resolve()
    checkout = next((d for d in (base / "orig", base) if (d / "rein").is_dir()), None)
    if checkout is None or not (checkout / ORIGINAL_CONFIG).is_file():
        raise SystemExit(
            f"--original-root {root}: no VFMSeg checkout (with rein/ and {ORIGINAL_CONFIG}) "
            f"in {base} or {base / 'orig'}"
        )
    shims = base / "shims"
    python = base / "venv" / "bin" / "python"
    return OriginalSetup(
        base, checkout, shims if shims.is_dir() else None, python if python.is_file() else None
    )


class _MissingMmcvOps(types.ModuleType):
    """Stands for mmcv's compiled extension: its operators fail when called."""

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("__"):
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError(f"mmcv operator {name} needs full mmcv (mmcv-lite installed)")

        return call


def _stub_missing_mmcv_ops() -> None:
    """mmcv-lite has no compiled extension; the DGVFM models use none of its operators, but
    mmseg imports ``mmcv.ops``: register a stand-in whose operators fail when called."""
    try:
        importlib.import_module("mmcv._ext")
    except ImportError:
        module = _MissingMmcvOps("mmcv._ext")
        module.__file__ = "mmcv/_ext (missing: mmcv-lite)"
        sys.modules["mmcv._ext"] = module


def import_original(setup: OriginalSetup) -> None:
    """Make the original's packages importable here, or re-run this script with DIR/venv."""
    if setup.shims is not None:
        sys.path.insert(0, str(setup.shims))
    sys.path.insert(0, str(setup.checkout))
    try:
        importlib.import_module("mmseg")
    except ImportError:
        if setup.python is None or os.environ.get(_REEXEC_MARK):
            raise SystemExit(
                f"the original needs mmsegmentation 1.2.2 / mmengine / mmcv: install them for "
                f"{sys.executable}, or provide {setup.root / 'venv'} with them"
            ) from None
        os.environ[_REEXEC_MARK] = "1"
        # this project importable there from any working directory (relative paths keep working)
        paths = [str(REPO), os.environ.get("PYTHONPATH", "")]
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        command = [str(setup.python), "-m", "benchmarks.bench_dgvfm_original", *sys.argv[1:]]
        os.execv(str(setup.python), command)
    _stub_missing_mmcv_ops()
    importlib.import_module("rein")  # registers the original's modules
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope

    init_default_scope("mmseg")
    # the original logs every trainable tensor at its first train(): keep the table readable
    MMLogger.get_current_instance().setLevel(logging.WARNING)


def build_original(setup: OriginalSetup, sizes: Sizes, device: torch.device) -> nn.Module:
    """The original's model from its config at ``sizes``, with its own random initialisation."""
    from mmengine.config import Config
    from mmseg.registry import MODELS

    cfg = Config.fromfile(str(setup.checkout / ORIGINAL_CONFIG), lazy_import=False)
    model_cfg = cfg.model
    model_cfg.data_preprocessor.size = (sizes.crop, sizes.crop)
    vit = model_cfg.backbone.backbone
    vit.update(
        embed_dim=sizes.width,
        depth=sizes.depth,
        num_heads=sizes.heads,
        out_indices=sizes.out_indices,
    )
    for head in (model_cfg.decode_head, model_cfg.aux_head):
        head.in_channels = [sizes.width] * 4
    # its light head classifies width/4 channels (the config's 256 for DINOv2-L's 1024)
    model_cfg.decode_head.channels = sizes.width // 4
    model_cfg.hr_crop_size = (sizes.sub_crop, sizes.sub_crop)
    # its debug visualisation (every img_interval iterations) is not part of a step
    model_cfg.train_cfg = {"log_config": {"img_interval": 2**62}}
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "no_pretrained_weights.pth"
        torch.save({}, empty)
        model_cfg.backbone.checkpoint = str(empty)
        model = MODELS.build(model_cfg)
    model.local_iter = 1
    return model.to(device)


# --------------------------------------------------------------------------------------- ours


def our_config(sizes: Sizes, device: torch.device) -> CfgNode:
    overrides = [
        "MODEL.DEVICE", str(device), "MODEL.VFM.WEIGHTS", "random",
        "MODEL.VFM.TINY", "True", "MODEL.VFM.TINY_WIDTH", str(sizes.width),
        "MODEL.VFM.TINY_DEPTH", str(sizes.depth), "MODEL.VFM.TINY_HEADS", str(sizes.heads),
        "MODEL.VFM.OUT_INDICES", str(sizes.out_indices),
        "MODEL.VFM_HEAD.SUB_CROP", str(sizes.sub_crop),
        "INPUT.CROP.SIZE", str((sizes.crop, sizes.crop)),
    ]  # fmt: skip
    return load_config(str(OUR_CONFIG), overrides)


def load_original_weights(ours: nn.Module, original: nn.Module) -> None:
    """Give ``ours`` the original's weights (as from an original checkpoint)."""
    state = {k: v.detach().clone() for k, v in original.state_dict().items()}
    mapped, _ = map_original_state_dict(state, set(ours.state_dict()))
    missing = [k for k, _ in ours.named_parameters() if k not in mapped]
    if missing:
        raise RuntimeError(f"our parameters without an original value: {missing[:5]}")
    ours.load_state_dict(mapped, strict=False)


# --------------------------------------------------------------------------------------- calls


def _images(count: int, size: tuple[int, int], seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (3, *size), generator=g, dtype=torch.uint8) for _ in range(count)]


def _labels(count: int, size: tuple[int, int], seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, _NUM_CLASSES, size, generator=g) for _ in range(count)]


def our_calls(
    model: nn.Module, sizes: Sizes, device: torch.device
) -> tuple[Callable[[], None], Callable[[], torch.Tensor]]:
    """(training step, inference returning (K, h, w) class probabilities) of ours."""
    crop = (sizes.crop, sizes.crop)
    batch = [
        {"image": i.to(device), "sem_seg": s.to(device)}
        for i, s in zip(_images(sizes.batch, crop, 1), _labels(sizes.batch, crop, 2))
    ]
    image = _images(1, sizes.image, 3)[0].to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.05)

    def step() -> None:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        sum(model(batch).values()).backward()
        optimizer.step()

    @torch.no_grad()
    def infer() -> torch.Tensor:
        model.eval()
        return model([{"image": image}])[0]["sem_seg"]

    return step, infer


def original_calls(
    model: nn.Module, sizes: Sizes, device: torch.device
) -> tuple[Callable[[], None], Callable[[], torch.Tensor]]:
    """(training step, inference returning (K, h, w) class probabilities) of the original, on
    the same images (given BGR, as mmcv loads them; its preprocessor converts to RGB)."""
    from mmengine.optim import OptimWrapper
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    crop = (sizes.crop, sizes.crop)
    train_data = {
        "inputs": [i.flip(0).to(device) for i in _images(sizes.batch, crop, 1)],
        "data_samples": [
            SegDataSample(gt_sem_seg=PixelData(data=s[None].to(device)))
            for s in _labels(sizes.batch, crop, 2)
        ],
    }
    h, w = sizes.image
    meta = {"img_shape": (h, w), "ori_shape": (h, w), "pad_shape": (h, w)}
    test_data = {
        "inputs": [_images(1, sizes.image, 3)[0].flip(0).to(device)],
        "data_samples": [SegDataSample(metainfo=meta)],
    }
    params = [p for p in model.parameters() if p.requires_grad]
    wrapper = OptimWrapper(torch.optim.AdamW(params, lr=1e-4, weight_decay=0.05))

    def step() -> None:
        model.train()
        model.train_step(train_data, wrapper)

    @torch.no_grad()
    def infer() -> torch.Tensor:
        model.eval()
        return model.test_step(test_data)[0].seg_logits.data.softmax(dim=0)

    return step, infer


def _rows(results: dict[str, Measurement]) -> list[dict[str, Any]]:
    rows = []
    for name, m in results.items():
        task, side = name.split(": ")
        other = results.get(f"{task}: original")
        rows.append(
            {
                "task": task,
                "model": side,
                "ms_median": m.median_s * 1e3,
                "ms_best": m.best_s * 1e3,
                "peak_MiB": m.to_dict(1)["peak_memory_mib"],
                "speed_vs_original": other.median_s / m.median_s if other else None,
                "seconds": m.seconds,
            }
        )
    return rows


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the Markdown table, write the JSON; returns the JSON payload."""
    args = _parser().parse_args(argv)
    device = resolve_device(args.device)
    sizes = Sizes(
        args.width, args.depth, args.heads, args.crop, args.sub_crop, args.batch, tuple(args.image)
    )
    setup = find_original_setup(args.original_root)
    if setup is None:
        print(
            f"no original setup: pass --original-root DIR or set {ROOT_VARIABLE} (a VFMSeg "
            f"checkout in DIR or DIR/orig, mmsegmentation 1.2.2 importable or in DIR/venv); "
            f"timing ours alone",
            file=sys.stderr,
        )
    else:
        import_original(setup)
    torch.manual_seed(0)
    ours = build_model(our_config(sizes, device))
    fns: dict[str, Callable[[], object]] = {}
    settings: dict[str, Any] = {**vars(sizes), "out_indices": sizes.out_indices}
    our_step, our_infer = our_calls(ours, sizes, device)
    if setup is not None:
        original = build_original(setup, sizes, device)
        load_original_weights(ours, original)
        orig_step, orig_infer = original_calls(original, sizes, device)
        ours_p, orig_p = our_infer(), orig_infer()
        settings["inference_max_abs_probability_difference"] = float((ours_p - orig_p).abs().max())
        settings["inference_same_class_share"] = float(
            (ours_p.argmax(0) == orig_p.argmax(0)).float().mean()
        )
        settings["original_checkout"] = str(setup.checkout)
        settings["original_shims"] = str(setup.shims) if setup.shims else None
        fns = {"train step: original": orig_step, "train step: ours": our_step}
        fns |= {"inference: original": orig_infer, "inference: ours": our_infer}
    else:
        fns = {"train step: ours": our_step, "inference: ours": our_infer}
    results = measure(fns, device=device, warmup=args.warmup, repeats=args.repeats)
    return publish(
        "dgvfm_original",
        device=device,
        settings=settings,
        rows=_rows(results),
        columns=_COLUMNS,
        json_path=args.json,
    )


if __name__ == "__main__":
    main()
