"""Shared helpers of the benchmark scripts: timing, peak memory, machine facts, table and JSON.

Timing: ``warmup`` untimed calls per compared call (they absorb torch.compile, oneDNN primitive
creation and cuDNN autotuning; the last of them also measures peak memory), then ``repeats``
timed calls, interleaved round-robin between the compared calls so that load changes on a
shared machine hit all of them alike; on CUDA every call is followed by
``torch.cuda.synchronize``. Reported: the median of the repeats and, because other jobs on
a shared machine only ever add time, the best repeat.

Peak memory (what is measured, per device), over one untimed call after the warm-up:
- CUDA: ``torch.cuda.max_memory_allocated`` during the call, minus the memory allocated
  before it (model weights and inputs excluded): the tensors the call itself creates.
- CPU: the growth of the process's resident set during the call: the kernel's peak
  resident size ``VmHWM`` (reset through ``/proc/self/clear_refs``) minus the resident size
  before the call. For that call glibc's mmap threshold is pinned to 128 KiB, so large freed
  tensors go back to the OS and do not hide later allocations; the timed calls run with a
  32 MiB threshold (glibc's largest automatic one). It counts everything the process touches
  (allocator slack, oneDNN scratch buffers), so it is an upper bound of tensor memory.
  Where ``/proc`` is unavailable the value is None.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from clouds.utils.io import atomic_path

__all__ = [
    "Measurement",
    "command_line",
    "machine_info",
    "markdown_table",
    "measure",
    "resolve_device",
    "resolve_dtype",
    "write_json",
]

_M_MMAP_THRESHOLD = -3  # glibc mallopt parameter number
_MEASURE_MMAP_THRESHOLD = 128 * 1024  # while measuring CPU memory
_TIMING_MMAP_THRESHOLD = 32 * 2**20  # while timing: glibc's largest automatic threshold
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Measurement:
    """Timed repeats of one call and its peak memory."""

    seconds: list[float] = field(default_factory=list)
    peak_memory_bytes: int | None = None

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)

    @property
    def best_s(self) -> float:
        """The fastest repeat: on a shared machine other jobs only ever add time."""
        return min(self.seconds)

    def per_second(self, items_per_call: int) -> float:
        """Throughput: items (images) per second at the median time."""
        return items_per_call / self.median_s

    def best_per_second(self, items_per_call: int) -> float:
        """Throughput at the fastest repeat."""
        return items_per_call / self.best_s

    def to_dict(self, items_per_call: int) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "median_s": self.median_s,
            "best_s": self.best_s,
            "items_per_s": self.per_second(items_per_call),
            "best_items_per_s": self.best_per_second(items_per_call),
            "peak_memory_mib": _mib(self.peak_memory_bytes),
        }


def _mib(num_bytes: int | None) -> float | None:
    return None if num_bytes is None else num_bytes / 2**20


def resolve_device(name: str) -> torch.device:
    """ "auto" -> cuda when available else cpu; otherwise the named device (checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name!r}: CUDA is not available on this machine")
    return device


def resolve_dtype(name: str) -> torch.dtype:
    """Command-line dtype name (fp32, bf16, fp16) -> torch dtype."""
    if name not in _DTYPES:
        raise ValueError(f"--dtype must be one of {', '.join(_DTYPES)}, got {name!r}")
    return _DTYPES[name]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _set_mmap_threshold(num_bytes: int) -> None:
    """Make glibc serve (and return) allocations above ``num_bytes`` with mmap; no-op elsewhere."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name or platform.system() != "Linux":
        return
    libc = ctypes.CDLL(libc_name)
    if hasattr(libc, "mallopt"):
        libc.mallopt(_M_MMAP_THRESHOLD, num_bytes)
    if hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def _status_kib(field_name: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_cpu_peak() -> int | None:
    """Reset the kernel's peak RSS; the current RSS in bytes (None when not measurable)."""
    _set_mmap_threshold(_MEASURE_MMAP_THRESHOLD)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    rss = _status_kib("VmRSS")
    return None if rss is None else rss * 1024


def _cpu_peak_since(baseline: int | None) -> int | None:
    hwm = _status_kib("VmHWM")
    if baseline is None or hwm is None:
        return None
    return max(hwm * 1024 - baseline, 0)


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def _peak_of_call(fn: Callable[[], object], device: torch.device) -> int | None:
    """The memory one call of ``fn`` needed on top of what was allocated before it."""
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        baseline = torch.cuda.memory_allocated(device)
        fn()
        _sync(device)
        return torch.cuda.max_memory_allocated(device) - baseline
    baseline = _reset_cpu_peak()
    fn()
    peak = _cpu_peak_since(baseline)
    _set_mmap_threshold(_TIMING_MMAP_THRESHOLD)
    return peak


def measure(
    fns: dict[str, Callable[[], object]], *, device: torch.device, warmup: int, repeats: int
) -> dict[str, Measurement]:
    """Time several calls fairly on a shared machine (see the module docstring).

    Each call gets ``warmup`` untimed runs, the last of which measures its peak memory (with
    ``warmup=0`` one extra untimed run does); then ``repeats`` timed runs are interleaved
    round-robin over the calls.
    """
    if repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {repeats}")
    results = {name: Measurement() for name in fns}
    for name, fn in fns.items():
        for _ in range(warmup - 1):
            fn()
        results[name].peak_memory_bytes = _peak_of_call(fn, device)
    for _ in range(repeats):
        for name, fn in fns.items():
            results[name].seconds.append(_timed(fn, device))
    return results


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine_info(device: torch.device) -> dict[str, Any]:
    """Facts needed to compare runs: CPU model and cores, GPU, library versions, load, date."""
    info: dict[str, Any] = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
    }
    if hasattr(os, "getloadavg"):
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def command_line() -> str:
    """The command that started this process, shell-quoted (``python -m module`` when so run)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    program = f"-m {spec.name}" if spec is not None and spec.name else shlex.quote(sys.argv[0])
    return " ".join(["python", program, *(shlex.quote(a) for a in sys.argv[1:])])


def _cell(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A GitHub Markdown table of ``rows`` with the given ``columns`` (missing cells: n/a)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def write_json(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as indented JSON, atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(payload, indent=2) + "\n")


def comparison_rows(
    results: dict[str, Measurement],
    *,
    items_per_call: int,
    dtype: str,
    fast_label: str,
    time_column: tuple[str, Callable[[Measurement], float]],
) -> list[dict[str, Any]]:
    """One table row per measured model, with its speed relative to the "peer" row.

    Args:
        results: measurements by model name; must hold "peer".
        items_per_call: images per timed call (the batch).
        dtype: the dtype name shown in every row.
        fast_label: fast paths of the "ours (fast)" row ("-" on the others).
        time_column: (column name, milliseconds of a measurement), e.g. per image or per step.
    """
    peer_rate = results["peer"].per_second(items_per_call)
    peer_best = results["peer"].best_per_second(items_per_call)
    time_name, time_ms = time_column
    rows = []
    for name, m in results.items():
        rate = m.per_second(items_per_call)
        rows.append(
            {
                "model": name,
                "dtype": dtype,
                "fast_paths": fast_label if name == "ours (fast)" else "-",
                "images_per_s": rate,
                time_name: time_ms(m),
                "peak_MiB": m.to_dict(items_per_call)["peak_memory_mib"],
                "vs_peer": rate / peer_rate,
                "best_images_per_s": m.best_per_second(items_per_call),
                "vs_peer_best": m.best_per_second(items_per_call) / peer_best,
                "seconds": m.seconds,
            }
        )
    return rows


def publish(
    benchmark: str,
    *,
    device: torch.device,
    settings: dict[str, Any],
    rows: list[dict[str, Any]],
    columns: Sequence[str],
    json_path: str | Path,
) -> dict[str, Any]:
    """Print the Markdown table of ``rows`` and write the JSON payload; returns the payload."""
    table = markdown_table(rows, columns)
    payload = {
        "benchmark": benchmark,
        "command": command_line(),
        "machine": machine_info(device),
        "settings": settings,
        "rows": rows,
        "table": table,
    }
    print(table)
    write_json(json_path, payload)
    return payload
