"""Merge the LoRA weights of a trained VFM + LoRA model into its base weights, for export.

Usage::

    python tools/merge_lora.py --config-file CFG --weights CKPT --output OUT [KEY VALUE ...]

CKPT may also be a checkpoint written by the original DGVFM runner (mmengine); it holds pickled
objects, so it is read only with ``--trust-pickle`` (or MODEL.WEIGHTS_TRUST_PICKLE True).

Writes OUT/vfm_merged.pth (ViT weights with LoRA folded in), OUT/model_merged.pth (heads) and
OUT/config.yaml (LoRA off, both paths set: evaluate with ``train_net.py --eval-only
--config-file OUT/config.yaml``), rebuilds the exported model and checks that it gives the
unmerged model's outputs (``--atol``).
"""

from __future__ import annotations

import argparse
import sys

import torch

from clouds.config import CfgNode, load_config
from clouds.modeling.build import build_model
from clouds.modeling.checkpoint import load_model_weights, trainable_state_dict
from clouds.modeling.lora_export import export_merged_model


def _trained_weights(cfg: CfgNode, path: str, trust_pickle: bool) -> dict[str, torch.Tensor]:
    """The trainable state dict (LoRA and heads) in ``path``, whatever its format (ours or the
    original's), read into the model of ``cfg`` so that a mismatch is named before exporting."""
    model = build_model(cfg)
    load_model_weights(model, path, trust_pickle=trust_pickle)
    return trainable_state_dict(model)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", required=True, help="training config of the model")
    parser.add_argument(
        "--weights", required=True, help="checkpoint with the LoRA weights (.ckpt or .pth)"
    )
    parser.add_argument("--output", required=True, help="folder to write the export to")
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="read a checkpoint holding pickled objects (original mmengine files): trusted only",
    )
    parser.add_argument("--atol", type=float, default=1e-4, help="allowed output difference")
    parser.add_argument(
        "--check-size", type=int, default=64, help="side of the random check image (px)"
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE")
    args = parser.parse_args(argv)
    cfg = load_config(args.config_file, args.opts)
    result = export_merged_model(
        cfg,
        _trained_weights(cfg, args.weights, args.trust_pickle or cfg.MODEL.WEIGHTS_TRUST_PICKLE),
        args.output,
        atol=args.atol,
        check_size=args.check_size,
    )
    sys.stdout.write(
        f"Merged {result.merged_layers} LoRA layers; max output difference "
        f"{result.max_abs_diff:.2e}.\nConfig: {result.config}\nViT weights: {result.vfm_weights}\n"
        f"Head checkpoint: {result.checkpoint}\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
