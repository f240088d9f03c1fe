"""The quickstart pipeline: toy data -> conversion -> tiny warm-up -> tiny-SD generation ->
joint training (EMA teacher + tiny SAM) -> evaluation -> report.

Each stage is a :class:`Stage` run in order on a shared :class:`QuickstartContext`; later
stages (generation, joint training) slot in by adding stages to the list. Every stage is
resumable: data and conversions are skipped when done, training resumes from its
``last.ckpt``. Training and evaluation go through the same code as ``train_net.py``
(:func:`clouds.engine.launch.launch_from_args`).
"""

from __future__ import annotations

import json
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
    "stage_generate",
    "stage_joint",
    "stage_warmup",
    "write_report_context",
]

logger = logging.getLogger("clouds.quickstart")

# Folder of the quickstart's generated set: <datasets>/stable_diffusion/quickstart (sd_quickstart).
GENERATED_FOLDER = "quickstart"
# Joint training dumps image / teacher / SAM-refined pseudo-labels every this many iterations.
PSEUDO_LABEL_DUMP_PERIOD = 10
# Generated images and pseudo-label triples the report shows.
REPORT_PICTURES = 3

Results = dict[str, dict[str, dict[str, float]]]


@dataclass
class QuickstartContext:
    """What the stages share.

    Attributes:
        output_dir: DIR of ``--output-dir``; the report lands in ``DIR/report.md``.
        warmup_config: config file of the warm-up (tiny CLOUDS on toy GTA5).
        joint_config: config file of the joint training (source + generated set).
        num_images: toy images per split of each dataset.
        image_size: toy image (height, width).
        seed: seed of the toy data and of training.
        overrides: extra ``KEY VALUE`` config overrides for every training/evaluation run.
        weights: checkpoint the evaluation uses (set by the last training stage).
        model_name: what that checkpoint is ("warmup" or "joint"), its column in the report.
        results: evaluation results ``{dataset: {"sem_seg": metrics}}`` (set by evaluation).
    """

    output_dir: Path
    warmup_config: str
    joint_config: str = ""
    num_images: int = 8
    image_size: tuple[int, int] = (64, 128)
    seed: int = 0
    overrides: list[str] = field(default_factory=list)
    weights: str | None = None
    model_name: str = ""
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
    ctx.weights = str(out / "model_final.ckpt")
    ctx.model_name = "warmup"


def stage_generate(ctx: QuickstartContext) -> None:
    """Generate ``sd_quickstart`` with a tiny random Stable Diffusion saved like a real one,
    through ``generate_txt_im.py``'s code (finished images are skipped on a re-run)."""
    from clouds.generation.cli import main as generation_main
    from clouds.generation.options import PROJECT_PROMPTS_STEM
    from clouds.generation.tiny import save_tiny_sd_pipeline

    pipeline = ctx.output_dir / "tiny_sd_pipeline"
    if not (pipeline / "model_index.json").is_file():
        save_tiny_sd_pipeline(pipeline, seed=ctx.seed)
    height, width = ctx.image_size
    code = generation_main(
        [
            "--input", PROJECT_PROMPTS_STEM,
            "--folder", GENERATED_FOLDER,
            "--num-images", str(ctx.num_images),
            "--model-id", str(pipeline),
            "--local-files-only",
            "--steps", "2",
            "--height", str(height),
            "--width", str(width),
            "--batch-size", str(ctx.num_images),
            "--seed", str(ctx.seed),
            "--device", "cpu",
            "--output-root", str(ctx.datasets_root / "stable_diffusion"),
        ]
    )  # fmt: skip
    if code != 0:
        raise RuntimeError(f"Generating the quickstart images failed (exit code {code})")


def stage_joint(ctx: QuickstartContext) -> None:
    """Joint training from the warm-up weights on toy GTA5 + ``sd_quickstart`` with the joint
    config (``MODEL.CLOUDS.SAM.MINIBATCH`` / ``ENABLED``: EMA teacher pseudo-labels refined by a
    tiny random SAM, the original's pseudo-label rules); resumes an interrupted run."""
    import torch

    from clouds.sam import build_tiny_sam
    from clouds.utils.io import atomic_path

    if not ctx.weights or not ctx.joint_config:
        raise RuntimeError("The joint stage needs the warm-up stage and a joint config")
    sam = ctx.output_dir / "sam_tiny.pth"
    if not sam.is_file():
        torch.manual_seed(ctx.seed)
        with atomic_path(sam) as tmp:
            torch.save(build_tiny_sam().state_dict(), tmp)
    out = ctx.output_dir / "joint"
    ctx.run_train_net(
        [
            "--config-file", ctx.joint_config,
            "--resume",
            "OUTPUT_DIR", str(out),
            "MODEL.WEIGHTS", ctx.weights,
            "MODEL.CLOUDS.SAM.CHECKPOINT", str(sam),
            "MODEL.CLOUDS.PSEUDO_LABEL_DUMP_PERIOD", str(PSEUDO_LABEL_DUMP_PERIOD),
            "DATASETS.TRAIN", f"('gta5', 'sd_{GENERATED_FOLDER}')",
            "DATASETS.TEST", "('cityscapes_val',)",
        ]
    )  # fmt: skip
    ctx.weights = str(out / "model_final.ckpt")
    ctx.model_name = "joint"


def stage_evaluate(ctx: QuickstartContext) -> None:
    """Evaluate on the config's test sets (toy GTA5 and every target domain): the warm-up
    weights into ``DIR/eval/warmup``, then ``ctx.weights`` (the last training stage's) into ``DIR``,
    whose ``report.md`` holds the per-dataset mIoU table with a "warmup" column beside the
    evaluated model's (named "joint" after joint training), per-class IoU and overlays."""
    if not ctx.weights:
        raise RuntimeError("The evaluation stage needs a training stage before it")
    warmup_weights = str(ctx.output_dir / "warmup" / "model_final.ckpt")
    warmup_dir = ctx.output_dir / "eval" / "warmup"  # not the training folder: its run is kept
    baselines: list[str] = []
    if ctx.weights != warmup_weights:
        ctx.run_train_net(
            ["--config-file", ctx.warmup_config, "--eval-only",
             "MODEL.WEIGHTS", warmup_weights, "OUTPUT_DIR", str(warmup_dir)]
        )  # fmt: skip
        baselines.append(str(warmup_dir))
    write_report_context(ctx)
    ctx.results = ctx.run_train_net(
        ["--config-file", ctx.warmup_config, "--eval-only",
         "MODEL.WEIGHTS", ctx.weights, "OUTPUT_DIR", str(ctx.output_dir),
         "TEST.REPORT_BASELINES", repr(tuple(baselines)),
         "TEST.REPORT_RUN_NAME", ctx.model_name or "this run"]
    )  # fmt: skip


def write_report_context(ctx: QuickstartContext) -> Path:
    """Write ``DIR/report_context.json``: the report's title, what ran (toy data, tiny random
    models, which stage each table comes from, the config files) and a gallery of generated
    images and pseudo-labels (EMA teacher vs SAM-refined), read by the evaluation's report."""
    from clouds.engine.callbacks import REPORT_CONTEXT

    joint = ctx.model_name == "joint"
    evaluated = (
        f"the joint-trained model (stage 'joint', {ctx.joint_config})"
        if joint
        else f"the warm-up model (stage 'warmup', {ctx.warmup_config})"
    )
    overrides = f" Overrides of every run: {' '.join(ctx.overrides)}." if ctx.overrides else ""
    intro = [
        f"What ran: toy data ({ctx.num_images} images per split, written in every dataset's "
        f"real folder layout and label encoding) and tiny, randomly initialised models. "
        f"Stage 'warmup' trained a tiny CLOUDS on toy GTA5 ({ctx.warmup_config}); stage "
        f"'generate' made the sd_{GENERATED_FOLDER} set with a tiny random Stable Diffusion; "
        f"stage 'joint' trained on toy GTA5 + sd_{GENERATED_FOLDER} from the warm-up weights "
        f"with EMA-teacher pseudo-labels refined by a tiny random SAM ({ctx.joint_config}); "
        f"stage 'evaluate' scored both on the test sets of {ctx.warmup_config}.{overrides}",
        f"Which table is which: 'mIoU per dataset' and 'Per-class IoU' are {evaluated}; "
        f"'mIoU against other runs' puts the warm-up model (column 'warmup') beside it "
        f"(column '{ctx.model_name}').",
        "Why these numbers cannot show the method's gain: tiny random-initialised models "
        "trained for a few iterations on a few toy images only show that the pipeline runs "
        "end to end, not the method's effect (joint training may well score below the "
        "warm-up here).",
    ]
    context = {
        "title": "Quickstart report: toy data, tiny random-initialised models",
        "intro": intro,
        "gallery": _report_gallery(ctx.output_dir),
    }
    path = ctx.output_dir / REPORT_CONTEXT
    path.write_text(json.dumps(context, indent=2) + "\n")
    return path


def _report_gallery(output_dir: Path) -> dict[str, list[tuple[str, str]]]:
    """The first generated images and the last dumped pseudo-label triples, as paths relative
    to ``output_dir``."""
    gallery: dict[str, list[tuple[str, str]]] = {}
    images = output_dir / "datasets" / "stable_diffusion" / GENERATED_FOLDER / "images"
    generated = sorted(images.glob("*.png"))[:REPORT_PICTURES]
    if generated:
        gallery[f"Generated images (sd_{GENERATED_FOLDER}, tiny random Stable Diffusion)"] = [
            (path.relative_to(output_dir).as_posix(), path.stem) for path in generated
        ]
    dumps = sorted((output_dir / "joint" / "pseudo_labels").glob("*_image.png"))
    if dumps:
        last_step = dumps[-1].name.split("_")[0]
        triples = [path for path in dumps if path.name.startswith(f"{last_step}_")]
        pictures = []
        for image in triples[:REPORT_PICTURES]:
            stem = image.name[: -len("_image.png")]
            for suffix, caption in (("image", "image"), ("before", "teacher"), ("after", "SAM")):
                path = image.with_name(f"{stem}_{suffix}.png")
                pictures.append((path.relative_to(output_dir).as_posix(), f"{stem} {caption}"))
        heading = (
            f"Pseudo-labels at iteration {int(last_step)} (image | EMA teacher | refined by SAM)"
        )
        gallery[heading] = pictures
    return gallery


DEFAULT_STAGES: tuple[Stage, ...] = (
    Stage("datasets", stage_datasets),
    Stage("warmup", stage_warmup),
    Stage("generate", stage_generate),
    Stage("joint", stage_joint),
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
