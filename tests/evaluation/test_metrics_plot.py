"""Curves that do not mislead: a resumed run's repeated iterations are not drawn twice, and a
curve of a single point is drawn as a marker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from clouds.evaluation.metrics_plot import load_run, plot_runs


def _write(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_resumed_run_keeps_one_point_per_iteration(tmp_path: Path) -> None:
    # checkpoint at 40, the first process logged up to 60, the resumed one logs 60 and 80 again
    first = [{"iteration": it, "total_loss": 5.0 - it / 100} for it in (20, 40, 60)]
    resumed = [{"iteration": it, "total_loss": 1.0 - it / 1000} for it in (60, 80)]
    _write(tmp_path / "metrics.json", [*first, *resumed])
    run = load_run(tmp_path)
    assert run.total_loss["total_loss"] == [(20.0, 4.8), (40.0, 4.6), (60.0, 0.94), (80.0, 0.92)]


def test_single_points_are_markers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(
        tmp_path / "metrics.json",
        [
            {"iteration": 4000, "cityscapes_val/sem_seg/mIoU": 41.0},  # one --eval-only run
            {"iteration": 20, "total_loss": 3.0, "lr": 1e-5},
        ],
    )
    figures: list[Figure] = []
    original = Figure.savefig
    monkeypatch.setattr(
        Figure, "savefig", lambda self, *a, **k: (figures.append(self), original(self, *a, **k))
    )
    plot_runs([load_run(tmp_path)], tmp_path / "curves.png", size=(400, 300))
    (fig,) = figures
    lines = {ax.get_title(): ax.get_lines() for ax in fig.axes}
    assert [line.get_marker() for line in lines["total loss"]] == ["o"]
    assert [line.get_marker() for line in lines["mIoU"]] == ["o"]
    assert list(lines["mIoU"][0].get_xdata()) == [4000.0]
    assert (tmp_path / "curves.png").stat().st_size > 0
