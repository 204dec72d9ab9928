"""The allocator tuning of every entry point (``imvia_core.allocator``): applied, effective, recorded, opt-out."""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys

import pytest

from imvia_core import allocator
from imvia_core.allocator import allocator_state, tune_allocator

_GLIBC = allocator._glibc()[0] is not None
glibc_only = pytest.mark.skipif(not _GLIBC, reason="mallopt is glibc's")


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


def _mmapped_blocks_during_large_malloc() -> int:
    """How many more mmapped blocks glibc holds while a 64 MiB block (far above the default mmap threshold) lives."""
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _Mallinfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    before = libc.mallinfo2().hblks
    block = libc.malloc(64 << 20)
    try:
        return int(libc.mallinfo2().hblks) - int(before)
    finally:
        libc.free(block)


@glibc_only
def test_tuning_is_applied_and_takes_effect() -> None:
    state = tune_allocator(force=True)
    assert state["tuned"] and state["method"] == "mallopt" and state["library"].startswith("glibc")
    assert state["applied"] == {"M_MMAP_MAX": True, "M_TRIM_THRESHOLD": True}
    assert state["settings"] == {"M_MMAP_MAX": 0, "M_TRIM_THRESHOLD": -1}
    assert _mmapped_blocks_during_large_malloc() == 0  # untuned glibc serves this block with its own mmap
    assert allocator_state()["tuned"]


def test_opt_out_and_other_libraries_leave_it_alone(monkeypatch) -> None:
    monkeypatch.setenv("IMVIA_MALLOC_TUNE", "0")
    for name in ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "LD_PRELOAD"):
        monkeypatch.delenv(name, raising=False)
    state = tune_allocator(force=True)
    assert not state["tuned"] and "IMVIA_MALLOC_TUNE=0" in state["reason"]
    monkeypatch.delenv("IMVIA_MALLOC_TUNE")
    monkeypatch.setattr(allocator, "_glibc", lambda: (None, None))
    state = tune_allocator(force=True)
    assert not state["tuned"] and state["method"] is None and "not glibc" in state["reason"]
    # the variables glibc read at start count as tuned, and say so
    monkeypatch.setenv("MALLOC_MMAP_MAX_", "0")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "68719476736")
    state = tune_allocator(force=True)
    assert state["tuned"] and state["method"] == "environment"
    monkeypatch.undo()
    tune_allocator(force=True)


@glibc_only
def test_the_command_line_tunes_it_and_runs_record_it(capsys) -> None:
    import torch

    from imvia_core.cli import main
    from imvia_core.training.trainer import describe_hardware

    allocator._STATE = None  # as in a fresh process
    assert main([]) == 2  # no command: help, but every command passes here first
    assert allocator._STATE is not None and allocator._STATE["method"] == "mallopt"
    record = describe_hardware(torch.device("cpu"))["allocator"]  # results.json's "hardware"
    assert record["tuned"] and record["method"] == "mallopt" and record["settings"]["M_MMAP_MAX"] == 0
    json.dumps(record)


@glibc_only
def test_a_notebook_kernel_is_tuned_on_import() -> None:
    """``import imvia_core`` in a Jupyter kernel tunes it; in a plain interpreter (a library user) it does not."""
    code = (
        "import json, sys\n"
        "{kernel}\n"
        "import imvia_core\n"
        "from imvia_core.allocator import allocator_state\n"
        "print(json.dumps(allocator_state()))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    for kernel, expected in (("import ipykernel", "mallopt"), ("", None)):
        out = subprocess.run(
            [sys.executable, "-c", code.format(kernel=kernel)], capture_output=True, text=True, check=True, env=env
        )
        assert json.loads(out.stdout)["method"] == expected, out.stderr
