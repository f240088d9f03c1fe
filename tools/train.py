"""Train with the original DGVFM repository's command line (its ``tools/train.py``).

    python tools/train.py configs/dg/gta2citys/dg_lora_dinov2_ms_masked.py
    python tools/train.py CONFIG.py --work-dir DIR --resume --cfg-options train_cfg.max_iters=100

Runs ``train_net.py`` on our config of the same name (``.yaml``); no ``.py`` file is executed.
Results go to ``work_dirs/<config name>`` as in the original. See GETTING_STARTED.md, "Coming
from the original DGVFM repository".
"""

import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # train_net.py

import train_net  # noqa: E402
from clouds.cli_errors import run_cli  # noqa: E402
from clouds.engine.dgvfm_commands import train_command  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    command: list[str] = []

    def translate() -> None:
        args, debug = train_command(argv)
        command.extend(["--debug", *args] if debug else args)

    code = run_cli(translate, prog="train.py", debug="--debug" in (argv or sys.argv))
    return code if code else train_net.cli(command)


if __name__ == "__main__":
    sys.exit(main())
