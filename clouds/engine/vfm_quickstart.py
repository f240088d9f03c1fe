"""The quickstart's second experiment: the same stages for a VFM segmentor (DGVFM).

The CLOUDS quickstart (:mod:`clouds.engine.quickstart`) trains a tiny CLOUDS; this runs its
stages again for the tiny DGVFM segmentor (random-init DINOv2 + LoRA, light and masked
refinement heads: ``configs/toy/quickstart_vfm_warmup.yaml`` and ``quickstart_vfm_joint.yaml``)
on the same data: the toy datasets and the toy generator's set of the same output folder (made
by the CLOUDS stages themselves when they are not there yet). The stages are the CLOUDS
quickstart's functions, run on a :class:`VfmQuickstartContext` whose runs live in ``DIR/vfm``:
warm-up on toy GTA5, the source-only control, joint training with the EMA teacher's
pseudo-labels as they are and refined by the toy SAM (the same
:class:`~clouds.engine.joint_training.JointTraining` component, through ``train_net.py``'s code),
the evaluation of every stage on toy GTA5 and every target, the pseudo-label accuracy of the
warm-up teacher vs SAM, then ``DIR/vfm/report.md`` and ``DIR/vfm/quickstart_summary.json``.
Every stage resumes as the CLOUDS ones do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clouds.engine.quickstart import (
    TARGETS,
    TRAINED_STAGES,
    QuickstartContext,
    Results,
    Stage,
    run_quickstart,
    stage_datasets,
    stage_evaluate,
    stage_generate,
    stage_joint_sam,
    stage_joint_teacher,
    stage_pseudo_labels,
    stage_source_only,
    stage_warmup,
)
from clouds.engine.quickstart_report import (
    PSEUDO_LABEL_HEADER,
    markdown_table,
    pseudo_label_rows,
    stage_table,
    write_report_and_summary,
)

__all__ = [
    "VFM_FOLDER",
    "VFM_STAGES",
    "VfmQuickstartContext",
    "run_vfm_quickstart",
    "stage_vfm_report",
    "vfm_results_table",
]

# The VFM experiment's runs, report and summary: DIR/vfm.
VFM_FOLDER = "vfm"

_STAGE_TEXT = {
    "warmup": "tiny DGVFM segmentor (random-init DINOv2 + LoRA, light + masked refinement "
    "heads) trained on toy GTA5 only",
    "source_only": "the control: from the warm-up weights, the joint stages' iterations on toy "
    "GTA5 alone",
    "joint_teacher": "from the warm-up weights, toy GTA5 + the generated set, labelled by the "
    "EMA teacher (LoRA and heads averaged; SAM off)",
    "joint_sam": "the same, with the teacher's labels refined by the toy SAM",
}


class VfmQuickstartContext(QuickstartContext):
    """A quickstart context whose ``output_dir`` is ``DIR/vfm`` and whose data is the CLOUDS
    quickstart's ``DIR/datasets`` (toy datasets and generated set)."""

    @property
    def datasets_root(self) -> Path:
        return self.output_dir.parent / "datasets"

    def clouds_context(self) -> QuickstartContext:
        """The CLOUDS quickstart's context of ``DIR``, for the stages that make the data."""
        return QuickstartContext(
            output_dir=self.output_dir.parent,
            warmup_config=self.warmup_config,
            joint_config=self.joint_config,
            num_images=self.num_images,
            num_generated=self.num_generated,
            image_size=self.image_size,
            seed=self.seed,
            overrides=list(self.overrides),
        )

    @classmethod
    def under(cls, quickstart_dir: Path, **kwargs: Any) -> VfmQuickstartContext:
        """The context of the VFM experiment of the quickstart folder ``quickstart_dir``."""
        return cls(output_dir=Path(quickstart_dir) / VFM_FOLDER, **kwargs)


def _fmt(value: float | None) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.2f}"


def vfm_results_table(summaries: Sequence[dict[str, Any]]) -> str:
    """Markdown table of ``quickstart_summary.json`` contents: per seed the target average of
    every trained stage and the pseudo-label accuracy of teacher and SAM (all targets)."""
    rows = []
    for summary in summaries:
        averages = summary["target_average"]
        pseudo = summary.get("pseudo_labels") or {}
        accuracy = pseudo.get("all", {})
        rows.append(
            [
                str(summary["seed"]),
                *(_fmt(averages.get(stage)) for stage in TRAINED_STAGES),
                *(f"{accuracy[k]:.1f}" if k in accuracy else "–" for k in ("teacher", "sam")),
            ]
        )
    header = ["seed", "warm-up", "source only", "joint (teacher only)", "joint + SAM"]
    return markdown_table([*header, "pseudo-labels: teacher", "SAM"], rows)


def stage_vfm_report(ctx: QuickstartContext) -> None:
    """Write ``report.md`` (mIoU per stage and dataset, pseudo-label accuracy) and
    ``quickstart_summary.json`` into ``ctx.output_dir``."""
    header, rows = stage_table(ctx.results, TARGETS)
    parts = [
        "# Quickstart report: a VFM segmentor in the toy world",
        f"Seed {ctx.seed}; the CLOUDS quickstart's data ({ctx.num_images} toy images per "
        f"split, {ctx.num_generated} generated images); warm-up config {ctx.warmup_config}, "
        f"joint config {ctx.joint_config}.",
        "## mIoU per stage (%)",
        f"The target average is the mean over {', '.join(TARGETS)}; the source gta5 is left out.",
        markdown_table(header, rows),
        "## What each stage is",
        *(f"- **{s}**: {_STAGE_TEXT[s]}." for s in TRAINED_STAGES if s in ctx.results),
    ]
    pseudo = ctx.pseudo_labels
    if pseudo:
        parts += [
            "## Pseudo-labels on the toy targets: warm-up teacher vs SAM (pixel accuracy %)",
            markdown_table(PSEUDO_LABEL_HEADER, pseudo_label_rows(pseudo)),
        ]
    write_report_and_summary(ctx, parts)


def _clouds_data_stage(name: str, run: Any) -> Stage:
    """A CLOUDS quickstart data stage run on the CLOUDS context of the VFM context."""

    def run_on_clouds_context(ctx: QuickstartContext) -> None:
        if not isinstance(ctx, VfmQuickstartContext):
            raise TypeError(f"Stage {name!r} needs a VfmQuickstartContext, got {type(ctx)}")
        run(ctx.clouds_context())

    return Stage(name, run_on_clouds_context)


VFM_STAGES: tuple[Stage, ...] = (
    _clouds_data_stage("datasets", stage_datasets),
    _clouds_data_stage("generate", stage_generate),
    Stage("warmup", stage_warmup),
    Stage("source_only", stage_source_only),
    stage_joint_teacher,
    stage_joint_sam,
    Stage("evaluate", stage_evaluate),
    Stage("pseudo_labels", stage_pseudo_labels),
    Stage("report", stage_vfm_report),
)


def run_vfm_quickstart(ctx: VfmQuickstartContext, stages: Sequence[Stage] = VFM_STAGES) -> Results:
    """Run the VFM experiment's ``stages`` in order; returns the evaluation results."""
    return run_quickstart(ctx, stages)
