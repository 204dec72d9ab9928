"""Element-wise expressions compiled by ``torch.compile``, where that pays and a C++ compiler is at hand.

Some computations over every (query, entity) pair are a few element-wise operations and a reduction: eagerly each
operation is one pass over a ``(B, E)`` (or ``(B, E, d)``) tensor, compiled they are one loop that keeps the
intermediate values in registers. :func:`run_compiled` runs such an expression compiled once per process (with
dynamic shapes, so other batch sizes reuse the kernel) and falls back to the caller's eager form when compiling
is switched off or fails. The users are PairRE's distance (:mod:`.distances`) and the fused decision score
(:func:`~imvia_core.model.joint.fused_logit`) in evaluation.

A compiled kernel computes the same function as the eager one up to float rounding (the tests compare them); like
every other kernel choice it is not part of a run's configuration. Rounding can still reorder two entities whose
scores differ by about 1e-6, so a kernel whose eager form produced committed results is compiled only on request:

* ``IMVIA_COMPILE_KERNELS`` unset or ``auto``: on a CPU with a C++ compiler, the kernels compiled by default
  (PairRE's distance, whose blocked eager form is 2.5 times slower);
* ``1``: every kernel, also the fused logit of IMVIA's evaluation (12% off a DB15K-size evaluation on one thread);
* ``0``: none (the eager forms everywhere).
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["COMPILE_ENV", "compile_state", "compiled_kernels", "run_compiled"]

#: environment variable: ``0`` keeps the eager forms, ``1`` compiles wherever torch can, unset or ``auto``: compile
#: on a CPU that has a C++ compiler
COMPILE_ENV = "IMVIA_COMPILE_KERNELS"

#: name -> the compiled function, or ``False`` after its compilation failed in this process
_COMPILED: dict[str, Any] = {}


def compiled_kernels(device: torch.device, *, by_default: bool = True) -> bool:
    """Whether :func:`run_compiled` compiles a kernel on ``device``: the ``IMVIA_COMPILE_KERNELS`` setting (``0``,
    ``1`` or ``auto``, the default: kernels compiled ``by_default``, on a CPU with a C++ compiler on the ``PATH``,
    where ``torch.compile`` builds its kernels)."""
    value = os.environ.get(COMPILE_ENV, "auto").strip().lower()
    if value in ("0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    return by_default and device.type == "cpu" and any(shutil.which(c) for c in ("g++", "c++", "clang++"))


def compile_state() -> dict[str, Any]:
    """What a run records of this: the setting, whether a C++ compiler is on the ``PATH``, and the kernels that
    failed to compile in this process."""
    return {
        "setting": os.environ.get(COMPILE_ENV, "auto"),
        "cxx_compiler": next((c for c in ("g++", "c++", "clang++") if shutil.which(c)), None),
        "failed": sorted(name for name, fn in _COMPILED.items() if fn is False),
    }


def run_compiled(
    name: str,
    expression: Callable[..., torch.Tensor],
    *args: Any,
    fallback: Callable[[], torch.Tensor],
    by_default: bool = True,
) -> torch.Tensor:
    """``expression(*args)`` compiled (once per process and ``name``) where :func:`compiled_kernels` says so for the
    device of the first tensor argument; otherwise ``fallback()``.

    :param by_default: compile under ``IMVIA_COMPILE_KERNELS=auto`` (``False``: only under ``1``).

    A compilation that fails (no working compiler, an unsupported platform) is reported once as a warning, and
    ``fallback`` is used for ``name`` for the rest of the process.
    """
    device = next((a.device for a in args if isinstance(a, torch.Tensor)), torch.device("cpu"))
    if not compiled_kernels(device, by_default=by_default) or _COMPILED.get(name) is False:
        return fallback()
    if name not in _COMPILED:
        _COMPILED[name] = torch.compile(expression, dynamic=True)
    try:
        return _COMPILED[name](*args)
    except Exception as error:  # noqa: BLE001 - whatever the compiler raised: the eager form instead
        _COMPILED[name] = False
        warnings.warn(
            f"torch.compile failed for {name} ({type(error).__name__}: {str(error)[:300]}); using its eager form "
            f"(set {COMPILE_ENV}=0 to skip the attempt)",
            RuntimeWarning,
            stacklevel=2,
        )
        return fallback()
