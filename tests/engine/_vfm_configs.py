"""What the tests of the DGVFM repository's configs share: one training iteration and an
evaluation through train_net.py on the tiny toy datasets, and the weight decay a config's solver
gives each parameter."""

from __future__ import annotations

import runpy
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from clouds.config import CfgNode
from clouds.engine.solver import config_param_groups
from tests.engine._tiny import SIZE

REPO = Path(__file__).resolve().parents[2]

# crops of the whole tiny image, two per batch, drawn uniformly
WHOLE_IMAGE_CROPS = {
    "DATALOADER.SAMPLER_TRAIN": "TrainingSampler",
    "INPUT.CROP.SIZE": f"({SIZE[0]}, {SIZE[1]})",
    "INPUT.VFM_PIPELINE.TRAIN_SCALE": f"({SIZE[1]}, {SIZE[0]})",
    "INPUT.VFM_PIPELINE.TRAIN_SHORT_EDGES": "[]",
    "SOLVER.IMS_PER_GPU": 2,
}


def tiny_run_opts(output_dir: Path) -> dict[str, object]:
    """Config overrides: train on ``tiny_train`` and test on ``tiny_val`` (registered by
    :func:`tests.engine._tiny.register_tiny_datasets`) at their size, loading in-process, one
    iteration with a checkpoint after it, results in ``output_dir``."""
    return {
        "DATASETS.TRAIN": "('tiny_train',)",
        "DATASETS.TEST": "('tiny_val',)",
        "DATALOADER.NUM_WORKERS": 0,
        "INPUT.VFM_PIPELINE.TEST_SCALES": f"[[{SIZE[1]}, {SIZE[0]}]]",
        "SOLVER.MAX_ITER": 1,
        "SOLVER.CHECKPOINT_PERIOD": 1,
        "OUTPUT_DIR": str(output_dir),
    }


def as_overrides(opts: Mapping[str, object]) -> list[str]:
    """{key: value} -> the command line's ``KEY VALUE ...`` list."""
    return [str(x) for kv in opts.items() for x in kv]


def train_and_evaluate(config: str, overrides: list[str], output_dir: Path) -> set[str]:
    """Run train_net.py on ``config`` (relative to the repository) with ``overrides`` (one
    iteration, OUTPUT_DIR ``output_dir``); check that the evaluation gave a percentage and the
    final checkpoint is that of step 1; return the checkpoint's state-dict keys."""
    namespace = runpy.run_path(str(REPO / "train_net.py"))
    args = namespace["default_argument_parser"]().parse_args(
        ["--config-file", str(REPO / config), *overrides]
    )
    results = namespace["main"](args)
    assert 0.0 <= results["tiny_val"]["sem_seg"]["mIoU"] <= 100.0
    ckpt = torch.load(output_dir / "model_final.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 1
    return set(ckpt["state_dict"])


def weight_decay_by_name(model: nn.Module, cfg: CfgNode) -> dict[str, float]:
    """The weight decay of each trainable parameter of ``model`` in the groups the config's
    optimizer gets."""
    groups = config_param_groups(cfg, model)
    return {name: g["weight_decay"] for g in groups for name in g["param_names"]}


def adaptation_values(cfg: CfgNode) -> dict[str, dict | None]:
    """The config's LoRA (r, alpha, dropout) and Rein (type, token_length, lora_dim,
    link_token_to_query) settings in the original-config fixtures' terms (None: off)."""
    lora, rein = cfg.MODEL.LORA, cfg.MODEL.REIN
    return {
        "lora": {"r": lora.RANK, "alpha": lora.ALPHA, "dropout": lora.DROPOUT}
        if lora.ENABLED
        else None,
        "rein": {
            "type": rein.TYPE,
            "token_length": rein.TOKEN_LENGTH,
            "lora_dim": rein.LORA_DIM,
            "link_token_to_query": rein.LINK_TOKEN_TO_QUERY,
        }
        if rein.ENABLED
        else None,
    }


def norm_parameter_names(model: nn.Module, norm_types: tuple[type[nn.Module], ...]) -> set[str]:
    """Qualified names of the parameters of ``model``'s norm layers of ``norm_types``."""
    return {
        f"{m}.{p}"
        for m, module in model.named_modules()
        if isinstance(module, norm_types)
        for p, _ in module.named_parameters(recurse=False)
    }
