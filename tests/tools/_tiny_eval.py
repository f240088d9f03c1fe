"""A tiny segmenter with weights on disk, for the evaluation tools' tests (eval_corruptions,
make_submission): 19 Cityscapes classes, images of the toy datasets at their own size."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import torch

from clouds.config import load_config
from clouds.modeling import build_model
from clouds.modeling.checkpoint import save_checkpoint
from tests.engine._tiny import register_tiny_model

REPO = Path(__file__).resolve().parents[2]


def tool(name: str) -> ModuleType:
    """``tools/<name>.py`` as a module."""
    spec = importlib.util.spec_from_file_location(name, REPO / f"tools/{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_opts(height: int, width: int, **extra: object) -> list[str]:
    """KEY VALUE overrides: TinyTestSegmentor on CPU, test images kept at (height, width)."""
    opts = {
        "MODEL.META_ARCHITECTURE": "TinyTestSegmentor",
        "MODEL.DEVICE": "cpu",
        "MODEL.SEM_SEG_HEAD.NUM_CLASSES": 19,
        "DATALOADER.NUM_WORKERS": 0,
        "INPUT.MIN_SIZE_TEST": min(height, width),
        "INPUT.MAX_SIZE_TEST": max(height, width),
        "SEED": 0,
        **extra,
    }
    return [str(x) for kv in opts.items() for x in kv]


def tiny_weights(path: Path, opts: list[str]) -> Path:
    """Save a TinyTestSegmentor whose predictions depend on the pixels (random class
    embeddings; a fresh one predicts class 0 everywhere). Tools rebuilding it must run under
    ``torch.manual_seed(0)`` (the frozen part is not in the file)."""
    register_tiny_model()
    cfg = load_config(None, opts)
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():
        model.query_embed.normal_()
    save_checkpoint(path, model, cfg)
    return path
