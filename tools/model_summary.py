#!/usr/bin/env python
"""Build the model of a config with random weights and print frozen / trainable parameter counts.

Usage::

    python tools/model_summary.py --config-file CFG [--depth N] [KEY VALUE ...]

No weights are loaded: MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS is forced to "" and
MODEL.VFM.WEIGHTS to "random" (the counts do not depend on the weights). Counts are printed for
the whole model and for every component up to ``--depth`` levels of submodules.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from clouds.config import ConfigError, load_config
from clouds.modeling import build_model
from clouds.modeling.summary import format_parameter_counts, parameter_counts

RANDOM_WEIGHTS = ["MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS", "", "MODEL.VFM.WEIGHTS", "random"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-file", required=True, help="YAML config of the model")
    parser.add_argument("--depth", type=int, default=2, help="submodule levels to list")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        cfg = load_config(args.config_file, [*args.opts, *RANDOM_WEIGHTS])
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"{args.config_file}: {cfg.MODEL.META_ARCHITECTURE} with backbone "
        f"{cfg.MODEL.BACKBONE.NAME} ({cfg.MODEL.CLOUDS.CLIP_MODEL_NAME}); random weights "
        "(MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS='' and MODEL.VFM.WEIGHTS='random' forced)"
    )
    print(format_parameter_counts(parameter_counts(build_model(cfg), max_depth=args.depth)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
