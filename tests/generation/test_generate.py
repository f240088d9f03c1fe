"""End to end: tiny pipeline saved to disk, loaded back, images + manifests, parts, resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline

from clouds.data.catalog import DatasetCatalog
from clouds.data.datasets import register_all_datasets
from clouds.generation import runner
from clouds.generation.cli import main
from clouds.generation.manifest import read_manifests
from clouds.generation.pipeline import load_pipeline
from clouds.generation.plan import image_seed
from clouds.generation.runner import GenerationSettings, SettingsMismatchError, generate_images
from clouds.utils.io import read_image

from .conftest import PROMPTS

REPO = Path(__file__).resolve().parents[2]
SIZE = 32


@pytest.fixture(scope="module")
def pipe(tiny_sd_folder: Path) -> StableDiffusionPipeline:
    return load_pipeline(
        str(tiny_sd_folder), dtype=torch.float32, device=torch.device("cpu"), local_files_only=True
    )


def _settings(folder: Path, model: Path, **overrides: object) -> GenerationSettings:
    kwargs: dict = dict(
        prompts=PROMPTS,
        folder=folder,
        num_images=5,
        model_id=str(model),
        dtype="fp32",
        steps=2,
        guidance=1.0,  # no classifier-free guidance: half the compute of the tests
        height=SIZE,
        width=SIZE,
        batch_size=4,
        seed=7,
    )
    kwargs.update(overrides)
    return GenerationSettings(**kwargs)


def _pixels(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: read_image(p) for p in sorted((folder / "images").glob("[!.]*.png"))}


def test_writes_images_and_manifest(tmp_path: Path, pipe, tiny_sd_folder: Path) -> None:
    settings = _settings(tmp_path / "set", tiny_sd_folder, guidance=7.5, batch_size=3)
    summary = generate_images(settings, lambda: pipe, progress=False)
    assert (summary.planned, summary.skipped, summary.written) == (5, 0, 5)
    images = _pixels(settings.folder)
    names = [f"im_{i}_p{i % 3}.png" for i in range(5)]
    assert sorted(images) == names
    assert all(im.shape == (SIZE, SIZE, 3) and im.std() > 0 for im in images.values())
    lines = (settings.folder / "manifest-part000.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["file"] for r in records] == names
    assert records[4] == {
        "file": names[4],
        "prompt": PROMPTS[1],
        "prompt_index": 1,
        "seed": image_seed(7, 4),
        "model_id": str(tiny_sd_folder),
        "scheduler": "euler",
        "steps": 2,
        "guidance": 7.5,
        "height": SIZE,
        "width": SIZE,
        "dtype": "fp32",
    }


def test_same_seed_same_pixels_whatever_the_batch(
    tmp_path: Path, pipe, tiny_sd_folder: Path
) -> None:
    a = _settings(tmp_path / "a", tiny_sd_folder, num_images=2, batch_size=2)
    b = _settings(tmp_path / "b", tiny_sd_folder, num_images=2, batch_size=1)
    c = _settings(tmp_path / "c", tiny_sd_folder, num_images=2, seed=8)
    for s in (a, b, c):
        generate_images(s, lambda: pipe, progress=False)
    pa, pb, pc = _pixels(a.folder), _pixels(b.folder), _pixels(c.folder)
    for name in pa:
        assert np.abs(pa[name].astype(int) - pb[name]).max() <= 1
        assert np.abs(pa[name].astype(int) - pc[name]).mean() > 1


def test_parts_equal_one_run_when_parts_hold_whole_prompt_cycles(
    tmp_path: Path, pipe, tiny_sd_folder: Path
) -> None:
    """The original's parts: part K of N images makes im_{K*N} .. im_{K*N+N-1}; with N a
    multiple of the prompt count they are the images of one run of all N*parts images."""
    whole = _settings(tmp_path / "whole", tiny_sd_folder, num_images=6, batch_size=6)
    generate_images(whole, lambda: pipe, progress=False)
    for part in (0, 1):
        one = _settings(tmp_path / "parts", tiny_sd_folder, num_images=3, part=part)
        assert generate_images(one, lambda: pipe, progress=False).written == 3
    parts = [
        {
            json.loads(line)["file"]
            for line in (tmp_path / "parts" / f"manifest-part00{k}.jsonl").read_text().splitlines()
        }
        for k in (0, 1)
    ]
    assert parts == [
        {"im_0_p0.png", "im_1_p1.png", "im_2_p2.png"},
        {"im_3_p0.png", "im_4_p1.png", "im_5_p2.png"},
    ]
    assert parts[0] | parts[1] == set(read_manifests(tmp_path / "whole"))
    pw, ps = _pixels(whole.folder), _pixels(tmp_path / "parts")
    assert sorted(pw) == sorted(ps)
    for name in pw:
        assert np.abs(pw[name].astype(int) - ps[name]).max() <= 1


class _Killed(RuntimeError):
    """Stands for a crash in the middle of a generation run."""


def test_killed_run_resumes_with_only_the_missing_images(
    tmp_path: Path, pipe, tiny_sd_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path / "set", tiny_sd_folder, num_images=6, batch_size=3)
    real_write = runner.write_png_atomic
    written: list[str] = []

    def write_then_die(image: np.ndarray, path: Path) -> None:
        if len(written) == 3:
            raise _Killed("simulated kill")
        real_write(image, path)
        written.append(Path(path).name)

    monkeypatch.setattr(runner, "write_png_atomic", write_then_die)
    with pytest.raises(_Killed):
        generate_images(settings, lambda: pipe, progress=False)
    done = {p.name: p.stat().st_mtime_ns for p in (settings.folder / "images").glob("*.png")}
    assert sorted(done) == sorted(written) and len(done) == 3

    written.clear()
    monkeypatch.setattr(
        runner,
        "write_png_atomic",
        lambda image, path: (real_write(image, path), written.append(Path(path).name)),
    )
    summary = generate_images(settings, lambda: pipe, progress=False)
    assert (summary.skipped, summary.written) == (3, 3)
    assert set(written).isdisjoint(done) and len(written) == 3
    assert {n: (settings.folder / "images" / n).stat().st_mtime_ns for n in done} == done
    lines = (settings.folder / "manifest-part000.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["file"] for line in lines) == sorted([*done, *written])

    # growing the set later appends only the new indices
    written.clear()
    bigger = _settings(settings.folder, tiny_sd_folder, num_images=8)
    assert generate_images(bigger, lambda: pipe, progress=False).written == 2
    assert sorted(written) == ["im_6_p0.png", "im_7_p1.png"]


def test_truncated_image_and_stale_temp_file_are_repaired(
    tmp_path: Path, pipe, tiny_sd_folder: Path
) -> None:
    settings = _settings(tmp_path / "set", tiny_sd_folder, num_images=3)
    generate_images(settings, lambda: pipe, progress=False)
    before = _pixels(settings.folder)
    victim = settings.folder / "images" / "im_1_p1.png"
    victim.write_bytes(victim.read_bytes()[:100])
    stale = settings.folder / "images" / ".im_2_p2.png.abc123.tmp.png"
    stale.write_bytes(b"partial")
    other = settings.folder / "images" / ".im_9_p0.png.xyz.tmp.png"  # another part's
    other.write_bytes(b"partial")
    summary = generate_images(settings, lambda: pipe, progress=False)
    assert (summary.skipped, summary.written) == (2, 1)
    assert not stale.exists() and other.exists()
    after = _pixels(settings.folder)
    assert np.array_equal(after[victim.name], before[victim.name])


def test_rerun_with_other_settings_is_refused_unless_overwrite(
    tmp_path: Path, pipe, tiny_sd_folder: Path
) -> None:
    generate_images(
        _settings(tmp_path / "set", tiny_sd_folder, num_images=2), lambda: pipe, progress=False
    )
    changed = _settings(tmp_path / "set", tiny_sd_folder, num_images=2, steps=3)
    with pytest.raises(SettingsMismatchError, match=r"im_0_p0.png.*steps 2 -> 3.*--overwrite"):
        generate_images(changed, lambda: pipe, progress=False)
    redo = _settings(tmp_path / "set", tiny_sd_folder, num_images=2, steps=3, overwrite=True)
    assert generate_images(redo, lambda: pipe, progress=False).written == 2
    assert {r["steps"] for r in read_manifests(tmp_path / "set").values()} == {3}


def test_nothing_to_do_does_not_load_the_model(tmp_path: Path, pipe, tiny_sd_folder: Path) -> None:
    settings = _settings(tmp_path / "set", tiny_sd_folder, num_images=2)
    generate_images(settings, lambda: pipe, progress=False)

    def must_not_load() -> StableDiffusionPipeline:
        raise AssertionError("model loaded although every image exists")

    assert generate_images(settings, must_not_load, progress=False).skipped == 2

    # images whose manifest line was lost (killed between rename and append) get it back
    manifest = settings.folder / "manifest-part000.jsonl"
    records = manifest.read_text()
    manifest.unlink()
    assert generate_images(settings, must_not_load, progress=False).skipped == 2
    assert manifest.read_text() == records


def test_cli_subprocess_end_to_end(tmp_path: Path, tiny_sd_folder: Path, prompt_file: Path) -> None:
    cmd = [
        sys.executable,
        str(REPO / "generate_txt_im.py"),
        "--input",
        str(prompt_file.with_suffix("")),
        "--folder",
        "sd_tiny",
        "--num-images",
        "2",
        "--part",
        "1",
        "--model-id",
        str(tiny_sd_folder),
        "--local-files-only",
        "--steps",
        "2",
        "--height",
        str(SIZE),
        "--width",
        str(SIZE),
        "--batch-size",
        "2",
        "--output-root",
        str(tmp_path / "stable_diffusion"),
        "--scheduler",
        "dpm-solver++",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "stable_diffusion" / "sd_tiny"
    assert sorted(p.name for p in (folder / "images").glob("*.png")) == [
        "im_2_p0.png",
        "im_3_p1.png",
    ]
    assert {r["scheduler"] for r in read_manifests(folder).values()} == {"dpm-solver++"}
    assert "2 written" in result.stdout

    # the folder is the unlabelled dataset sd_tiny, even with a temp file of a running part beside
    (folder / "images" / ".im_5_p2.png.x1y2.tmp.png").write_bytes(b"half-written")
    register_all_datasets(tmp_path)
    dicts = DatasetCatalog.get("sd_tiny")
    assert [Path(d["file_name"]).name for d in dicts] == ["im_2_p0.png", "im_3_p1.png"]
    assert all(
        d["sem_seg_file_name"] is None and (d["height"], d["width"]) == (SIZE, SIZE) for d in dicts
    )


def _cli(tmp_path: Path, model: str, prompts: str) -> list[str]:
    return [
        "--input",
        prompts,
        "--folder",
        "x",
        "--num-images",
        "1",
        "--model-id",
        model,
        "--local-files-only",
        "--steps",
        "2",
        "--height",
        str(SIZE),
        "--width",
        str(SIZE),
        "--output-root",
        str(tmp_path / "out"),
    ]


def test_cli_errors_name_the_culprit(
    tmp_path: Path, tiny_sd_folder: Path, prompt_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    cases = [
        (_cli(tmp_path, str(tiny_sd_folder), str(tmp_path / "absent")), "absent' not found"),
        (_cli(tmp_path, str(tiny_sd_folder), str(empty)), "empty.txt holds no prompt"),
        (_cli(tmp_path, str(tmp_path / "no_model"), str(prompt_file)), "no_model does not exist"),
        (
            _cli(tmp_path, "clouds-test/absent-model", str(prompt_file)),
            "'clouds-test/absent-model'",
        ),
        (
            [
                *_cli(tmp_path, str(tiny_sd_folder), str(prompt_file)),
                "--dtype",
                "fp16",
                "--device",
                "cpu",
            ],
            "fp16 is not supported on CPU",
        ),
        (
            [*_cli(tmp_path, str(tiny_sd_folder), str(prompt_file)), "--part", "-1"],
            "--part must be >= 0",
        ),
        (
            _cli(tmp_path, str(tiny_sd_folder), str(tmp_path / "prompt_llama70b")),
            "python tools/fetch_original_prompts.py",
        ),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        assert message in capsys.readouterr().err
