"""The C allocator's behaviour for this process: keep freed memory mapped instead of returning it to the kernel.

glibc's ``malloc`` returns large freed blocks to the kernel (``munmap``, or trimming the top of the heap), so every
training step of a model whose temporaries are ``(B, E)`` matrices maps and faults fresh pages again; the kernel's
page handling then takes a large share of the CPU time. The environment variables
``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736`` avoid that, but glibc reads them only when a process starts,
and a user running ``imvia train`` or a notebook has not set them.

:func:`tune_allocator` sets the same behaviour from inside the process with ``mallopt`` (through :mod:`ctypes`):

* ``M_MMAP_MAX = 0``: no allocation is served by its own ``mmap``; large blocks come from the heap and are reused;
* ``M_TRIM_THRESHOLD = -1``: the top of the heap is never trimmed (``mallopt(3)``: "-1 disables trimming
  completely"; ``mallopt`` takes an ``int``, so the 64 GiB of the environment variable cannot be passed, and a
  threshold that is never reached is what that value meant).

Both also switch off glibc's dynamic mmap threshold, as the environment variables do. Allocations made before the
call keep their kind; everything allocated afterwards follows the new rules. Every entry point calls it once:
the command line (:func:`imvia_core.cli.main`), a notebook kernel (on ``import imvia_core``), the notebooks' runner and
the benchmark. The state is kept in this module and recorded in each run's ``results.json`` under
``hardware.allocator`` (:func:`allocator_state`).

On a C library other than glibc (musl, macOS, Windows) it does nothing and records why. ``IMVIA_MALLOC_TUNE=0`` in
the environment turns it off (to measure the difference, or when another allocator is preloaded).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
from typing import Any

__all__ = ["tune_allocator", "allocator_state", "ALLOCATOR_ENV", "MALLOPT_SETTINGS", "OPT_OUT_ENV"]

#: the environment variables with the same effect, read by glibc at process start (``make bench`` sets them)
ALLOCATOR_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "68719476736"}
#: ``mallopt`` parameters (glibc's ``malloc.h``) and the values set: name -> (parameter number, value)
MALLOPT_SETTINGS: dict[str, tuple[int, int]] = {"M_MMAP_MAX": (-4, 0), "M_TRIM_THRESHOLD": (-1, -1)}
#: set to 0 to leave the allocator alone
OPT_OUT_ENV = "IMVIA_MALLOC_TUNE"

_STATE: dict[str, Any] | None = None


def _glibc() -> tuple[ctypes.CDLL | None, str | None]:
    """This process's C library if it is glibc (with ``mallopt``), and its version."""
    try:
        libc = ctypes.CDLL(None)
        version = libc.gnu_get_libc_version  # glibc only
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None, None
    version.restype = ctypes.c_char_p
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return libc, version().decode("ascii", "replace")


def _environment() -> dict[str, str]:
    return {k: os.environ[k] for k in (*ALLOCATOR_ENV, "LD_PRELOAD", OPT_OUT_ENV) if k in os.environ}


def tune_allocator(*, force: bool = False) -> dict[str, Any]:
    """Keep freed memory mapped (glibc ``mallopt``, see the module docstring); once per process. Returns the record.

    :param force: apply again even if an earlier call did (tests), still respecting ``IMVIA_MALLOC_TUNE=0``.
    """
    global _STATE
    if _STATE is not None and not force:
        return _STATE
    state: dict[str, Any] = {"tuned": False, "method": None, "environment": _environment()}
    if os.environ.get(OPT_OUT_ENV, "").strip() in ("0", "false", "no", "off"):
        state["reason"] = f"{OPT_OUT_ENV}=0 in the environment"
    else:
        libc, version = _glibc()
        if libc is None:
            state["library"] = platform.libc_ver()[0] or platform.system()
            state["reason"] = "not glibc: mallopt is not available, the allocator is left as it is"
        else:
            state["library"] = f"glibc {version}"
            applied = {name: int(libc.mallopt(param, value)) == 1 for name, (param, value) in MALLOPT_SETTINGS.items()}
            state["settings"] = {name: value for name, (_, value) in MALLOPT_SETTINGS.items()}
            state["applied"] = applied
            state["tuned"] = all(applied.values())
            state["method"] = "mallopt"
            if not state["tuned"]:
                state["reason"] = "mallopt refused " + ", ".join(k for k, ok in applied.items() if not ok)
    if not state["tuned"] and _tuned_by_environment(state["environment"]):
        state.update(tuned=True, method="environment")
    _STATE = state
    return state


def _tuned_by_environment(env: dict[str, str]) -> bool:
    """Whether the variables glibc read at start keep freed memory mapped (or a caching allocator is preloaded)."""
    preload = env.get("LD_PRELOAD", "")
    caching = any(name in preload for name in ("jemalloc", "tcmalloc", "mimalloc"))
    return caching or (env.get("MALLOC_MMAP_MAX_") == "0" and "MALLOC_TRIM_THRESHOLD_" in env)


def allocator_state() -> dict[str, Any]:
    """What :func:`tune_allocator` did in this process (``tuned``, ``method``, ``library``, ``settings`` and the
    allocator variables of the environment), or, before any call, ``{"tuned": False, "method": None, ...}`` with the
    environment variables that may tune glibc from the start."""
    if _STATE is not None:
        return {**_STATE, "environment": _environment()}
    env = _environment()
    from_env = _tuned_by_environment(env)
    return {"tuned": from_env, "method": "environment" if from_env else None, "environment": env}
