"""The side-by-side training-step benchmark says what to provide when the original CLOUDS code
or its detectron2 stand-ins are missing (the original is not part of the project, so its
timing itself runs outside the test suite)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import bench_clouds_train_step
from benchmarks.bench_clouds_train_step import OriginalNotFoundError


@pytest.fixture(autouse=True)
def _no_original_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLOUDS_ORIGINAL_ROOT", raising=False)
    monkeypatch.delenv("CLOUDS_ORIGINAL_SHIMS", raising=False)


def _fake_original(root: Path) -> Path:
    (root / "clouds").mkdir(parents=True)
    (root / "clouds" / "clouds.py").write_text("")
    (root / "my_utils").mkdir()
    return root


def test_without_the_original_it_names_the_checkout_to_provide() -> None:
    with pytest.raises(OriginalNotFoundError, match="CLOUDS_ORIGINAL_ROOT.*bac4305"):
        bench_clouds_train_step.main(["--json", "unused.json"])


def test_without_shims_it_names_the_folder_to_provide(tmp_path: Path) -> None:
    root = _fake_original(tmp_path / "CLOUDS")
    with pytest.raises(OriginalNotFoundError, match="CLOUDS_ORIGINAL_SHIMS"):
        bench_clouds_train_step.main(["--original-root", str(root)])


def test_incomplete_shims_are_listed(tmp_path: Path) -> None:
    root = _fake_original(tmp_path / "CLOUDS")
    shims = tmp_path / "shims"
    (shims / "detectron2" / "config").mkdir(parents=True)
    (shims / "detectron2" / "config" / "__init__.py").write_text("")
    with pytest.raises(OriginalNotFoundError, match="detectron2.structures") as error:
        bench_clouds_train_step.main(["--original-root", str(root), "--original-shims", str(shims)])
    assert "detectron2.config'" not in str(error.value)
