"""Generate one part of a synthetic image set: plan, skip what is done, batch, write.

Layout of a generated folder (registered as in the original: see
clouds/data/datasets/register_sd.py)::

    <output_root>/<folder>/images/im_<index>_p<prompt>.png   (see clouds.generation.plan)
    <output_root>/<folder>/manifest-part<K>.jsonl

A rerun with the same settings skips images that are already written and valid, regenerates
missing or truncated ones, and refuses to mix settings in one folder: an existing image whose
manifest record names another prompt, seed, model, scheduler, steps, guidance or size raises
:class:`SettingsMismatchError` (``overwrite=True`` regenerates the part instead). PNG encoding
and manifest lines run on a worker thread while the accelerator computes the next batch.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import torch
from diffusers import StableDiffusionPipeline
from tqdm import tqdm

from clouds.generation.manifest import (
    SETTINGS_KEYS,
    Manifest,
    is_valid_image,
    manifest_name,
    read_manifests,
)
from clouds.generation.plan import GenerationItem, plan_items
from clouds.generation.prompt_length import log_overlong_prompts, quiet_truncation_warnings
from clouds.utils.io import write_png_atomic

__all__ = ["GenerationSettings", "GenerationSummary", "SettingsMismatchError", "generate_images"]


class SettingsMismatchError(ValueError):
    """An existing image of the folder was made with other settings than this run's."""


@dataclass(frozen=True)
class GenerationSettings:
    """What one part generates and where.

    ``folder`` is ``<output_root>/<folder>``; images go to its ``images/`` subfolder.
    ``dtype`` ("fp16", "bf16" or "fp32") is only recorded in the manifest.
    """

    prompts: Sequence[str]
    folder: Path
    num_images: int
    model_id: str
    dtype: str
    scheduler: str = "euler"
    steps: int = 50
    guidance: float = 7.5
    height: int = 768
    width: int = 768
    batch_size: int = 1
    seed: int = 0
    part: int = 0
    overwrite: bool = False

    def __post_init__(self) -> None:
        for key in ("steps", "height", "width", "batch_size"):
            if getattr(self, key) < 1:
                raise ValueError(
                    f"--{key.replace('_', '-')} must be >= 1, got {getattr(self, key)}"
                )

    @property
    def image_dir(self) -> Path:
        return self.folder / "images"

    def record(self, item: GenerationItem) -> dict[str, Any]:
        """The manifest record of ``item``."""
        return {
            "file": item.file_name,
            "prompt": item.prompt,
            "prompt_index": item.prompt_index,
            "seed": item.seed,
            "model_id": self.model_id,
            "scheduler": self.scheduler,
            "steps": self.steps,
            "guidance": self.guidance,
            "height": self.height,
            "width": self.width,
            "dtype": self.dtype,
        }


@dataclass(frozen=True)
class GenerationSummary:
    """What a run did to its part."""

    planned: int
    skipped: int
    written: int


def _check_settings(existing: dict[str, Any], expected: dict[str, Any], image_dir: Path) -> None:
    diffs = [
        f"{key} {existing.get(key)!r} -> {expected[key]!r}"
        for key in SETTINGS_KEYS
        if existing.get(key) != expected[key]
    ]
    if diffs:
        raise SettingsMismatchError(
            f"{image_dir / expected['file']} was generated with other settings than this run "
            f"({'; '.join(diffs)}). Use another --folder, or --overwrite to regenerate."
        )


def _remove_stale_temp_files(image_dir: Path, items: Sequence[GenerationItem]) -> None:
    """Delete the temporary files a killed run of this part left beside its images.

    Temporary names are ``.<file>.<random>.tmp.png`` (see ``clouds.utils.io.atomic_path``);
    other parts' files are left alone since they may be running now.
    """
    own = {item.file_name for item in items}
    for tmp in image_dir.glob(".*.tmp.png"):
        if tmp.name[1:].split(".png.", 1)[0] + ".png" in own:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def _pending_items(
    settings: GenerationSettings, items: list[GenerationItem], manifest: Manifest
) -> list[GenerationItem]:
    """Items to generate; valid images missing from this part's manifest get their record."""
    if settings.overwrite:
        return list(items)
    records = read_manifests(settings.folder)
    own_records = manifest.records()
    size = (settings.width, settings.height)
    paths = [settings.image_dir / item.file_name for item in items]
    with ThreadPoolExecutor(max_workers=4) as pool:
        valid = list(pool.map(lambda p: p.is_file() and is_valid_image(p, size), paths))
    pending = []
    for item, ok in zip(items, valid):
        if not ok:
            pending.append(item)
            continue
        expected = settings.record(item)
        if item.file_name in records:
            _check_settings(records[item.file_name], expected, settings.image_dir)
        if item.file_name not in own_records:
            manifest.append(expected)
    return pending


class _BackgroundWriter:
    """Writes PNGs (atomically) and then their manifest lines, in order, on one worker thread."""

    def __init__(self, manifest: Manifest, max_pending: int) -> None:
        self._manifest = manifest
        self._max_pending = max_pending
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clouds-png-writer")
        self._pending: deque[Future[None]] = deque()

    def _write(self, image: np.ndarray, path: Path, record: dict[str, Any]) -> None:
        write_png_atomic(image, path)
        self._manifest.append(record)

    def submit(self, image: np.ndarray, path: Path, record: dict[str, Any]) -> None:
        """Queue one image; blocks while too many are queued, raises a failed write's error."""
        self._pending.append(self._pool.submit(self._write, image, path, record))
        while self._pending and (len(self._pending) > self._max_pending or self._pending[0].done()):
            self._pending.popleft().result()

    def __enter__(self) -> _BackgroundWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._pool.shutdown(wait=True, cancel_futures=exc_type is not None)
        if exc_type is None:
            while self._pending:
                self._pending.popleft().result()


def _generate_batch(
    pipe: StableDiffusionPipeline, batch: Sequence[GenerationItem], settings: GenerationSettings
) -> np.ndarray:
    """Images of ``batch`` as (B, H, W, 3) uint8; one CPU generator per image seeds its noise."""
    generators = [torch.Generator("cpu").manual_seed(item.seed) for item in batch]
    with torch.inference_mode():
        images = pipe(
            prompt=[item.prompt for item in batch],
            height=settings.height,
            width=settings.width,
            num_inference_steps=settings.steps,
            guidance_scale=settings.guidance,
            generator=generators,
            output_type="np",
        ).images
    bad = [item.file_name for item, image in zip(batch, images) if not np.isfinite(image).all()]
    if bad:
        raise FloatingPointError(
            f"Non-finite pixels in generated images {', '.join(bad)} (fp16 overflow?); "
            f"try --dtype bf16 or fp32"
        )
    return (np.clip(images, 0.0, 1.0) * 255).round().astype(np.uint8)


def generate_images(
    settings: GenerationSettings,
    load_pipe: Callable[[], StableDiffusionPipeline],
    *,
    progress: bool = True,
) -> GenerationSummary:
    """Generate the missing images of ``settings``' part; ``load_pipe`` runs only if any miss.

    Raises:
        SettingsMismatchError: if existing images were made with other settings.
    """
    items = plan_items(
        list(settings.prompts),
        num_images=settings.num_images,
        part=settings.part,
        base_seed=settings.seed,
    )
    settings.image_dir.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(settings.folder / manifest_name(settings.part))
    _remove_stale_temp_files(settings.image_dir, items)
    pending = _pending_items(settings, items, manifest)
    if pending:
        pipe = load_pipe()
        log_overlong_prompts(pipe, settings.prompts)
        bar = tqdm(
            total=len(items),
            initial=len(items) - len(pending),
            unit="img",
            desc=f"{settings.folder.name} part {settings.part}",
            disable=not progress,
            dynamic_ncols=True,
        )
        with (
            bar,
            _BackgroundWriter(manifest, max_pending=2 * settings.batch_size) as writer,
            quiet_truncation_warnings(pipe),
        ):
            for start in range(0, len(pending), settings.batch_size):
                batch = pending[start : start + settings.batch_size]
                for item, image in zip(batch, _generate_batch(pipe, batch, settings)):
                    writer.submit(image, settings.image_dir / item.file_name, settings.record(item))
                bar.update(len(batch))
    manifest.compact()
    return GenerationSummary(
        planned=len(items), skipped=len(items) - len(pending), written=len(pending)
    )
