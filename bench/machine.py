"""The machine and its memory: CPU, cores, git state, allocator settings, RSS and C-heap probes."""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import resource
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from imvia_core.allocator import ALLOCATOR_ENV, allocator_state
from imvia_core.model.kernels.compiled import compile_state

__all__ = [
    "HeapSampler",
    "allocator_settings",
    "autocast",
    "current_rss",
    "describe_machine",
    "git_state",
    "measure_memory",
    "peak_rss",
    "reset_peak_rss",
    "sync",
]


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def git_state() -> dict[str, Any]:
    root = Path(__file__).resolve().parents[1]
    state: dict[str, Any] = {"commit": None, "dirty": None}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        state["commit"] = out.stdout.strip() or None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        )
        if status.returncode == 0:
            state["dirty"] = bool(status.stdout.strip())
    return state


def allocator_settings() -> dict[str, Any]:
    """How this process's allocator keeps freed memory (see ``bench/README.md`` and :mod:`imvia_core.allocator`).

    ``tuned``: freed memory stays mapped, through ``mallopt`` in the process (``method: "mallopt"``), the variables
    set before it started (``"environment"``) or a preloaded caching allocator; ``env``: those variables.
    """
    state = allocator_state()
    env = {k: os.environ.get(k) for k in (*ALLOCATOR_ENV, "LD_PRELOAD")}
    return {**state, "env": env}


def describe_machine(device: torch.device) -> dict[str, Any]:
    """CPU model, cores, torch version and threads (and the GPU on CUDA)."""
    info: dict[str, Any] = {
        "device": str(device),
        "cpu": _cpu_name(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "compiled_kernels": compile_state(),
    }
    with contextlib.suppress(OSError, ValueError):
        mem = Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0]
        info["memory_bytes"] = int(mem) * 1024
    if device.type == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def _status_kib(field_name: str) -> int | None:
    with contextlib.suppress(OSError, IndexError, ValueError):
        text = Path("/proc/self/status").read_text()
        return int(text.split(f"{field_name}:")[1].split()[0])
    return None


def current_rss() -> int:
    """Resident set size now, in bytes (0 where ``/proc`` is not there)."""
    kib = _status_kib("VmRSS")
    return kib * 1024 if kib is not None else 0


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS; ``False`` where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss() -> int:
    """Peak resident set size since the last :func:`reset_peak_rss` (or since start), in bytes."""
    kib = _status_kib("VmHWM")
    if kib is not None:
        return kib * 1024
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB on Linux
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


def _load_mallinfo2() -> Callable[[], int] | None:
    """``() -> bytes in use by the C heap`` through glibc's ``mallinfo2``, or ``None`` elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        fn = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2

    def in_use() -> int:
        info = fn()
        return int(info.uordblks + info.hblkhd)

    return in_use


_HEAP_IN_USE = _load_mallinfo2()


class HeapSampler:
    """Peak bytes in use by the C heap (what tensors hold, without the memory the allocator keeps for reuse).

    A background thread reads glibc's ``mallinfo2`` every ``interval`` seconds; torch releases the interpreter lock
    inside its kernels, so the samples land during the work. ``available`` is ``False`` off glibc.
    """

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.available = _HEAP_IN_USE is not None
        self.start_bytes = 0
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, _HEAP_IN_USE())
            self._stop.wait(self.interval)

    def __enter__(self) -> HeapSampler:
        if self.available:
            self.start_bytes = self.peak_bytes = _HEAP_IN_USE()
            self._thread = threading.Thread(target=self._run, name="heap-sampler", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.peak_bytes = max(self.peak_bytes, _HEAP_IN_USE())


@contextlib.contextmanager
def measure_memory(device: torch.device, into: dict[str, Any]) -> Iterator[None]:
    """Peak host RSS, peak C-heap use and (on CUDA) peak device memory of the block, stored in ``into``.

    ``rss_peak_bytes`` is the block's own peak where ``/proc/self/clear_refs`` allows a reset; with an allocator that
    keeps freed memory (``bench/README.md``) it cannot fall below the RSS at the block's start. ``heap_*`` count the
    bytes actually allocated at the start of the block and at the peak; ``cuda_*`` the same for device memory.
    """
    into["rss_peak_is_phase_local"] = reset_peak_rss()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        into["cuda_start_bytes"] = int(torch.cuda.memory_allocated(device))
    sampler = HeapSampler()
    try:
        with sampler:
            yield
    finally:
        into["rss_peak_bytes"] = peak_rss()
        if sampler.available:
            into["heap_start_bytes"] = sampler.start_bytes
            into["heap_peak_bytes"] = sampler.peak_bytes
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            into["cuda_peak_bytes"] = int(torch.cuda.max_memory_allocated(device))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, dtype: torch.dtype):
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
