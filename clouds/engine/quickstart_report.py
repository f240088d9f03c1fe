"""The quickstart's report: ``DIR/report.md`` and ``DIR/quickstart_summary.json``.

The report opens with the mIoU of every stage's model on every dataset and the target average
(the mean over the toy target domains, the source left out), says what each stage did and how
the toy world differs from the real one, then shows the pseudo-label accuracy of the teacher vs
the SAM-refined labels beside the toy ground truth, generated images and the training curves.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from matplotlib.figure import Figure

from clouds.utils.io import atomic_path

if TYPE_CHECKING:
    from clouds.engine.quickstart import QuickstartContext

__all__ = [
    "PSEUDO_LABEL_HEADER",
    "markdown_table",
    "pseudo_label_rows",
    "stage_table",
    "target_average",
    "write_quickstart_report",
    "write_report_and_summary",
]

PSEUDO_LABEL_HEADER = ["dataset", "teacher", "SAM", "SAM coverage", "teacher on SAM's pixels"]

_STAGE_TEXT = {
    "warmup": "tiny CLOUDS trained on toy GTA5 only (the source)",
    "source_only": "the control: from the warm-up weights, the joint stages' iterations on toy "
    "GTA5 alone (what more source training gives without the generated set)",
    "joint_teacher": "from the warm-up weights, toy GTA5 + the generated set, labelled by the "
    "EMA teacher (SAM off)",
    "joint_sam": "the same, with the teacher's labels refined by the toy SAM (the method)",
}
_GENERATED_PICTURES = 6


def target_average(metrics: dict[str, dict[str, float]], targets: tuple[str, ...]) -> float:
    """Mean mIoU over ``targets`` (NaN when one is missing)."""
    values = [metrics.get(name, {}).get("mIoU", math.nan) for name in targets]
    return sum(values) / len(values) if values else math.nan


def stage_table(
    results: dict[str, dict[str, dict[str, float]]], targets: tuple[str, ...]
) -> tuple[list[str], list[list[str]]]:
    """Header and rows: the target average, then one row per dataset, one column per stage."""
    stages = list(results)
    datasets = list(dict.fromkeys(name for metrics in results.values() for name in metrics))
    rows = [["**target average**", *(_fmt(target_average(results[s], targets)) for s in stages)]]
    for name in datasets:
        label = name if name in targets else f"{name} (source)"
        rows.append(
            [label, *(_fmt(results[s].get(name, {}).get("mIoU", math.nan)) for s in stages)]
        )
    return ["dataset", *stages], rows


def _fmt(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.2f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table of ``header`` and ``rows`` (cells already formatted)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join([*lines, *("| " + " | ".join(row) + " |" for row in rows)])


def _curves(output_dir: Path, stages: tuple[str, ...]) -> str | None:
    """Plot each stage's training loss; returns the picture's relative path."""
    figure = Figure(figsize=(8, 3), dpi=100)
    axes = figure.subplots()
    plotted = False
    for stage in stages:
        metrics = output_dir / stage / "metrics.json"
        if not metrics.is_file():
            continue
        points = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        points = [p for p in points if "total_loss" in p]
        if points:
            axes.plot(
                [p["iteration"] for p in points], [p["total_loss"] for p in points], label=stage
            )
            plotted = True
    if not plotted:
        return None
    axes.set_title("Training loss of each quickstart stage")
    axes.set_xlabel("iteration (each stage from its own start)")
    axes.set_ylabel("training loss")
    axes.legend()
    figure.tight_layout()
    path = output_dir / "report_files" / "curves.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return path.relative_to(output_dir).as_posix()


def write_quickstart_report(ctx: QuickstartContext) -> Path:
    """Write ``report.md`` and ``quickstart_summary.json`` into ``ctx.output_dir``."""
    from clouds.engine.quickstart import GENERATED_FOLDER, TARGETS, TRAINED_STAGES

    out = ctx.output_dir
    header, rows = stage_table(ctx.results, TARGETS)
    parts = [
        "# Quickstart report: CLOUDS in a toy world",
        f"Seed {ctx.seed}; {ctx.num_images} toy images per split, {ctx.num_generated} generated "
        f"images; warm-up config {ctx.warmup_config}, joint config {ctx.joint_config}.",
        "## mIoU per stage (%)",
        "The target average is the mean over the toy target domains "
        f"({', '.join(TARGETS)}); the source gta5 is left out.",
        markdown_table(header, rows),
        "## What each stage is",
        *(f"- **{s}**: {_STAGE_TEXT[s]}." for s in TRAINED_STAGES),
        f"- **generate** (no model of its own): the toy text-to-image generator drew "
        f"sd_{GENERATED_FOLDER} from the project's prompts (weather, time of day, place and "
        "objects set the scene and its look; every image draws its palette, texture scale, "
        "noise and blur from ranges that span the target domains); it returns images only.",
        "## How the toy world differs from the real one",
        "Toy scenes are boxes and gradients drawn by one scene grammar; the domains differ by "
        "palette rotation, saturation, texture scale, lighting, noise, blur and weather. The "
        "toy generator samples the same grammar (it cannot invent new content as Stable "
        "Diffusion does), and the toy SAM answers a prompt with the k-means colour segment "
        "(chromaticity and brightness, at three granularities) under most of its points (it "
        "knows nothing of objects, only of colours). Compare the stages with each other, not with "
        "real-data numbers: a joint stage also trains longer than the warm-up, so compare it "
        "with source_only (as many more iterations on the source alone) for the gain that "
        "the generated set and its pseudo-labels bring.",
    ]
    pseudo = ctx.pseudo_labels
    if pseudo:
        parts += [
            "## Pseudo-labels on the toy targets: teacher vs SAM (pixel accuracy %)",
            "The warm-up model (the teacher joint training starts from) labels each target "
            "image; the toy SAM refines the labels with the joint config's rules "
            "(MODEL.CLOUDS.SAM.UNCOVERED says whether pixels no mask covers are ignored or "
            "keep the teacher's label). Accuracy counts the pixels a map labels; 'teacher on "
            "SAM's pixels' is the teacher's accuracy on the pixels the refined map keeps.",
            markdown_table(PSEUDO_LABEL_HEADER, pseudo_label_rows(pseudo)),
            "image | ground truth | teacher | SAM-refined:",
            *(
                " ".join(
                    f"![{name} {suffix}](pseudo_labels/{stem}_{suffix}.png)"
                    for suffix in ("image", "truth", "teacher", "sam")
                )
                for name, stem in pseudo["pictures"]
            ),
        ]
    images = out / "datasets" / "stable_diffusion" / GENERATED_FOLDER / "images"
    generated = sorted(images.glob("*.png"))[:_GENERATED_PICTURES]
    if generated:
        parts += [
            f"## Generated images (sd_{GENERATED_FOLDER}, toy text-to-image generator)",
            " ".join(f"![{p.stem}]({p.relative_to(out).as_posix()})" for p in generated),
        ]
    curves = _curves(out, TRAINED_STAGES)
    if curves:
        parts += ["## Training curves", f"![training loss per stage]({curves})"]
    parts += [
        "## Per-stage evaluation reports",
        *(f"- {s}: [eval/{s}/report.md](eval/{s}/report.md)" for s in ctx.results),
    ]
    return write_report_and_summary(ctx, parts)


def pseudo_label_rows(pseudo: dict) -> list[list[str]]:
    """Rows of :data:`PSEUDO_LABEL_HEADER`: each toy target's and all targets' pseudo-label
    accuracies (%) of a quickstart's pseudo-label stage."""
    keys = ("teacher", "sam", "sam_coverage", "teacher_on_sam_pixels")
    return [
        [name, *(f"{acc[k]:.1f}" for k in keys)]
        for name, acc in [*pseudo["datasets"].items(), ("**all**", pseudo["all"])]
    ]


def write_report_and_summary(ctx: QuickstartContext, parts: Sequence[str]) -> Path:
    """Write ``parts`` as ``ctx.output_dir/report.md`` and the stages' scores and pseudo-label
    accuracies as ``quickstart_summary.json`` (both atomically); returns the report's path."""
    from clouds.engine.quickstart import TARGETS

    ctx.output_dir.mkdir(parents=True, exist_ok=True)
    report = ctx.output_dir / "report.md"
    with atomic_path(report) as tmp:
        Path(tmp).write_text("\n\n".join(parts) + "\n")
    summary = {
        "seed": ctx.seed,
        "target_average": {s: target_average(m, TARGETS) for s, m in ctx.results.items()},
        "miou": {s: {k: v.get("mIoU") for k, v in m.items()} for s, m in ctx.results.items()},
        "pseudo_labels": ctx.pseudo_labels,
    }
    with atomic_path(ctx.output_dir / "quickstart_summary.json") as tmp:
        Path(tmp).write_text(json.dumps(summary, indent=1) + "\n")
    return report
