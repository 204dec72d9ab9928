"""Small helpers shared by the model modules (masked softmax, float32 regions, config checks)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import torch

from imvia_core.errors import ConfigError

__all__ = ["masked_softmax", "float32_region", "upcast", "check_probability", "check_positive", "rows_present"]


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor, *, dim: int = -1) -> torch.Tensor:
    """Softmax over the entries where ``mask`` is ``True``; zero elsewhere.

    A slice with no ``True`` entry gets all-zero weights (never NaN), and its gradient is zero.

    :param logits: any shape.
    :param mask: bool, broadcastable to ``logits``.
    :param dim: the dimension to normalise over.
    :return: same shape as ``logits``.
    """
    mask = mask.expand_as(logits)
    any_valid = mask.any(dim=dim, keepdim=True)
    # slices with no valid entry: replace by zeros so the softmax is finite, then zero the result
    safe = torch.where(mask, logits, torch.full_like(logits, float("-inf")))
    safe = torch.where(any_valid, safe, torch.zeros_like(logits))
    return torch.softmax(safe, dim=dim) * mask.to(logits.dtype)


@contextlib.contextmanager
def float32_region(device: torch.device | str) -> Iterator[None]:
    """Disable autocast inside the block so that losses and similarity computations run in float32.

    Tensors entering the block must be cast with ``.float()`` by the caller.
    """
    device_type = torch.device(device).type
    with torch.autocast(device_type=device_type, enabled=False):
        yield


def upcast(x: torch.Tensor) -> torch.Tensor:
    """Cast half/bfloat16 tensors to float32; float32 and float64 stay as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def check_probability(name: str, value: float, *, allow_one: bool = False) -> None:
    """Raise :class:`~imvia_core.errors.ConfigError` unless ``0 <= value < 1`` (or ``<= 1``)."""
    upper_ok = value <= 1.0 if allow_one else value < 1.0
    if not (0.0 <= value and upper_ok):
        bound = "[0, 1]" if allow_one else "[0, 1)"
        raise ConfigError(f"model config {name}: found {value!r}; expected a number in {bound}")


def check_positive(name: str, value: float) -> None:
    """Raise :class:`~imvia_core.errors.ConfigError` unless ``value > 0``."""
    if not value > 0:
        raise ConfigError(f"model config {name}: found {value!r}; expected a positive number")


def rows_present(present: Mapping[str, torch.Tensor] | None, names: tuple[str, str]) -> torch.Tensor | None:
    """``(N,)`` bool: rows where every modality of ``names`` is present, or ``None`` when none of them has a mask
    (a modality without an entry in ``present`` is present for every row; no tensor work, so no host sync)."""
    masks = [present[name] for name in names if present is not None and name in present]
    if not masks:
        return None
    return masks[0] if len(masks) == 1 else masks[0] & masks[1]
