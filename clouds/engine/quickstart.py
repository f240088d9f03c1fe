"""The quickstart pipeline: toy data -> conversion -> tiny warm-up -> evaluation -> report.

Each stage is a :class:`Stage` run in order on a shared :class:`QuickstartContext`; later
stages (generation, joint training) slot in by adding stages to the list. Every stage is
resumable: data and conversions are skipped when done, training resumes from its
``last.ckpt``. Training and evaluation go through the same code as ``train_net.py``
(:func:`clouds.engine.launch.launch_from_args`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from clouds.data.conversion import CONVERSIONS
from clouds.data.conversion.cli import conversion_main
from clouds.data.toy import make_toy_datasets
from clouds.engine.launch import default_argument_parser, launch_from_args

__all__ = [
    "DEFAULT_STAGES",
    "QuickstartContext",
    "Stage",
    "run_quickstart",
    "stage_datasets",
    "stage_evaluate",
    "stage_warmup",
]

logger = logging.getLogger("clouds.quickstart")

Results = dict[str, dict[str, dict[str, float]]]


@dataclass
class QuickstartContext:
    """What the stages share.

    Attributes:
        output_dir: DIR of ``--output-dir``; the report lands in ``DIR/report.md``.
        warmup_config: config file of the warm-up (tiny CLOUDS on toy GTA5).
        num_images: toy images per split of each dataset.
        image_size: toy image (height, width).
        seed: seed of the toy data and of training.
        overrides: extra ``KEY VALUE`` config overrides for every training/evaluation run.
        weights: checkpoint the evaluation uses (set by the last training stage).
        results: evaluation results ``{dataset: {"sem_seg": metrics}}`` (set by evaluation).
    """

    output_dir: Path
    warmup_config: str
    num_images: int = 8
    image_size: tuple[int, int] = (64, 128)
    seed: int = 0
    overrides: list[str] = field(default_factory=list)
    weights: str | None = None
    results: Results = field(default_factory=dict)

    @property
    def datasets_root(self) -> Path:
        return self.output_dir / "datasets"

    def run_train_net(self, argv: Sequence[str]) -> Results:
        """Run ``train_net.py`` with ``argv`` (plus the context's overrides) in this process."""
        args = default_argument_parser().parse_args(
            [*argv, "SEED", str(self.seed), *self.overrides]
        )
        return launch_from_args(args)


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline: ``run(context)``; ``name`` shows in the log."""

    name: str
    run: Callable[[QuickstartContext], None]


def stage_datasets(ctx: QuickstartContext) -> None:
    """Write the toy datasets and convert their labels with the conversion tools' code."""
    marker = ctx.datasets_root / ".quickstart_complete"
    if marker.is_file():
        logger.info("Toy datasets already in %s", ctx.datasets_root)
    else:
        make_toy_datasets(
            ctx.datasets_root, seed=ctx.seed, num_images=ctx.num_images, size=ctx.image_size
        )
    for name, spec in CONVERSIONS.items():
        code = conversion_main(spec, [str(ctx.datasets_root), "--nproc", "1"])
        if code != 0:
            raise RuntimeError(f"Converting the toy {name} labels failed (exit code {code})")
    marker.write_text("toy datasets written and converted\n")
    os.environ["DETECTRON2_DATASETS"] = str(ctx.datasets_root)


def stage_warmup(ctx: QuickstartContext) -> None:
    """Train the tiny CLOUDS on toy GTA5 (resumes an interrupted run)."""
    out = ctx.output_dir / "warmup"
    ctx.run_train_net(
        [
            "--config-file",
            ctx.warmup_config,
            "--resume",
            "OUTPUT_DIR",
            str(out),
            "DATASETS.TEST",
            "()",
        ]
    )
    ctx.weights = str(out / "model_final.ckpt")


def stage_evaluate(ctx: QuickstartContext) -> None:
    """Evaluate ``ctx.weights`` on the config's test sets (toy GTA5 and every target domain);
    writes ``DIR/report.md`` with the per-dataset mIoU table and prediction overlays."""
    if not ctx.weights:
        raise RuntimeError("The evaluation stage needs a training stage before it")
    ctx.results = ctx.run_train_net(
        [
            "--config-file",
            ctx.warmup_config,
            "--eval-only",
            "MODEL.WEIGHTS",
            ctx.weights,
            "OUTPUT_DIR",
            str(ctx.output_dir),
        ]
    )


DEFAULT_STAGES: tuple[Stage, ...] = (
    Stage("datasets", stage_datasets),
    Stage("warmup", stage_warmup),
    Stage("evaluate", stage_evaluate),
)


def run_quickstart(ctx: QuickstartContext, stages: Sequence[Stage] = DEFAULT_STAGES) -> Results:
    """Run ``stages`` in order; returns the evaluation results."""
    ctx.output_dir.mkdir(parents=True, exist_ok=True)
    os.environ["DETECTRON2_DATASETS"] = str(ctx.datasets_root)
    for i, stage in enumerate(stages, start=1):
        logger.info("Quickstart stage %d/%d: %s", i, len(stages), stage.name)
        stage.run(ctx)
    return ctx.results
