"""Test (and evaluate) with the original DGVFM repository's command line (its ``tools/test.py``).

    python tools/test.py configs/dg/gta2citys/dg_lora_dinov2_ms_masked.py CHECKPOINT \\
        --backbone checkpoints/dinov2_converted.pth [--out DIR] [--work-dir DIR]

Runs ``train_net.py --eval-only`` on our config of the same name (``.yaml``) with the checkpoint
(the original's mmengine file or ours) loaded over the ``--backbone`` weights. The checkpoint is
read as the original reads it, pickled objects included: give it only files you trust. Results
go to ``work_dirs/<config name>_test`` as in the original.
"""

import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # train_net.py

import train_net  # noqa: E402
from clouds.cli_errors import run_cli  # noqa: E402
from clouds.engine.dgvfm_commands import test_command  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    command: list[str] = []

    def translate() -> None:
        args, debug = test_command(argv)
        command.extend(["--debug", *args] if debug else args)

    code = run_cli(translate, prog="test.py", debug="--debug" in (argv or sys.argv))
    return code if code else train_net.cli(command)


if __name__ == "__main__":
    sys.exit(main())
