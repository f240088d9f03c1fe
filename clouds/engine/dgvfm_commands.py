"""The original DGVFM repository's ``tools/train.py`` / ``tools/test.py`` command lines, run by
``train_net.py``'s machinery on our config of the same name.

``configs/dg/gta2citys/dg_lora_dinov2_ms_masked.py`` names ``configs/dg/gta2citys/
dg_lora_dinov2_ms_masked.yaml`` (looked up beside the given path, then in this project); a
``.py`` file is never executed. ``--cfg-options KEY=VALUE`` takes the original's common mmengine
keys (:data:`CFG_OPTION_KEYS`) and our own upper-case keys. Outputs go where the original puts
them: ``work_dirs/<config name>`` (training) and ``work_dirs/<config name>_test`` (testing).

Kept free of heavy imports, so that mistakes answer at once.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from clouds.cli_errors import UserFileError, add_debug_argument
from clouds.config import ConfigError, load_config
from clouds.utils.io import PROJECT_ROOT

__all__ = [
    "BACKBONE_FILES",
    "CFG_OPTION_KEYS",
    "PROJECT_ROOT",
    "backbone_weights",
    "cfg_options_to_opts",
    "our_config",
    "test_argument_parser",
    "test_command",
    "train_argument_parser",
    "train_command",
]


# mmengine config keys of the original -> ours (values are passed through).
CFG_OPTION_KEYS: dict[str, str] = {
    "work_dir": "OUTPUT_DIR",
    "load_from": "MODEL.WEIGHTS",
    "randomness.seed": "SEED",
    "train_dataloader.batch_size": "SOLVER.IMS_PER_GPU",
    "train_dataloader.num_workers": "DATALOADER.NUM_WORKERS",
    "optim_wrapper.optimizer.lr": "SOLVER.BASE_LR",
    "optim_wrapper.optimizer.weight_decay": "SOLVER.WEIGHT_DECAY",
    "train_cfg.max_iters": "SOLVER.MAX_ITER",
    "train_cfg.val_interval": "TEST.EVAL_PERIOD",
    "default_hooks.checkpoint.interval": "SOLVER.CHECKPOINT_PERIOD",
    "default_hooks.logger.interval": "SOLVER.LOG_PERIOD",
    "env_cfg.cudnn_benchmark": "CUDNN_BENCHMARK",
    "model.backbone.checkpoint": "MODEL.VFM.WEIGHTS",
    "model.aux_head.transformer.mask_ratio": "MODEL.VFM_HEAD.MASK_RATIO",
    "model.test_cfg.threadshod": "TEST.COARSE_TO_FINE.CONFIDENCE",
    "model.test_cfg.conf": "TEST.COARSE_TO_FINE.SURE_RATIO",
    "model.test_cfg.crop_size": "TEST.SLIDE.WINDOW",
    "model.test_cfg.stride": "TEST.SLIDE.STRIDE",
}

# MODEL.BACKBONE.NAME -> the converted backbone files the original expects (its README's
# conversion output first, then the path its configs name), tried before the config's file.
BACKBONE_FILES: dict[str, tuple[tuple[str, ...], str]] = {
    "DINOv2": (
        ("checkpoints/dinov2_converted.pth",),
        "convert_dinov2.py checkpoints/dinov2_vitl14_pretrain.pth checkpoints/dinov2_converted.pth",
    ),
    "EVA02": (
        ("checkpoints/eva02_L_converted.pth", "checkpoints/EVA02/eva02_L_converted.pth"),
        "convert_eva2_512x512.py checkpoints/eva02_L_pt_m38m_p14to16.pt "
        "checkpoints/eva02_L_converted.pth",
    ),
    "CLIPViT": (
        ("checkpoints/CLIP-ViT-L_converted.pth", "checkpoints/CLIP/CLIP-ViT-L-converted.pt"),
        "convert_clip.py checkpoints/ViT-L-14.pt checkpoints/CLIP-ViT-L_converted.pth",
    ),
    "SAMViT": (
        ("checkpoints/sam_vit_h_converted.pth", "checkpoints/SAM/sam_vit_h_converted.pth"),
        "convert_sam.py checkpoints/sam_vit_h_4b8939.pth checkpoints/sam_vit_h_converted.pth",
    ),
}


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help=f"settings to override: the original's keys {', '.join(CFG_OPTION_KEYS)}, "
        f"or ours (upper case, e.g. SOLVER.MAX_ITER=100)",
    )
    parser.add_argument(
        "--launcher",
        choices=["none", "pytorch", "slurm", "mpi"],
        default="none",
        help="job launcher (pytorch: torchrun / torch.distributed.launch; slurm: srun)",
    )
    parser.add_argument(
        "--local_rank",
        "--local-rank",
        type=int,
        default=0,
        help="accepted as torch.distributed.launch passes it; the rank is read from LOCAL_RANK",
    )
    add_debug_argument(parser)


def train_argument_parser() -> argparse.ArgumentParser:
    """The original ``tools/train.py``'s arguments (plus ``--debug``)."""
    parser = argparse.ArgumentParser(
        description="Train a segmenter (the original DGVFM command line; runs train_net.py)"
    )
    parser.add_argument("config", help="train config file path (.py of the original, or .yaml)")
    parser.add_argument("--work-dir", help="the dir to save logs and models")
    parser.add_argument(
        "--resume", action="store_true", help="resume from the latest checkpoint in the work dir"
    )
    parser.add_argument("--amp", action="store_true", help="fp16 automatic mixed precision")
    _common_arguments(parser)
    layout = parser.add_argument_group(
        "process layout (ours, used by tools/dist_train.sh; not in the original)"
    )
    layout.add_argument("--num-gpus", type=int, default=1, help="processes per machine")
    layout.add_argument("--num-machines", type=int, default=1, help="total number of machines")
    layout.add_argument("--machine-rank", type=int, default=0, help="rank of this machine")
    layout.add_argument("--dist-url", default="auto", help="tcp://host:port of machine 0")
    return parser


def test_argument_parser() -> argparse.ArgumentParser:
    """The original ``tools/test.py``'s arguments (plus ``--debug``)."""
    parser = argparse.ArgumentParser(
        description="Test (and evaluate) a segmenter (the original DGVFM command line)"
    )
    parser.add_argument("config", help="config file path (.py of the original, or .yaml)")
    parser.add_argument("checkpoint", help="checkpoint file (the original's or ours)")
    parser.add_argument("--backbone", default="", help="converted backbone file")
    parser.add_argument("--work-dir", help="folder of the evaluation results (+ '_test')")
    parser.add_argument("--out", help="also write the predictions (as PNGs)")
    parser.add_argument("--show", action="store_true", help="not supported (see demo/)")
    parser.add_argument("--show-dir", help="not supported (see demo/)")
    parser.add_argument("--wait-time", type=float, default=2, help="not used")
    parser.add_argument("--tta", action="store_true", help="not supported")
    _common_arguments(parser)
    return parser


def our_config(path: str) -> Path:
    """Our YAML config for the original's ``path`` (``.py``) or a YAML path itself.

    Raises:
        ConfigError: when there is no YAML of that name, saying what to do.
    """
    given = Path(path)
    if given.suffix in (".yaml", ".yml"):
        if not given.is_file():
            raise UserFileError(f"config file not found: {path}")
        return given
    if given.suffix != ".py":
        raise ConfigError(f"{path}: expected a config file ending in .py (the original's) or .yaml")
    yaml = given.with_suffix(".yaml")
    for candidate in (yaml, PROJECT_ROOT / yaml):
        if candidate.is_file():
            return candidate
    reproduced = sorted(
        str(p.relative_to(PROJECT_ROOT).with_suffix(".py")) for p in reproduced_dgvfm_configs()
    )
    raise ConfigError(
        f"{path} has no counterpart here ({yaml} does not exist), and config files are never "
        f"executed. The original configs this project reproduces are: {', '.join(reproduced)}. "
        f"For another model, write a YAML config (start from one of those, see GETTING_STARTED.md, "
        f"'Coming from the original DGVFM repository') and give its .yaml path."
    )


def reproduced_dgvfm_configs() -> list[Path]:
    """Our YAML twins of the DGVFM repository's training configs: ``configs/dg/<task>/*.yaml``
    (not the dataset bases) and the top-level Rein / frozen-DINOv2 ones."""
    configs = PROJECT_ROOT / "configs"
    nested = [p for p in (configs / "dg").glob("*/*.yaml") if p.parent.name != "datasets"]
    top = [p for p in configs.glob("*.yaml") if p.name.startswith(("rein_", "dinov2_"))]
    return sorted(nested + top)


def _option_value(value: str) -> str:
    """An mmengine ``--cfg-options`` value as a ``KEY VALUE`` override value (``a,b`` is a list)."""
    if "," in value and value[:1] not in "[(":
        return f"[{value}]"
    return value


def cfg_options_to_opts(options: Sequence[str]) -> list[str]:
    """``["train_cfg.max_iters=100", "SOLVER.BASE_LR=0.1"]`` -> ``["SOLVER.MAX_ITER", "100", ...]``.

    Raises:
        ConfigError: naming an option without ``=`` or a lower-case key with no counterpart.
    """
    opts: list[str] = []
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key:
            raise ConfigError(f"--cfg-options {option!r}: expected KEY=VALUE")
        if key in CFG_OPTION_KEYS:
            key = CFG_OPTION_KEYS[key]
        elif key != key.upper():
            raise ConfigError(
                f"--cfg-options {key}: no counterpart of this key of the original here. Known: "
                f"{', '.join(CFG_OPTION_KEYS)}; or give one of our keys in upper case "
                f"(e.g. SOLVER.MAX_ITER=100; see clouds/config/)."
            )
        opts += [key, _option_value(value)]
    return opts


def _override(opts: Sequence[str], key: str) -> str | None:
    """The last value ``opts`` give ``key``, or None."""
    values = [opts[i + 1] for i in range(0, len(opts) - 1, 2) if opts[i] == key]
    return values[-1] if values else None


def backbone_weights(config: Path, opts: Sequence[str]) -> str | None:
    """The backbone file to use: the original's converted file if present, else the config's
    own (official) file if present; None when the config or ``opts`` choose one themselves.

    Raises:
        UserFileError: when none is there, naming the files and the conversion command.
    """
    if _override(opts, "MODEL.VFM.WEIGHTS") is not None:
        return None
    cfg = load_config(str(config), list(opts))
    name, own = cfg.MODEL.BACKBONE.NAME, cfg.MODEL.VFM.WEIGHTS
    if name not in BACKBONE_FILES or own in ("", "random"):
        return None
    converted, command = BACKBONE_FILES[name]
    for path in (*converted, own):
        if os.path.isfile(path):
            return path
    raise UserFileError(
        f"No {name} backbone weights: none of {', '.join((*converted, own))} exists. Download "
        f"the file the original README names into checkpoints/ and convert it: python "
        f"tools/convert_models/{command} (or set model.backbone.checkpoint=FILE in --cfg-options)."
    )


def _launch_flags(args: argparse.Namespace) -> list[str]:
    """``train_net.py``'s process-layout flags (only ``tools/train.py`` has them)."""
    if args.launcher == "mpi":
        raise ConfigError("--launcher mpi is not supported: start the processes with torchrun")
    if not hasattr(args, "num_gpus"):
        return []
    return [
        "--num-gpus",
        str(args.num_gpus),
        "--num-machines",
        str(args.num_machines),
        "--machine-rank",
        str(args.machine_rank),
        "--dist-url",
        args.dist_url,
    ]


def _work_dir(args: argparse.Namespace, config: str, opts: Sequence[str]) -> str:
    """``--work-dir``, else a work_dir option, else ``work_dirs/<config name>`` (the original's)."""
    if args.work_dir:
        return args.work_dir
    given = _override(opts, "OUTPUT_DIR")
    return given if given is not None else os.path.join("work_dirs", Path(config).stem)


def train_command(argv: Sequence[str] | None = None) -> tuple[list[str], bool]:
    """``train_net.py`` arguments for the original ``tools/train.py`` command line ``argv``,
    and whether ``--debug`` was given."""
    args = train_argument_parser().parse_args(argv)
    config = our_config(args.config)
    opts = cfg_options_to_opts(args.cfg_options)
    opts += ["OUTPUT_DIR", _work_dir(args, args.config, opts)]
    if args.amp:
        opts += ["SOLVER.AMP.ENABLED", "True", "SOLVER.AMP.PRECISION", "fp16"]
    weights = backbone_weights(config, opts)
    if weights is not None:
        opts += ["MODEL.VFM.WEIGHTS", weights]
    flags = ["--config-file", str(config), *_launch_flags(args)]
    if args.resume:
        flags.append("--resume")
    return [*flags, *opts], args.debug


def test_command(argv: Sequence[str] | None = None) -> tuple[list[str], bool]:
    """``train_net.py --eval-only`` arguments for the original ``tools/test.py`` command line
    ``argv``, and whether ``--debug`` was given.

    The checkpoint is read as the original reads it, pickled objects included (mmengine's
    files hold some): give it only files you trust.
    """
    args = test_argument_parser().parse_args(argv)
    if args.show or args.show_dir:
        raise ConfigError(
            "--show/--show-dir are not supported: draw predictions with demo/demo.py, or add "
            "--out DIR to write them as PNGs"
        )
    if args.tta:
        raise ConfigError("--tta is not supported (the DGVFM configs define no TTA pipeline)")
    config = our_config(args.config)
    if not os.path.isfile(args.checkpoint):
        raise UserFileError(f"checkpoint file not found: {args.checkpoint}")
    opts = cfg_options_to_opts(args.cfg_options)
    opts += ["OUTPUT_DIR", _work_dir(args, args.config, opts) + "_test"]
    opts += ["MODEL.WEIGHTS", args.checkpoint, "MODEL.WEIGHTS_TRUST_PICKLE", "True"]
    if args.backbone:
        if not os.path.isfile(args.backbone):
            raise UserFileError(f"--backbone file not found: {args.backbone}")
        opts += ["MODEL.VFM.WEIGHTS", args.backbone]
    else:
        weights = backbone_weights(config, opts)
        if weights is not None:
            opts += ["MODEL.VFM.WEIGHTS", weights]
    if args.out:
        opts += ["TEST.SAVE_PREDICTIONS", "True"]
    return ["--config-file", str(config), "--eval-only", *_launch_flags(args), *opts], args.debug
