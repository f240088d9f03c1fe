"""The quickstart as an experiment on toy data: warm-up -> source-only control -> generate ->
joint (teacher only) -> joint + SAM, each scored on every toy target domain, then a report.

Stages run in order on a shared :class:`QuickstartContext`: toy datasets (converted by the
conversion tools), a tiny CLOUDS warm-up on toy GTA5, an unlabelled set from the toy
text-to-image generator (:mod:`clouds.generation.toy_pipeline`, through ``generate_txt_im.py``'s
code), a source-only control (the joint config's iterations on toy GTA5 alone, from the warm-up
weights: what more training without the generated set gives), two joint trainings from the
warm-up weights (EMA-teacher pseudo-labels as they are, then
refined by the toy SAM of :mod:`clouds.sam.toy_sam`), the evaluation of every stage's model on
toy GTA5 and every target, the pseudo-label accuracy of teacher vs SAM on the targets' images,
and ``DIR/report.md``. Every stage is resumable; training and evaluation go through the same
code as ``train_net.py`` (:func:`clouds.engine.launch.launch_from_args`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clouds.config import load_config
from clouds.data.conversion import CONVERSIONS
from clouds.data.conversion.cli import conversion_main
from clouds.data.toy import make_toy_datasets
from clouds.engine.launch import default_argument_parser, launch_from_args
from clouds.utils.io import atomic_path

__all__ = [
    "DEFAULT_STAGES",
    "TARGETS",
    "TRAINED_STAGES",
    "QuickstartContext",
    "Stage",
    "run_quickstart",
    "stage_datasets",
    "stage_evaluate",
    "stage_generate",
    "stage_joint_sam",
    "stage_joint_teacher",
    "stage_pseudo_labels",
    "stage_report",
    "stage_source_only",
    "stage_warmup",
]

logger = logging.getLogger("clouds.quickstart")

# Folder of the quickstart's generated set: <datasets>/stable_diffusion/quickstart (sd_quickstart).
GENERATED_FOLDER = "quickstart"
# Joint training dumps image / teacher / SAM-refined pseudo-labels every this many iterations.
PSEUDO_LABEL_DUMP_PERIOD = 50
# The stages that train a model, in order; each is scored on every dataset.
TRAINED_STAGES = ("warmup", "source_only", "joint_teacher", "joint_sam")
# The toy target domains (validation splits); their mean is the report's target average.
TARGETS = (
    "cityscapes_val",
    "bdd_val",
    "mapillary_val",
    "acdc_fog_val",
    "acdc_night_val",
    "acdc_rain_val",
    "acdc_snow_val",
)

# {stage: {dataset: sem_seg metrics}}
Results = dict[str, dict[str, dict[str, float]]]


@dataclass
class QuickstartContext:
    """What the stages share.

    Attributes:
        output_dir: DIR of ``--output-dir``; the report lands in ``DIR/report.md``.
        warmup_config: config file of the warm-up (tiny CLOUDS on toy GTA5).
        joint_config: config file of the joint trainings (source + generated set).
        num_images: toy images per split of each dataset.
        num_generated: images the toy generator makes.
        image_size: toy image (height, width).
        seed: seed of the toy data, the generation and training.
        overrides: extra ``KEY VALUE`` config overrides for every training/evaluation run.
        results: each trained stage's metrics per dataset (set by the evaluation).
        pseudo_labels: pixel accuracy of teacher and SAM-refined pseudo-labels per target
            (set by the pseudo-label stage).
    """

    output_dir: Path
    warmup_config: str
    joint_config: str = ""
    num_images: int = 24
    num_generated: int = 192
    image_size: tuple[int, int] = (64, 128)
    seed: int = 0
    overrides: list[str] = field(default_factory=list)
    results: Results = field(default_factory=dict)
    pseudo_labels: dict[str, Any] = field(default_factory=dict)

    @property
    def datasets_root(self) -> Path:
        return self.output_dir / "datasets"

    def stage_weights(self, stage: str) -> Path:
        """The final checkpoint of a trained stage."""
        return self.output_dir / stage / "model_final.ckpt"

    def run_train_net(self, argv: Sequence[str]) -> dict[str, Any]:
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
    """Train the tiny CLOUDS on toy GTA5, evaluated on the source only (the evaluation stage
    covers every domain); resumes an interrupted run."""
    out = ctx.output_dir / "warmup"
    ctx.run_train_net(
        [
            "--config-file",
            ctx.warmup_config,
            "--resume",
            "OUTPUT_DIR",
            str(out),
            "DATASETS.TEST",
            "('gta5',)",
        ]
    )


def stage_generate(ctx: QuickstartContext) -> None:
    """Generate ``sd_quickstart`` with the toy text-to-image generator (a folder loaded like a
    Stable Diffusion folder) through ``generate_txt_im.py``'s code; no labels come with it."""
    from clouds.generation.cli import main as generation_main
    from clouds.generation.options import PROJECT_PROMPTS_STEM
    from clouds.generation.toy_pipeline import is_toy_pipeline_folder, save_toy_pipeline

    pipeline = ctx.output_dir / "toy_text_to_image"
    if not is_toy_pipeline_folder(pipeline):
        save_toy_pipeline(pipeline)
    height, width = ctx.image_size
    code = generation_main(
        [
            "--input", PROJECT_PROMPTS_STEM,
            "--folder", GENERATED_FOLDER,
            "--num-images", str(ctx.num_generated),
            "--model-id", str(pipeline),
            "--local-files-only",
            "--steps", "1",
            "--height", str(height),
            "--width", str(width),
            "--batch-size", "8",
            "--seed", str(ctx.seed),
            "--device", "cpu",
            "--output-root", str(ctx.datasets_root / "stable_diffusion"),
        ]
    )  # fmt: skip
    if code != 0:
        raise RuntimeError(f"Generating the quickstart images failed (exit code {code})")


def _toy_sam_checkpoint(ctx: QuickstartContext) -> Path:
    """The toy SAM's state (its tolerances and filter), saved for MODEL.CLOUDS.SAM.CHECKPOINT."""
    import torch

    from clouds.sam.toy_sam import build_toy_sam

    path = ctx.output_dir / "sam_toy.pth"
    if not path.is_file():
        with atomic_path(path) as tmp:
            torch.save(build_toy_sam().state_dict(), tmp)
    return path


def _warmup_weights(ctx: QuickstartContext, stage: str) -> Path:
    warmup = ctx.stage_weights("warmup")
    if not warmup.is_file() or not ctx.joint_config:
        raise RuntimeError(f"Stage {stage!r} needs the warm-up stage and a joint config")
    return warmup


def stage_source_only(ctx: QuickstartContext) -> None:
    """The control: the joint config's schedule from the warm-up weights on toy GTA5 alone (no
    generated set, no teacher, no SAM), so that the joint stages are compared with as much
    more training on the source."""
    warmup = _warmup_weights(ctx, "source_only")
    ctx.run_train_net(
        [
            "--config-file", ctx.joint_config,
            "--resume",
            "OUTPUT_DIR", str(ctx.output_dir / "source_only"),
            "MODEL.WEIGHTS", str(warmup),
            "MODEL.CLOUDS.SAM.ENABLED", "False",
            "MODEL.CLOUDS.SAM.MINIBATCH", "False",
            "DATASETS.TRAIN", "('gta5',)",
            "DATASETS.TEST", "('gta5',)",
        ]
    )  # fmt: skip


def _joint_stage(name: str, *, sam: bool) -> Stage:
    def run(ctx: QuickstartContext) -> None:
        warmup = _warmup_weights(ctx, name)
        ctx.run_train_net(
            [
                "--config-file", ctx.joint_config,
                "--resume",
                "OUTPUT_DIR", str(ctx.output_dir / name),
                "MODEL.WEIGHTS", str(warmup),
                "MODEL.CLOUDS.SAM.ENABLED", str(sam),
                "MODEL.CLOUDS.SAM.CHECKPOINT", str(_toy_sam_checkpoint(ctx)),
                "MODEL.CLOUDS.PSEUDO_LABEL_DUMP_PERIOD", str(PSEUDO_LABEL_DUMP_PERIOD),
                "DATASETS.TRAIN", f"('gta5', 'sd_{GENERATED_FOLDER}')",
                "DATASETS.TEST", "('gta5',)",
            ]
        )  # fmt: skip

    run.__doc__ = (
        f"Joint training from the warm-up weights on toy GTA5 + sd_{GENERATED_FOLDER}: EMA-teacher "
        f"pseudo-labels {'refined by the toy SAM' if sam else 'as they are (SAM off)'}."
    )
    return Stage(name, run)


stage_joint_teacher = _joint_stage("joint_teacher", sam=False)
stage_joint_sam = _joint_stage("joint_sam", sam=True)


def stage_evaluate(ctx: QuickstartContext) -> None:
    """Score every trained stage on the warm-up config's test sets (toy GTA5 and every target
    domain), each into ``DIR/eval/<stage>`` (skipped when its results are there)."""
    for name in TRAINED_STAGES:
        weights = ctx.stage_weights(name)
        if not weights.is_file():
            continue
        out = ctx.output_dir / "eval" / name
        results_file = out / "quickstart_results.json"
        if results_file.is_file():
            ctx.results[name] = json.loads(results_file.read_text())
            continue
        results = ctx.run_train_net(
            ["--config-file", ctx.warmup_config, "--eval-only",
             "MODEL.WEIGHTS", str(weights), "OUTPUT_DIR", str(out)]
        )  # fmt: skip
        ctx.results[name] = {k: dict(v["sem_seg"]) for k, v in results.items()}
        with atomic_path(results_file) as tmp:  # a crash never leaves a half-written file
            Path(tmp).write_text(json.dumps(ctx.results[name], indent=1) + "\n")


def stage_pseudo_labels(ctx: QuickstartContext) -> None:
    """Pseudo-labels on the toy target images, which have ground truth: the warm-up model (the
    teacher joint training starts from) labels each image, the toy SAM refines the labels with
    the joint config's rules; both are scored against the toy ground truth."""
    from clouds.engine.quickstart_pseudo_labels import score_pseudo_labels

    ctx.pseudo_labels = score_pseudo_labels(
        load_config(ctx.joint_config, [*ctx.overrides, "MODEL.WEIGHTS",
                    str(ctx.stage_weights("warmup")), "MODEL.CLOUDS.SAM.CHECKPOINT",
                    str(_toy_sam_checkpoint(ctx))]),
        datasets=TARGETS,
        output_dir=ctx.output_dir / "pseudo_labels",
        seed=ctx.seed,
    )  # fmt: skip


def stage_report(ctx: QuickstartContext) -> None:
    """Write ``DIR/report.md``: the stage table, what each stage is, pictures and curves."""
    from clouds.engine.quickstart_report import write_quickstart_report

    write_quickstart_report(ctx)


DEFAULT_STAGES: tuple[Stage, ...] = (
    Stage("datasets", stage_datasets),
    Stage("warmup", stage_warmup),
    Stage("source_only", stage_source_only),
    Stage("generate", stage_generate),
    stage_joint_teacher,
    stage_joint_sam,
    Stage("evaluate", stage_evaluate),
    Stage("pseudo_labels", stage_pseudo_labels),
    Stage("report", stage_report),
)


def run_quickstart(ctx: QuickstartContext, stages: Sequence[Stage] = DEFAULT_STAGES) -> Results:
    """Run ``stages`` in order; returns the evaluation results."""
    ctx.output_dir.mkdir(parents=True, exist_ok=True)
    os.environ["DETECTRON2_DATASETS"] = str(ctx.datasets_root)
    for i, stage in enumerate(stages, start=1):
        logger.info("Quickstart stage %d/%d: %s", i, len(stages), stage.name)
        stage.run(ctx)
    return ctx.results
