"""Tables, plot and report of a corruption-robustness evaluation (``tools/eval_corruptions.py``).

A *cell* is the evaluation of every dataset under one (corruption, severity), or clean:
``{dataset: {"sem_seg": metrics, "confusion": (K, K) counts, "mean_over": rule}}``. ACDC's
condition sets are also grouped into day (fog, rain, snow) and night (the ACDC paper's split)
and all: a group's metrics come from the sum of its members' confusion matrices (pixel-wise
aggregation, as if the group were one dataset), not from a mean of their mIoUs.

The report is the usual evaluation report (:func:`clouds.evaluation.report.write_report`: clean
mIoU per dataset, per-class IoU) with the corruption tables and the mIoU-vs-severity plot added.
The summary "mean corrupted" is the mean mIoU over every corruption and severity evaluated (the
mCE-style summary without a reference model); "% of clean" divides it by the clean mIoU.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from clouds.evaluation.metrics import metrics_from_confusion
from clouds.evaluation.report import FILES_DIR, write_report
from clouds.utils.io import atomic_path

__all__ = [
    "CLEAN",
    "Cell",
    "acdc_groups",
    "cell_name",
    "corruption_plot",
    "corruption_tables",
    "with_groups",
    "write_robustness_report",
]

Cell = dict[str, dict[str, Any]]
CLEAN = "clean"
_ACDC = re.compile(r"^(?:dg_)?acdc_(fog|night|rain|snow)_\w+$")
_DAY_CONDITIONS = ("fog", "rain", "snow")
_DPI = 100


def cell_name(corruption: str, severity: int) -> str:
    """``clean`` or ``<corruption>_s<severity>`` (the cell's file stem)."""
    return CLEAN if corruption == CLEAN else f"{corruption}_s{severity}"


def acdc_groups(datasets: Sequence[str]) -> dict[str, list[str]]:
    """{group: member datasets} of the ACDC condition sets among ``datasets``: "ACDC day"
    (fog, rain, snow), "ACDC night" and, when both are there, "ACDC all"."""
    conditions = {name: m.group(1) for name in datasets if (m := _ACDC.match(name))}
    day = [name for name, c in conditions.items() if c in _DAY_CONDITIONS]
    night = [name for name, c in conditions.items() if c == "night"]
    groups = {}
    if day:
        groups["ACDC day"] = day
    if night:
        groups["ACDC night"] = night
    if day and night:
        groups["ACDC all"] = [*day, *night]
    return groups


def with_groups(
    cell: Cell, groups: Mapping[str, Sequence[str]], class_names: Sequence[str]
) -> Cell:
    """``cell`` plus one entry per group, scored on the summed confusion matrix of its members
    (with the class-mean rule of its first member)."""
    out = dict(cell)
    for group, members in groups.items():
        conf = sum(torch.tensor(cell[m]["confusion"], dtype=torch.int64) for m in members)
        rule = cell[members[0]]["mean_over"]
        out[group] = {
            "sem_seg": metrics_from_confusion(conf, class_names, rule),
            "confusion": conf.tolist(),
            "mean_over": rule,
        }
    return out


def _miou(cell: Cell, dataset: str) -> float:
    value = cell[dataset]["sem_seg"].get("mIoU")
    return math.nan if value is None else float(value)


def _nanmean(values: Sequence[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


def _fmt(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.2f}"


def _relative(value: float, clean: float) -> float:
    return math.nan if math.isnan(value) or math.isnan(clean) or clean == 0 else 100 * value / clean


def _corrupted_mean(cells: Mapping[str, Cell], dataset: str) -> float:
    return _nanmean([_miou(cell, dataset) for name, cell in cells.items() if name != CLEAN])


Table = tuple[list[str], list[list[str]]]


def corruption_tables(
    cells: Mapping[str, Cell],
    datasets: Sequence[str],
    corruptions: Sequence[str],
    severities: Sequence[int],
    groups: Mapping[str, Sequence[str]] = {},
) -> dict[str, Table]:
    """{heading: (header, rows)}: the summary over datasets, the ACDC per-condition and day /
    night table (when ``groups``), then per dataset mIoU per corruption x severity."""
    clean = cells[CLEAN]
    names = [*datasets, *groups]
    summary_rows = []
    for name in names:
        mean = _corrupted_mean(cells, name)
        summary_rows.append(
            [name, _fmt(_miou(clean, name)), _fmt(mean), _fmt(_relative(mean, _miou(clean, name)))]
        )
    tables = {
        "Corruption robustness: mIoU (%) clean and mean over every corruption and severity": (
            ["dataset", "clean", "mean corrupted", "% of clean"],
            summary_rows,
        )
    }
    if groups:
        rows = []
        for name in [*(m for members in groups.values() for m in members), *groups]:
            if any(row[0] == name for row in rows):
                continue
            match = _ACDC.match(name)
            split = (
                ("night" if match.group(1) == "night" else "day")
                if match
                else "pixel-wise over " + ", ".join(groups[name])
            )
            mean = _corrupted_mean(cells, name)
            clean_miou = _miou(clean, name)
            rows.append(
                [name, split, _fmt(clean_miou), _fmt(mean), _fmt(_relative(mean, clean_miou))]
            )
        heading = (
            "ACDC per condition and day / night (groups: confusion matrices summed over their "
            "conditions' pixels, then mIoU)"
        )
        tables[heading] = (["dataset", "split", "clean", "mean corrupted", "% of clean"], rows)
    for name in names:
        rows = []
        for corruption in corruptions:
            values = [_miou(cells[cell_name(corruption, s)], name) for s in severities]
            mean = _nanmean(values)
            rows.append(
                [
                    corruption,
                    *map(_fmt, values),
                    _fmt(mean),
                    _fmt(_relative(mean, _miou(clean, name))),
                ]
            )
        per_severity = [
            _nanmean([_miou(cells[cell_name(c, s)], name) for c in corruptions]) for s in severities
        ]
        overall = _corrupted_mean(cells, name)
        rows.append(
            [
                "mean",
                *map(_fmt, per_severity),
                _fmt(overall),
                _fmt(_relative(overall, _miou(clean, name))),
            ]
        )
        heading = f"{name}: mIoU (%) per corruption and severity (clean {_fmt(_miou(clean, name))})"
        tables[heading] = (
            ["corruption", *(f"severity {s}" for s in severities), "mean", "% of clean"],
            rows,
        )
    return tables


def corruption_plot(
    cells: Mapping[str, Cell],
    names: Sequence[str],
    corruptions: Sequence[str],
    severities: Sequence[int],
    path: str | os.PathLike,
    *,
    panel_size: tuple[int, int] = (600, 400),
) -> Path:
    """mIoU against severity (0 = clean), one line per corruption, one panel per dataset."""
    cols = min(len(names), 3)
    rows = math.ceil(len(names) / cols)
    fig = Figure(figsize=(cols * panel_size[0] / _DPI, rows * panel_size[1] / _DPI), dpi=_DPI)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    x = [0, *severities]
    styles = ["-", "--", ":", "-."]
    for ax, name in zip(axes, names):
        clean = _miou(cells[CLEAN], name)
        for index, corruption in enumerate(corruptions):
            ys = [clean, *(_miou(cells[cell_name(corruption, s)], name) for s in severities)]
            ax.plot(
                x,
                ys,
                color=f"C{index % 10}",
                linestyle=styles[index // 10 % len(styles)],
                marker="o",
                markersize=3,
                label=corruption,
            )
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("severity (0 = clean)")
        ax.set_ylabel("mIoU (%)")
        ax.set_xticks(x)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI)
    return path


def write_robustness_report(
    output_dir: str | os.PathLike,
    cells: Mapping[str, Cell],
    *,
    datasets: Sequence[str],
    corruptions: Sequence[str],
    severities: Sequence[int],
    class_names: Sequence[str],
    intro: Sequence[str] = (),
) -> Path:
    """``report.md`` / ``report.html`` in ``output_dir``: the clean evaluation report plus the
    corruption tables and plot (``report_files/corruptions.png``); returns report.md's path."""
    output_dir = Path(output_dir)
    groups = acdc_groups(datasets)
    cells = {name: with_groups(cell, groups, class_names) for name, cell in cells.items()}
    names = [*datasets, *groups]
    plot = corruption_plot(
        cells, names, corruptions, severities, output_dir / FILES_DIR / "corruptions.png"
    )
    clean = {name: {"sem_seg": cells[CLEAN][name]["sem_seg"]} for name in datasets}
    return write_report(
        output_dir,
        clean,
        title="Corruption robustness report",
        intro=[
            *intro,
            "Clean mIoU and per-class IoU first, then mIoU under each ImageNet-C corruption and "
            "severity. 'mean corrupted' averages every corruption and severity evaluated; "
            "'% of clean' divides it by the clean mIoU.",
        ],
        tables=corruption_tables(cells, datasets, corruptions, severities, groups),
        gallery={
            "mIoU against corruption severity": [
                (plot.relative_to(output_dir).as_posix(), "mIoU vs severity")
            ]
        },
    )
