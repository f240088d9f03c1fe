"""Training curves from ``metrics.json`` files: losses, learning rate, mIoU per eval dataset.

``metrics.json`` holds one JSON object per line (detectron2's convention), e.g.::

    {"iteration": 20, "total_loss": 3.1, "loss_ce": 0.8, "lr": 1e-05}
    {"iteration": 100, "cityscapes_val/sem_seg/mIoU": 41.2}

The reader is tolerant: blank or unparsable lines (a line still being written) are skipped,
the x axis is the first of "iteration", "step", "global_step" (else the line number), a later
record of a key at the same x replaces the earlier one (a resumed run logs again the iterations
after its checkpoint; an ``--eval-only`` run may re-evaluate a logged iteration), and keys
are grouped by name: losses (a name containing "loss"; deep-supervision copies ending in
``_<digit>`` are left out), learning rates (a name component starting with "lr", e.g. "lr" or Lightning's "lr-AdamW"), and mIoU
(a key ending in "mIoU", labelled by the dataset part of the key).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.figure import Figure

from clouds.utils.io import atomic_path

__all__ = ["Run", "load_run", "plot_runs", "read_metrics"]

logger = logging.getLogger(__name__)

X_KEYS = ("iteration", "step", "global_step")
_DEEP_SUPERVISION = re.compile(r"_\d+$")
_DPI = 100
PANELS = ("total loss", "loss terms", "learning rate", "mIoU")

Series = dict[str, list[tuple[float, float]]]


@dataclass
class Run:
    """Curves of one training run, each a list of (x, value) points sorted by x."""

    name: str
    total_loss: Series = field(default_factory=dict)
    loss_terms: Series = field(default_factory=dict)
    lr: Series = field(default_factory=dict)
    miou: Series = field(default_factory=dict)

    def panels(self) -> tuple[Series, Series, Series, Series]:
        return self.total_loss, self.loss_terms, self.lr, self.miou


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """Records of a metrics.json (one JSON object per line, or one JSON list).

    Raises:
        FileNotFoundError: naming ``path`` when it does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"metrics file not found: {path}")
    text = path.read_text()
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, list):
            return [r for r in data if isinstance(r, dict)]
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            logger.warning("%s:%d is not valid JSON; skipped", path, number)
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _classify(key: str) -> tuple[str, str] | None:
    """(panel attribute, curve label) of a metrics key, or None when it is not plotted."""
    base = key.rsplit("/", 1)[-1]
    if key.endswith("mIoU"):
        dataset = key[: -len("mIoU")].rstrip("/")
        dataset = dataset.removesuffix("/sem_seg").removesuffix("sem_seg") or "mIoU"
        return "miou", dataset
    if base in ("total_loss", "loss") or key in ("train/loss", "train/total_loss"):
        return "total_loss", key
    if "loss" in base and not _DEEP_SUPERVISION.search(base):
        return "loss_terms", key
    if any(part.startswith("lr") for part in key.split("/")):
        return "lr", key
    return None


def load_run(source: str | os.PathLike, name: str | None = None) -> Run:
    """Curves of the run in ``source`` (an OUTPUT_DIR holding metrics.json, or the file)."""
    source = Path(source)
    path = source / "metrics.json" if source.is_dir() else source
    run = Run(name=name or (source.name if source.is_dir() else source.parent.name))
    for line_number, record in enumerate(read_metrics(path)):
        x = next((_number(record[k]) for k in X_KEYS if k in record), None)
        x = float(line_number) if x is None else x
        for key, value in record.items():
            y = _number(value)
            kind = _classify(key) if key not in X_KEYS else None
            if y is None or kind is None:
                continue
            attribute, label = kind
            getattr(run, attribute).setdefault(label, []).append((x, y))
    for series in run.panels():
        for points in series.values():
            points[:] = sorted(dict(points).items())  # a later record at the same x wins
    return run


def plot_runs(
    runs: Sequence[Run], output: str | os.PathLike, *, size: tuple[int, int] = (1200, 800)
) -> Path:
    """Plot the curves of ``runs`` on one 2x2 figure (one colour per run) as a PNG of ``size``.

    Panels: total loss, loss terms, learning rate (log scale), mIoU per eval dataset. A run's
    curves share its colour; a panel's curves of one run differ by line style. mIoU points and
    curves of a single point are drawn with markers (a one-point line is invisible).
    """
    if not runs:
        raise ValueError("plot_runs needs at least one run")
    fig = Figure(figsize=(size[0] / _DPI, size[1] / _DPI), dpi=_DPI)
    axes = fig.subplots(2, 2).ravel()
    colors = [f"C{i % 10}" for i in range(len(runs))]
    styles = ["-", "--", ":", "-."]
    for panel, (ax, title) in enumerate(zip(axes, PANELS)):
        drawn = 0
        for run, color in zip(runs, colors):
            series: Mapping[str, list[tuple[float, float]]] = run.panels()[panel]
            for index, (label, points) in enumerate(sorted(series.items())):
                xs, ys = zip(*points)
                marker = "o" if title == "mIoU" or len(points) == 1 else None
                prefix = f"{run.name}: " if len(runs) > 1 else ""
                ax.plot(
                    xs,
                    ys,
                    color=color,
                    linestyle=styles[index % len(styles)],
                    marker=marker,
                    markersize=3,
                    label=f"{prefix}{label}",
                )
                drawn += 1
        ax.set_title(title)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend(fontsize=7)
            if title == "learning rate" and all(
                y > 0 for run in runs for pts in run.lr.values() for _, y in pts
            ):
                ax.set_yscale("log")
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    output = Path(output)
    with atomic_path(output) as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI)
    return output
