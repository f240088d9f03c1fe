"""Scanning every image and label of the configured datasets once, before a long run.

A bad file otherwise surfaces when the loader reaches it, hours into a run. The scan decodes
every image and label map of DATASETS.TRAIN (and DATASETS.TEST), checks that a label has its
image's size, one channel, and only class ids below MODEL.SEM_SEG_HEAD.NUM_CLASSES or the
ignore label (the rule the mappers apply), and reports every bad file, one line each, with
its dataset.

Results are cached per file (path, size and modification time of the image and its label),
so a second scan reads only what changed. The cache (one JSON file per dataset under
``$CLOUDS_CACHE_DIR``, default ``$XDG_CACHE_HOME/clouds`` or ``~/.cache/clouds``) is written
atomically every few hundred files, so an interrupted scan resumes where it stopped.

``train_net.py --check-data`` and ``tools/check_data.py`` run it; ``train_net.py`` also runs
it before a training of at least DATALOADER.CHECK_DATA_MIN_ITER iterations unless
DATALOADER.CHECK_DATA is False.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from clouds.config import CfgNode
from clouds.data.catalog import DatasetCatalog, MetadataCatalog
from clouds.data.datasets.loading import DatasetNotFoundError, listing_unreadable_images
from clouds.utils.io import ImageReadError, atomic_path, image_read_errors, read_label

__all__ = [
    "BadFile",
    "DataCheckError",
    "LabelRule",
    "cache_dir",
    "check_config_data",
    "check_dataset",
    "data_check_wanted",
]

_CACHE_VERSION = 1
_SAVE_EVERY = 256  # files between two writes of the cache
_CHUNK = 64  # files handed to the worker threads at a time


class DataCheckError(ValueError):
    """Bad files in the configured datasets; the message lists each on its own line."""

    def __str__(self) -> str:
        return self.args[0]


@dataclass(frozen=True)
class LabelRule:
    """Which label values a dataset may hold: class ids below ``num_classes``, and
    ``ignore_label``."""

    num_classes: int
    ignore_label: int


@dataclass(frozen=True)
class BadFile:
    """A record whose image or label cannot be used; ``problem`` names the file."""

    dataset: str
    problem: str

    def line(self) -> str:
        return f"{self.dataset}: {self.problem}"


def cache_dir() -> Path:
    """Where the per-dataset caches live: ``$CLOUDS_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/clouds``, else ``~/.cache/clouds``; then ``data_check/``."""
    root = os.environ.get("CLOUDS_CACHE_DIR")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(xdg, "clouds")
    return Path(root) / "data_check"


def _stamp(path: str) -> list[int]:
    """[size, mtime in ns] of ``path``, [-1, -1] when it is missing."""
    try:
        st = os.stat(path)
    except OSError:
        return [-1, -1]
    return [st.st_size, st.st_mtime_ns]


def _check_record(record: dict, rule: LabelRule) -> str | None:
    """Why the image / label pair of ``record`` cannot be used (None when it can)."""
    image = record["file_name"]
    try:
        with image_read_errors(image), Image.open(image) as img:
            img.load()
            width, height = img.size
    except ImageReadError as e:
        return str(e)
    label = record.get("sem_seg_file_name")
    if not label:
        return None
    try:
        read_label(
            label,
            (height, width),
            num_classes=rule.num_classes,
            ignore_label=rule.ignore_label,
        )
    except ImageReadError as e:
        return str(e)
    return None


class _Cache:
    """The per-file results of one dataset under one label rule, saved atomically."""

    def __init__(self, name: str, rule: LabelRule) -> None:
        digest = hashlib.sha1(f"{name}|{rule}".encode()).hexdigest()[:10]
        self.path = cache_dir() / f"{name}-{digest}.json"
        self.header = {"version": _CACHE_VERSION, "dataset": name, "rule": str(rule)}
        self.entries: dict[str, list] = {}
        with contextlib.suppress(OSError, ValueError):
            saved = json.loads(self.path.read_text())
            if all(saved.get(k) == v for k, v in self.header.items()):
                self.entries = dict(saved["files"])

    def lookup(self, key: str, stamp: list[int]) -> tuple[bool, str | None]:
        """(known, problem) of a file whose stamps are ``stamp``."""
        entry = self.entries.get(key)
        if entry is None or entry[0] != stamp:
            return False, None
        return True, entry[1]

    def store(self, key: str, stamp: list[int], problem: str | None) -> None:
        self.entries[key] = [stamp, problem]

    def save(self) -> None:
        """Write the cache atomically (a cache that cannot be written only costs a rescan)."""
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.path) as tmp, open(tmp, "w") as f:
                json.dump({**self.header, "files": self.entries}, f)


def _progress(name: str, total: int) -> Callable[[int], None]:
    """Report ``done`` of ``total`` records on stderr: a bar on a terminal, else a line every
    30 seconds."""
    interactive = sys.stderr.isatty()
    last = [0.0]

    def report(done: int) -> None:
        now = time.monotonic()
        final = done == total
        if not final and now - last[0] < (0.5 if interactive else 30.0):
            return
        last[0] = now
        end = "\n" if final or not interactive else ""
        prefix = "\r" if interactive else ""
        sys.stderr.write(f"{prefix}check-data: {name}: {done}/{total} files checked{end}")
        sys.stderr.flush()

    return report


def check_dataset(
    name: str, rule: LabelRule, *, workers: int = 4, progress: bool = True
) -> tuple[int, list[BadFile]]:
    """Decode every image and label of the registered dataset ``name``; returns the number of
    records and the bad files.

    Args:
        rule: the label values allowed.
        workers: threads decoding files.
        progress: report progress on stderr.
    """
    with listing_unreadable_images():
        records = DatasetCatalog.get(name)
    cache = _Cache(name, rule)
    report = _progress(name, len(records)) if progress else (lambda done: None)
    bad: list[BadFile] = []
    done = 0

    def stamped(record: dict) -> tuple[str, list[int]]:
        files = [record["file_name"], record.get("sem_seg_file_name") or ""]
        return "|".join(files), [*_stamp(files[0]), *(_stamp(files[1]) if files[1] else [])]

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for start in range(0, len(records), _CHUNK):
            chunk = records[start : start + _CHUNK]
            todo: list[tuple[str, list[int], dict]] = []
            for record in chunk:
                key, stamp = stamped(record)
                known, problem = cache.lookup(key, stamp)
                if known:
                    if problem:
                        bad.append(BadFile(name, problem))
                else:
                    todo.append((key, stamp, record))
            for (key, stamp, _), problem in zip(
                todo, pool.map(lambda t: _check_record(t[2], rule), todo), strict=True
            ):
                cache.store(key, stamp, problem)
                if problem:
                    bad.append(BadFile(name, problem))
            if todo and (start // _CHUNK) % max(1, _SAVE_EVERY // _CHUNK) == 0:
                cache.save()
            done += len(chunk)
            report(done)
    cache.save()
    if not records:
        report(0)
    return len(records), bad


def _datasets(cfg: CfgNode, eval_only: bool) -> list[str]:
    names = [] if eval_only else list(cfg.DATASETS.TRAIN)
    return list(dict.fromkeys([*names, *cfg.DATASETS.TEST]))


def _rule(cfg: CfgNode, name: str) -> LabelRule:
    ignore = MetadataCatalog.get(name).get("ignore_label", cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE)
    return LabelRule(cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES, int(ignore))


def check_config_data(
    cfg: CfgNode, *, eval_only: bool = False, progress: bool = True, workers: int | None = None
) -> int:
    """Scan the datasets ``cfg`` reads (DATASETS.TRAIN unless ``eval_only``, DATASETS.TEST);
    returns the number of records scanned.

    Raises:
        DataCheckError: one line per bad file (``<dataset>: <problem naming the file>``), and
            per dataset that cannot be listed (a missing folder or label file).
    """
    threads = workers or min(8, os.cpu_count() or 1)
    bad: list[BadFile] = []
    total = 0
    for name in _datasets(cfg, eval_only):
        try:
            count, found = check_dataset(name, _rule(cfg, name), workers=threads, progress=progress)
        except DatasetNotFoundError as e:  # a folder or label missing: listed with the others
            count, found = 0, [BadFile(name, str(e))]
        total += count
        bad += found
    if bad:
        lines = "\n".join(b.line() for b in bad)
        raise DataCheckError(
            f"{len(bad)} problem(s) in the datasets of this config (fix or remove the files, "
            f"then run again; good files are not read twice):\n{lines}"
        )
    return total


def data_check_wanted(cfg: CfgNode) -> bool:
    """Whether ``train_net.py`` scans the data before training: DATALOADER.CHECK_DATA on and
    SOLVER.MAX_ITER at least DATALOADER.CHECK_DATA_MIN_ITER."""
    return bool(cfg.DATALOADER.CHECK_DATA) and (
        cfg.SOLVER.MAX_ITER >= cfg.DATALOADER.CHECK_DATA_MIN_ITER
    )
