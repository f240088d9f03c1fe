"""Start-up time of the command-line tools against ``python -c "import torch"``.

Each command runs in a fresh interpreter (as a user runs it) and is timed from start to exit:

- ``import torch``: the reference (every tool needs torch eventually);
- ``train_net.py --help``;
- ``train_net.py --config-file <real config> SOLVER.MAX_ITE 1``: an unknown-key error;
- ``generate_txt_im.py --help`` and ``demo/demo.py --help``.

The goal: ``--help`` and the unknown-key error each under 1.5x the time of
``import torch``. Runs are interleaved round-robin (see benchmarks/common.py), so load changes
on a shared machine hit every command alike; the table gives the median and best repeat and
their ratios to ``import torch``.

    python -m benchmarks.bench_startup --repeats 5 --json benchmarks/results/startup.json
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import measure, publish

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = "import torch"
GOAL = 1.5  # at most this many times the reference
COLUMNS = ("command", "exit_code", "median_s", "best_s", "vs_import_torch", "vs_best", "goal")


def commands(config_file: str) -> dict[str, list[str]]:
    """The timed command lines by name (the reference first)."""
    py = sys.executable
    return {
        REFERENCE: [py, "-c", "import torch"],
        "train_net.py --help": [py, str(ROOT / "train_net.py"), "--help"],
        "train_net.py unknown key": [
            py,
            str(ROOT / "train_net.py"),
            "--config-file",
            config_file,
            "SOLVER.MAX_ITE",
            "1",
        ],
        "generate_txt_im.py --help": [py, str(ROOT / "generate_txt_im.py"), "--help"],
        "demo/demo.py --help": [py, str(ROOT / "demo" / "demo.py"), "--help"],
    }


def _runner(argv: list[str], codes: list[int]) -> Callable[[], None]:
    def run() -> None:
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
        codes.append(proc.returncode)

    return run


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--config-file",
        default=str(ROOT / "configs" / "warmup" / "gta" / "train_gta.yaml"),
        help="real config used for the unknown-key error",
    )
    p.add_argument("--warmup", type=int, default=1, help="untimed runs per command")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per command")
    p.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "startup.json")
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    if not Path(args.config_file).is_file():
        raise SystemExit(f"--config-file {args.config_file} not found")
    lines = commands(args.config_file)
    codes: dict[str, list[int]] = {name: [] for name in lines}
    fns = {name: _runner(argv_, codes[name]) for name, argv_ in lines.items()}
    device = torch.device("cpu")
    results = measure(fns, device=device, warmup=args.warmup, repeats=args.repeats)
    reference = results[REFERENCE]
    rows = []
    for name, m in results.items():
        ratio = m.median_s / reference.median_s
        rows.append(
            {
                "command": name,
                "exit_code": codes[name][-1],
                "median_s": m.median_s,
                "best_s": m.best_s,
                "vs_import_torch": ratio,
                "vs_best": m.best_s / reference.best_s,
                "goal": "-" if name == REFERENCE else ("met" if ratio < GOAL else "missed"),
                "argv": lines[name][1:],
                "seconds": m.seconds,
            }
        )
    settings = {"config_file": args.config_file, "warmup": args.warmup, "repeats": args.repeats}
    return publish(
        "startup",
        device=device,
        settings=settings,
        rows=rows,
        columns=COLUMNS,
        json_path=args.json,
    )


if __name__ == "__main__":
    main()
