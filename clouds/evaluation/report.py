"""Evaluation report: per-dataset mIoU, per-class IoU across datasets, example overlays.

``write_report(output_dir, results)`` writes ``report.md`` and a self-contained
``report.html`` (inline CSS, images as relative PNG links) into ``output_dir`` plus the
pictures under ``output_dir/report_files/``. ``results`` is what the engine collects after
evaluation: ``{dataset_name: {"sem_seg": {"mIoU", "fwIoU", "mACC", "pACC", "IoU-<class>",
...}}}``. The mIoU average leaves the source (training) datasets out, as the papers average
over the target domains. A title, lines of context under it and a gallery of existing pictures
(e.g. generated images, pseudo-labels) are optional.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from clouds.data.catalog import MetadataCatalog
from clouds.evaluation.metrics import SUMMARY_KEYS
from clouds.utils.io import atomic_path, write_png_atomic
from clouds.visualization.visualizer import class_colors, legend, overlay, present_classes

__all__ = ["Example", "Gallery", "write_report", "per_class_iou_chart", "example_panel"]

Example = tuple[np.ndarray, np.ndarray, np.ndarray]
"""(image (H, W, 3) uint8 RGB, ground truth (H, W), prediction (H, W)) class-id maps."""

Gallery = Mapping[str, Sequence[tuple[str, str]]]
"""{section heading: [(picture path relative to the report's folder, caption), ...]}."""

FILES_DIR = "report_files"
_CHART_DPI = 100


def write_report(
    output_dir: str | os.PathLike,
    results: Mapping[str, Mapping[str, Mapping[str, float]]],
    examples: Mapping[str, Sequence[Example]] | None = None,
    metadata: Any | None = None,
    *,
    baselines: Mapping[str, Mapping[str, Mapping[str, Mapping[str, float]]]] | None = None,
    chart_size: tuple[int, int] = (1200, 500),
    alpha: float = 0.5,
    run_name: str = "this run",
    source_datasets: Collection[str] = (),
    title: str = "Evaluation report",
    intro: Sequence[str] = (),
    gallery: Gallery | None = None,
    tables: Mapping[str, Table] | None = None,
) -> Path:
    """Write ``report.md`` and ``report.html`` into ``output_dir``.

    Args:
        output_dir: OUTPUT_DIR of the run.
        results: {dataset_name: {"sem_seg": metrics}} as returned by SemSegEvaluator.evaluate.
        examples: {dataset_name: [(image, ground truth, prediction), ...]} shown as overlays,
            ground truth beside prediction.
        metadata: class names / colours (``stuff_classes``, ``stuff_colors``); default the
            metadata of the first dataset; class names fall back to the ``IoU-<class>`` keys.
        baselines: {run_name: results of that run} shown beside this run's mIoU per dataset
            (e.g. the warm-up model next to the joint-trained one).
        chart_size: (width, height) of the per-class IoU bar chart in pixels.
        alpha: overlay opacity of the label colours.
        run_name: this run's column beside the baselines (e.g. "joint").
        source_datasets: training (source) datasets, left out of the mIoU average.
        title: the report's first heading.
        intro: paragraphs under the title (what ran, how to read the tables).
        gallery: existing pictures shown at the end, one section per heading; every path
            must be a file under ``output_dir``.
        tables: more tables shown after the mIoU tables, {heading: (header, rows of cells)}
            (e.g. the corruption tables of :mod:`clouds.evaluation.robustness_report`).

    Returns:
        Path of ``report.md``.
    """
    if not results:
        raise ValueError("write_report needs the results of at least one dataset")
    output_dir = Path(output_dir)
    datasets = list(results)
    metrics = {name: _sem_seg_metrics(name, results[name]) for name in datasets}
    if metadata is None:
        metadata = MetadataCatalog.get(datasets[0])
    class_names = list(metadata.get("stuff_classes") or _classes_from_keys(metrics[datasets[0]]))
    colors = class_colors(metadata, len(class_names))

    chart = output_dir / FILES_DIR / "per_class_iou.png"
    per_class_iou_chart(metrics, class_names, chart, size=chart_size)
    example_files = _write_examples(output_dir, examples or {}, class_names, colors, alpha)

    summary_rows = [
        [name, *(_fmt(metrics[name].get(key, math.nan)) for key in SUMMARY_KEYS)]
        for name in datasets
    ]
    sources = [name for name in datasets if name in set(source_datasets)]
    targets = [name for name in datasets if name not in sources]
    if len(targets) > 1 or (sources and targets):
        mean_miou = _nanmean([metrics[name].get("mIoU", math.nan) for name in targets])
        label = "average (targets)" if sources else "average"
        summary_rows.append([label, _fmt(mean_miou), "", "", ""])
    class_rows = [
        [cls, *(_fmt(metrics[name].get(f"IoU-{cls}", math.nan)) for name in datasets)]
        for cls in class_names
    ]
    sections = {
        "summary": (["dataset", *SUMMARY_KEYS], summary_rows),
        "classes": (["class", *datasets], class_rows),
    }
    if baselines:
        sections["baselines"] = _baseline_table(metrics, baselines, run_name)
    _check_gallery(output_dir, gallery or {})
    page = _Page(
        title=title,
        intro=list(intro),
        summary_heading=_summary_heading(sources),
        sections=sections,
        chart=chart.relative_to(output_dir).as_posix(),
        examples=example_files,
        gallery=gallery or {},
        tables=dict(tables or {}),
    )
    md_path = output_dir / "report.md"
    with atomic_path(md_path) as tmp:
        Path(tmp).write_text(_markdown(page))
    with atomic_path(output_dir / "report.html") as tmp:
        Path(tmp).write_text(_html(page))
    return md_path


def _summary_heading(sources: Sequence[str]) -> str:
    if not sources:
        return "mIoU per dataset (%)"
    return (
        f"mIoU per dataset (%); the average is over the target domains, leaving out the "
        f"source {', '.join(sources)} (as the papers report it)"
    )


def _check_gallery(output_dir: Path, gallery: Gallery) -> None:
    for heading, pictures in gallery.items():
        for path, _ in pictures:
            if Path(path).is_absolute() or not (output_dir / path).is_file():
                raise ValueError(
                    f"Report gallery {heading!r}: {path!r} is not a file relative to {output_dir}"
                )


def per_class_iou_chart(
    metrics: Mapping[str, Mapping[str, float]],
    class_names: Sequence[str],
    path: str | os.PathLike,
    *,
    size: tuple[int, int] = (1200, 500),
) -> Path:
    """Grouped bar chart of per-class IoU (one bar colour per dataset) as a PNG of ``size``.

    Args:
        metrics: {dataset_name: {"IoU-<class>": percent, ...}}; NaN classes get no bar.
        class_names: the classes on the x axis.
        path: PNG to write (atomically).
        size: (width, height) in pixels.
    """
    path = Path(path)
    # A bare Figure renders with the Agg canvas: no pyplot state, no GUI backend.
    fig = Figure(figsize=(size[0] / _CHART_DPI, size[1] / _CHART_DPI), dpi=_CHART_DPI)
    ax = fig.subplots()
    x = np.arange(len(class_names))
    width = 0.8 / max(len(metrics), 1)
    bars = []
    for index, values in enumerate(metrics.values()):
        ious = [values.get(f"IoU-{cls}", math.nan) for cls in class_names]
        bars.append(ax.bar(x + (index - (len(metrics) - 1) / 2) * width, ious, width))
    ax.set_xticks(x, class_names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("IoU (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Per-class IoU")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(bars, list(metrics), fontsize=8, loc="upper right")
    fig.subplots_adjust(left=0.06, right=0.99, top=0.92, bottom=0.2)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=_CHART_DPI)
    return path


def example_panel(
    image: np.ndarray,
    gt: np.ndarray,
    pred: np.ndarray,
    colors: np.ndarray,
    *,
    alpha: float = 0.5,
    gap: int = 4,
) -> np.ndarray:
    """Image, ground-truth overlay and prediction overlay side by side.

    Args:
        image: (H, W, 3) uint8 RGB; gt, pred: (H, W) class ids (ids outside [0, K) ignored).
        colors: (K, 3) uint8 class colours.

    Returns:
        (H, 3 * W + 2 * gap, 3) uint8 with white gaps.
    """
    if gt.shape != image.shape[:2] or pred.shape != image.shape[:2]:
        raise ValueError(
            f"Example image {image.shape}, ground truth {gt.shape} and prediction {pred.shape} "
            f"must have the same height and width"
        )
    spacer = np.full((image.shape[0], gap, 3), 255, dtype=np.uint8)
    return np.concatenate(
        [
            np.asarray(image, dtype=np.uint8),
            spacer,
            overlay(image, gt, colors, alpha),
            spacer,
            overlay(image, pred, colors, alpha),
        ],
        axis=1,
    )


def _write_examples(
    output_dir: Path,
    examples: Mapping[str, Sequence[Example]],
    class_names: Sequence[str],
    colors: np.ndarray,
    alpha: float,
) -> dict[str, list[tuple[str, str]]]:
    """Write panels and legends; returns {dataset: [(panel path, legend path), ...]} (relative)."""
    written: dict[str, list[tuple[str, str]]] = {}
    for name, triples in examples.items():
        for index, (image, gt, pred) in enumerate(triples):
            stem = f"{FILES_DIR}/examples/{_safe(name)}_{index:03d}"
            write_png_atomic(
                example_panel(image, gt, pred, colors, alpha=alpha), output_dir / f"{stem}.png"
            )
            ids = sorted(
                set(present_classes(gt, len(class_names)))
                | set(present_classes(pred, len(class_names)))
            )
            write_png_atomic(legend(class_names, colors, ids), output_dir / f"{stem}_legend.png")
            written.setdefault(name, []).append((f"{stem}.png", f"{stem}_legend.png"))
    return written


def _sem_seg_metrics(name: str, result: Mapping[str, Any]) -> Mapping[str, float]:
    if "sem_seg" not in result:
        raise ValueError(
            f"Results of {name!r} have no 'sem_seg' entry (keys: {sorted(result)}); expected "
            f"{{'sem_seg': {{'mIoU': ..., 'IoU-<class>': ...}}}}"
        )
    return {k: (math.nan if v is None else float(v)) for k, v in result["sem_seg"].items()}


def _baseline_table(
    metrics: Mapping[str, Mapping[str, float]],
    baselines: Mapping[str, Mapping[str, Mapping[str, Mapping[str, float]]]],
    run_name: str,
) -> Table:
    """mIoU of every baseline run and of this run, one row per dataset of this run."""
    rows = []
    for name in metrics:
        cells = [
            _sem_seg_metrics(f"{run}/{name}", results[name]).get("mIoU", math.nan)
            if name in results
            else math.nan
            for run, results in baselines.items()
        ]
        rows.append([name, *(_fmt(v) for v in [*cells, metrics[name].get("mIoU", math.nan)])])
    return ["dataset", *baselines, run_name], rows


def _classes_from_keys(metrics: Mapping[str, float]) -> list[str]:
    return [key[len("IoU-") :] for key in metrics if key.startswith("IoU-")]


def _nanmean(values: Sequence[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


def _fmt(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.2f}"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


Table = tuple[list[str], list[list[str]]]
ExampleFiles = Mapping[str, list[tuple[str, str]]]


@dataclass(frozen=True)
class _Format:
    """How one output format writes the parts of the report."""

    heading: Callable[[int, str], str]  # (level, text)
    paragraph: Callable[[str], str]
    table: Callable[[Table], str]
    image: Callable[[str, str], str]  # (src, alt)
    example: Callable[[str, str, str], str]  # (dataset, panel, legend)


@dataclass(frozen=True)
class _Page:
    """Everything the report shows, independent of the output format."""

    title: str
    intro: list[str]
    summary_heading: str
    sections: Mapping[str, Table]
    chart: str
    examples: ExampleFiles
    gallery: Gallery
    tables: Mapping[str, Table]


def _body(page: _Page, fmt: _Format) -> list[str]:
    """The report's parts, in order, in ``fmt``."""
    sections = page.sections
    parts = [fmt.heading(1, page.title), *(fmt.paragraph(line) for line in page.intro)]
    parts += [fmt.heading(2, page.summary_heading), fmt.table(sections["summary"])]
    if "baselines" in sections:
        parts += [fmt.heading(2, "mIoU against other runs (%)"), fmt.table(sections["baselines"])]
    for heading, table in page.tables.items():
        parts += [fmt.heading(2, heading), fmt.table(table)]
    parts += [
        fmt.heading(2, "Per-class IoU (%)"),
        fmt.table(sections["classes"]),
        fmt.image(page.chart, "Per-class IoU"),
    ]
    if page.examples:
        parts.append(fmt.heading(2, "Examples (image | ground truth | prediction)"))
        for name, files in page.examples.items():
            parts.append(fmt.heading(3, name))
            parts += [fmt.example(name, panel, legend_file) for panel, legend_file in files]
    for heading, pictures in page.gallery.items():
        parts.append(fmt.heading(2, heading))
        parts.append(" ".join(fmt.image(path, caption) for path, caption in pictures))
    return parts


def _md_table(table: Table) -> str:
    header, rows = table
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


_MARKDOWN = _Format(
    heading=lambda level, text: f"{'#' * level} {text}",
    paragraph=lambda text: text,
    table=_md_table,
    image=lambda src, alt: f"![{alt}]({src})",
    example=lambda name, panel, legend_file: f"![{name} example]({panel}) ![legend]({legend_file})",
)


def _markdown(page: _Page) -> str:
    return "\n\n".join(_body(page, _MARKDOWN)) + "\n"


_CSS = (
    "body{font-family:sans-serif;margin:2em;max-width:1300px}"
    "table{border-collapse:collapse;margin:1em 0}"
    "th,td{border:1px solid #bbb;padding:3px 8px;text-align:right}"
    "th:first-child,td:first-child{text-align:left}"
    "tr:nth-child(even){background:#f4f4f4}"
    "img{max-width:100%;vertical-align:top;margin:4px}"
)


def _html_table(table: Table) -> str:
    header, rows = table
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html_image(src: str, alt: str) -> str:
    return f'<img src="{html.escape(src)}" alt="{html.escape(alt)}">'


_HTML = _Format(
    heading=lambda level, text: f"<h{level}>{html.escape(text)}</h{level}>",
    paragraph=lambda text: f"<p>{html.escape(text)}</p>",
    table=_html_table,
    image=_html_image,
    example=lambda name, panel, legend_file: (
        f"<div>{_html_image(panel, f'{name} example')}{_html_image(legend_file, 'legend')}</div>"
    ),
)


def _html(page: _Page) -> str:
    parts = [
        "<!DOCTYPE html>",
        f'<html><head><meta charset="utf-8"><title>{html.escape(page.title)}</title>',
        f"<style>{_CSS}</style></head><body>",
        *_body(page, _HTML),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"
