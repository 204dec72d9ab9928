"""Training precision: float32, or bfloat16 autocast for the forward GEMMs on devices that have fast bf16.

``TrainConfig.precision`` is ``"fp32"`` (the default) or ``"bf16"``. With ``"bf16"`` the trainer runs the forward
passes of training under ``torch.autocast(dtype=torch.bfloat16)``: the matrix products of the fusion projections,
the experts, the Tucker core contractions and the scoring GEMMs inside the fused 1-N loss take bf16 inputs; the
losses (the fused 1-N BCE accumulates in float32 or float64), the softmaxes, the similarity computations and the
optimiser states stay float32, and so do the parameters.

Evaluation always scores in float32 (``imvia_core.evaluation.evaluate`` turns autocast off): ranks compare scores,
and bf16 keeps 8 significant bits, so rounded scores tie many candidates. bf16 GEMM inputs with float32 outputs
would avoid the ties, but torch 2.14 on a CPU has no such kernel (``torch.mm(a, b, out_dtype=torch.float32)``
raises ``NotImplementedError`` for the CPU backend, and ``out=`` must have the inputs' dtype), and even then the
ranks would differ from the float32 ones through the rounded inputs.

On a CPU, bf16 pays only where the instruction set has it: AVX-512-BF16 or AMX. :func:`cpu_bf16_support` asks torch
and falls back to the flags in ``/proc/cpuinfo``; it never assumes.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from imvia_core.errors import ConfigError

__all__ = ["PRECISIONS", "cpu_bf16_support", "training_autocast", "check_precision"]

#: values of ``TrainConfig.precision``
PRECISIONS = ("fp32", "bf16")
_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_bf16_support() -> tuple[bool, str]:
    """Whether this CPU runs bf16 matrix products natively, and how that was found (``(False, why)`` otherwise)."""
    found = []
    for name, label in (("_is_avx512_bf16_supported", "AVX-512-BF16"), ("_is_amx_tile_supported", "AMX")):
        probe = getattr(torch.cpu, name, None)
        if probe is not None:
            with contextlib.suppress(Exception):
                if probe():
                    found.append(label)
    if found:
        return True, f"{' and '.join(found)} (torch.cpu)"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                have = [f for f in _CPU_FLAGS if f in flags]
                if have:
                    return True, f"{', '.join(have)} (/proc/cpuinfo)"
                return False, "neither avx512_bf16 nor amx_bf16 in /proc/cpuinfo"
    return False, "no bf16 capability reported by torch, and no /proc/cpuinfo to read"


def check_precision(precision: str, device: torch.device) -> None:
    """Raise :class:`~imvia_core.errors.ConfigError` when ``precision`` cannot run on ``device``."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "bf16" and device.type == "cpu":
        ok, why = cpu_bf16_support()
        if not ok:
            raise ConfigError(f"precision bf16 needs a CPU with AVX-512-BF16 or AMX ({why}); use --precision fp32")


def training_autocast(precision: str, device: torch.device, *, amp: bool = False):
    """The autocast context of the training forward passes (a null context in float32).

    :param amp: the older CUDA switch (``TrainConfig.amp``): bf16 autocast on CUDA whatever ``precision`` says.
    """
    if device.type == "cuda" and (amp or precision == "bf16"):
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    if device.type == "cpu" and precision == "bf16":
        return torch.autocast(device_type="cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()
