"""Convert a checkpoint written by the original CLOUDS (detectron2 ``.pth``) to our format.

Usage::

    python tools/convert_original_checkpoint.py SRC DST --config-file CFG [KEY VALUE ...]

SRC is ``{"model": state dict of the whole original model, "iteration": N, ...}``; CFG the
config the model was trained with (e.g. configs/warmup/gta/train_gta.yaml). The model is built
from CFG without downloading CLIP (SRC holds it), every key of SRC is loaded (an error names any
key of another architecture; nothing is written then), and DST gets our checkpoint: the
trainable state dict, the config and the original's iteration. Our checkpoints leave the frozen
CLIP out (it comes from CFG's pretrained tag when DST is loaded); SRC itself can also be used
directly as MODEL.WEIGHTS.
"""

from __future__ import annotations

import argparse
import sys

from clouds.config import load_config
from clouds.modeling import build_model
from clouds.modeling.checkpoint import (
    detect_checkpoint_format,
    foundation_weights_context,
    load_complete_state_dict,
    read_checkpoint_payload,
    save_checkpoint,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", help="original CLOUDS checkpoint (.pth)")
    parser.add_argument("dst", help="where to write our checkpoint")
    parser.add_argument("--config-file", required=True, help="config of the checkpoint's model")
    parser.add_argument("opts", nargs="*", help="config overrides KEY VALUE")
    args = parser.parse_intermixed_args(argv)

    payload = read_checkpoint_payload(args.src)
    fmt = detect_checkpoint_format(payload, args.src)
    if not fmt.complete:
        parser.error(f"{args.src} is a {fmt.name} checkpoint, not an original CLOUDS one")
    cfg = load_config(args.config_file, args.opts)
    with foundation_weights_context(args.src):
        model = build_model(cfg)
    load_complete_state_dict(model, fmt.model_state(payload), source=args.src)
    extra = {"iteration": payload["iteration"]} if "iteration" in payload else {}
    save_checkpoint(args.dst, model, cfg, extra=extra)
    print(f"Wrote {args.dst} ({fmt.name} -> CLOUDS checkpoint)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
