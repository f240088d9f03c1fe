"""Rewrite the README's quickstart numbers and pictures from quickstart runs of seeds 0, 1 and 2.

    python tools/update_readme_quickstart.py --rerun output/readme_quickstart
    python tools/update_readme_quickstart.py --runs DIR0 DIR1 DIR2   # existing runs, seeds 0-2

Writes the table between the README's ``quickstart-results`` markers, the pictures of the first
run to demo/assets/quickstart/, and demo/assets/quickstart/inputs.json: the hash of the files
that make them (tests/tools/test_readme_quickstart.py fails once they change).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from PIL import Image

from clouds.data.datasets.cityscapes_meta import CITYSCAPES_CLASSES, CITYSCAPES_COLORS
from clouds.utils.io import atomic_path

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "demo" / "assets" / "quickstart"
INPUTS_FILE = ASSETS / "inputs.json"
START, END = "<!-- quickstart-results:start -->", "<!-- quickstart-results:end -->"
SEEDS = (0, 1, 2)
# generated images in the README's picture
_GENERATED_PANELS = 6
# The files whose change makes the README's quickstart numbers and pictures stale.
INPUT_GLOBS = (
    "tools/quickstart.py",
    "tools/update_readme_quickstart.py",
    "clouds/engine/quickstart*.py",
    "clouds/data/augmentation.py",
    "clouds/data/build.py",
    "clouds/data/mappers.py",
    "clouds/generation/toy_pipeline.py",
    "clouds/sam/toy_sam.py",
    "clouds/data/toy/__init__.py",
    "clouds/data/toy/datasets.py",
    "clouds/data/toy/render.py",
    "clouds/data/toy/scene.py",
    "configs/toy/Base-Toy-CLOUDS.yaml",
    "configs/toy/warmup_gta.yaml",
    "configs/toy/joint_gta.yaml",
    "configs/toy/quickstart_joint.yaml",
    "prompts_clouds_project_written.txt",
)


def inputs_hash(repo: Path = REPO) -> str:
    """SHA-256 over the paths and contents of the files of :data:`INPUT_GLOBS`."""
    digest = hashlib.sha256()
    for path in sorted({p for pattern in INPUT_GLOBS for p in repo.glob(pattern)}):
        digest.update(path.relative_to(repo).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def results_table(summaries: list[dict]) -> str:
    """Markdown table: per seed the target average of each stage (the source-only control
    beside the warm-up) and the pseudo-label
    accuracy of teacher and SAM, SAM's coverage and the teacher's accuracy on SAM's pixels."""
    lines = [
        "| seed | warm-up | source only | joint (teacher only) | joint + SAM "
        "| pseudo-labels: teacher | SAM | SAM coverage | teacher on SAM's pixels |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for summary in summaries:
        average, pseudo = summary["target_average"], summary["pseudo_labels"]["all"]
        cells = [average[s] for s in ("warmup", "source_only", "joint_teacher", "joint_sam")]
        accuracies = [
            pseudo[k] for k in ("teacher", "sam", "sam_coverage", "teacher_on_sam_pixels")
        ]
        lines.append(
            f"| {summary['seed']} | "
            + " | ".join(f"{v:.2f}" for v in cells)
            + " | "
            + " | ".join(f"{v:.1f}" for v in accuracies)
            + " |"
        )
    return "\n".join(lines)


def _figure(columns: int, rows: int, panel_width: float = 3.4) -> Figure:
    return Figure(figsize=(panel_width * columns, 2.0 * rows + 0.6), dpi=110)


def _show(axes: Axes, image: np.ndarray, title: str) -> None:
    axes.imshow(image, interpolation="nearest")
    axes.set_title(title, fontsize=8)
    axes.set_axis_off()


def _save(figure: Figure, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    with atomic_path(target) as tmp:
        figure.savefig(tmp, format="png")


def generated_figure(folder: Path, target: Path, count: int = _GENERATED_PANELS) -> None:
    """The first ``count`` generated images of ``folder``, each titled with its prompt."""
    prompts = {}
    for manifest in sorted(folder.glob("manifest-*.jsonl")):
        for line in manifest.read_text().splitlines():
            if line.strip():
                entry = json.loads(line)
                prompts[entry["file"]] = entry["prompt"]
    paths = sorted((folder / "images").glob("*.png"))[:count]
    columns = 3
    rows = -(-len(paths) // columns)
    figure = _figure(columns, rows)
    figure.suptitle("Generated images (toy text-to-image generator, unlabelled)", fontsize=10)
    for axes, path in zip(figure.subplots(rows, columns, squeeze=False).ravel(), paths):
        prompt = textwrap.shorten(prompts.get(path.name, path.stem), width=75, placeholder="...")
        _show(axes, np.asarray(Image.open(path).convert("RGB")), textwrap.fill(prompt, 45))
    for axes in figure.axes[len(paths) :]:
        axes.set_axis_off()
    _save(figure, target)


def _accuracy(truth: np.ndarray, labels: np.ndarray) -> float:
    """Pixel accuracy (%) of a colourised label map against the colourised ground truth; the
    ignore colour (black) in the ground truth is left out."""
    valid = truth.any(axis=2)
    return 100.0 * (labels == truth).all(axis=2)[valid].mean() if valid.any() else float("nan")


def pseudo_label_figure(run: Path, name: str, stem: str, target: Path) -> None:
    """Image | ground truth | teacher | SAM-refined of one target image, with the pixel accuracy
    of each label map and a legend of the classes they show."""
    folder = run / "pseudo_labels"
    image, truth, teacher, sam = (
        np.asarray(Image.open(folder / f"{stem}_{s}.png").convert("RGB"))
        for s in ("image", "truth", "teacher", "sam")
    )
    panels = [
        (image, f"{name}: image"),
        (truth, "toy ground truth"),
        (teacher, f"teacher (warm-up): {_accuracy(truth, teacher):.1f}% px acc."),
        (sam, f"refined by the toy SAM: {_accuracy(truth, sam):.1f}% px acc."),
    ]
    figure = _figure(4, 1, panel_width=3.6)
    figure.suptitle("Pseudo-labels on a toy target image (black: ignored)", fontsize=10)
    for axes, (picture, title) in zip(figure.subplots(1, 4).ravel(), panels):
        _show(axes, picture, title)
    shown = np.unique(np.concatenate([m.reshape(-1, 3) for m in (truth, teacher, sam)]), axis=0)
    handles = [
        Patch(color=np.asarray(color) / 255.0, label=cls)
        for cls, color in zip(CITYSCAPES_CLASSES, CITYSCAPES_COLORS)
        if (shown == np.asarray(color)).all(axis=1).any()
    ]
    figure.legend(handles=handles, loc="lower center", ncol=min(len(handles), 10), fontsize=7)
    figure.tight_layout(rect=(0, 0.12, 1, 1))
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        figure.savefig(tmp, format="png")


def write_assets(run: Path) -> list[str]:
    """Draw the first run's pictures into demo/assets/quickstart/; returns their README lines."""
    ASSETS.mkdir(parents=True, exist_ok=True)
    generated_figure(run / "datasets" / "stable_diffusion" / "quickstart", ASSETS / "generated.png")
    pseudo = json.loads((run / "quickstart_summary.json").read_text())["pseudo_labels"]
    name, stem = pseudo["pictures"][0]
    pseudo_label_figure(run, name, stem, ASSETS / "pseudo_labels.png")
    shutil.copyfile(run / "report_files" / "curves.png", ASSETS / "curves.png")
    return [
        "![generated images](demo/assets/quickstart/generated.png)",
        f"![{name}: image, ground truth, teacher, SAM](demo/assets/quickstart/pseudo_labels.png)",
        "![training curves](demo/assets/quickstart/curves.png)",
    ]


def update_readme(block: str, readme: Path = REPO / "README.md") -> None:
    text = readme.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{readme} lacks the markers {START} ... {END}")
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    with atomic_path(readme) as tmp:
        Path(tmp).write_text(f"{head}{START}\n{block}\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--rerun", type=Path, help="run the quickstart for seeds 0-2 under DIR")
    group.add_argument("--runs", type=Path, nargs=3, help="existing runs of seeds 0, 1, 2")
    args = parser.parse_args(argv)
    runs = args.runs or [args.rerun / f"seed{s}" for s in SEEDS]
    if args.rerun:
        for seed, run in zip(SEEDS, runs):
            command = [sys.executable, str(REPO / "tools" / "quickstart.py")]
            subprocess.run([*command, "--output-dir", str(run), "--seed", str(seed)], check=True)
    summaries = [json.loads((run / "quickstart_summary.json").read_text()) for run in runs]
    if [s["seed"] for s in summaries] != list(SEEDS):
        raise ValueError(f"The runs must be of seeds {SEEDS}, got {[s['seed'] for s in summaries]}")
    pictures = write_assets(runs[0])
    update_readme("\n".join([results_table(summaries), "", *pictures]))
    with atomic_path(INPUTS_FILE) as tmp:
        Path(tmp).write_text(json.dumps({"sha256": inputs_hash()}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
