"""The 1-N distances of RotatE and PairRE: a sum over dimensions for every (query, entity) pair, not a matmul.

``D[b, e] = sum_i |x_bi - y_ei|``-like distances need ``B x E x k`` element-wise work. Computed naively that is a
``(B, E, k)`` tensor (a gigabyte at MKG-Y size) kept for the backward pass; here it is never materialised:

* :func:`rotate_distance`: ``sum_i |a_i - t_i|`` over complex components, in cache-sized blocks with a
  closed-form backward pass that recomputes each block (:class:`_RotateDistance`).
* :func:`pair_distance`: ``sum_i |a_i - s_i t_i|``. On a CPU with a C++ compiler it is the plain broadcast
  expression (:func:`pair_distance_reference`) compiled by ``torch.compile``, whose generated loops reduce over
  ``i`` without the ``(B, E, k)`` tensor in the forward pass and in both reductions of the backward pass: at MKG-Y
  size (128 queries, 15000 entities, dim 128) a forward and backward pass took 0.14 s against 0.36 s blocked on one
  thread of the development CPU, and an evaluation batch of 1024 queries 0.10 s against 0.86 s. Elsewhere, or
  when compiling fails, the blocked function :class:`_PairDistance` (:mod:`.compiled`).

Both blocked functions give the same values and gradients as the naive expression (the tests check values,
gradients and ``gradcheck`` in float64). Which path runs is an execution choice, not a hyperparameter:
``IMVIA_COMPILE_KERNELS=0`` keeps the blocked path everywhere (:func:`~.compiled.compiled_kernels`).
"""

from __future__ import annotations

import torch

from imvia_core.model.kernels.compiled import run_compiled

__all__ = [
    "pair_distance",
    "pair_distance_reference",
    "rotate_distance",
]

_EPS = 1e-12


def _blocks(n: int, size: int) -> list[tuple[int, int]]:
    return [(i, min(n, i + size)) for i in range(0, n, size)]


class _RotateDistance(torch.autograd.Function):
    """``D[b, e] = sum_i |a_bi - t_ei|`` over complex components, in cache-sized blocks, with a hand-written
    backward (``dD/da_bi = (a_bi - t_ei) / |a_bi - t_ei|``) so no ``(B, E, k)`` tensor and no autograd graph per
    block is kept."""

    @staticmethod
    def forward(ctx, a_re, a_im, t_re, t_im, block_elements):  # type: ignore[override]
        b, k = a_re.shape
        rows = min(b, 32)
        cols = max(1, block_elements // (rows * k))
        out = a_re.new_empty(b, t_re.shape[0])
        for r0, r1 in _blocks(b, rows):
            for c0, c1 in _blocks(t_re.shape[0], cols):
                d_re = a_re[r0:r1, None] - t_re[None, c0:c1]
                d_im = a_im[r0:r1, None] - t_im[None, c0:c1]
                out[r0:r1, c0:c1] = d_re.mul_(d_re).addcmul_(d_im, d_im).add_(_EPS).sqrt_().sum(-1)
        ctx.save_for_backward(a_re, a_im, t_re, t_im)
        ctx.blocks = (rows, cols)
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        a_re, a_im, t_re, t_im = ctx.saved_tensors
        rows, cols = ctx.blocks
        g_a_re, g_a_im = torch.zeros_like(a_re), torch.zeros_like(a_im)
        g_t_re, g_t_im = torch.zeros_like(t_re), torch.zeros_like(t_im)
        for r0, r1 in _blocks(a_re.shape[0], rows):
            for c0, c1 in _blocks(t_re.shape[0], cols):
                d_re = a_re[r0:r1, None] - t_re[None, c0:c1]
                d_im = a_im[r0:r1, None] - t_im[None, c0:c1]
                w = (d_re * d_re).addcmul_(d_im, d_im).add_(_EPS).rsqrt_().mul_(grad[r0:r1, c0:c1, None])
                d_re.mul_(w)
                d_im.mul_(w)
                g_a_re[r0:r1] += d_re.sum(1)
                g_a_im[r0:r1] += d_im.sum(1)
                g_t_re[c0:c1] -= d_re.sum(0)
                g_t_im[c0:c1] -= d_im.sum(0)
        return g_a_re, g_a_im, g_t_re, g_t_im, None


def rotate_distance(
    a_re: torch.Tensor, a_im: torch.Tensor, t_re: torch.Tensor, t_im: torch.Tensor, *, block_elements: int
) -> torch.Tensor:
    """``D[b, e] = sum_i |a_bi - t_ei|`` with complex ``a = a_re + i a_im`` ``(B, k)`` and ``t`` ``(E, k)``.

    :param block_elements: ``rows * entities * k`` per block (cache-sized).
    :return: shape ``(B, E)``.
    """
    return _RotateDistance.apply(a_re, a_im, t_re, t_im, block_elements)


class _PairDistance(torch.autograd.Function):
    """``D[b, e] = sum_i |a_bi - s_bi t_ei|`` in cache-sized blocks, with a closed-form backward that recomputes
    each block (with ``g = sign(a_bi - s_bi t_ei)``: ``dD/da_bi = g``, ``dD/ds_bi = -g t_ei``, ``dD/dt_ei = -g s_bi``);
    no ``(B, E, d)`` tensor and no autograd graph per block is kept."""

    @staticmethod
    def forward(ctx, a, s, t, block_elements):  # type: ignore[override]
        b, k = a.shape
        rows = min(b, 32)
        cols = max(1, block_elements // (rows * k))
        out = a.new_empty(b, t.shape[0])
        for r0, r1 in _blocks(b, rows):
            for c0, c1 in _blocks(t.shape[0], cols):
                d = a[r0:r1, None] - s[r0:r1, None] * t[None, c0:c1]
                out[r0:r1, c0:c1] = d.abs_().sum(-1)
        ctx.save_for_backward(a, s, t)
        ctx.blocks = (rows, cols)
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        a, s, t = ctx.saved_tensors
        rows, cols = ctx.blocks
        g_a, g_s, g_t = torch.zeros_like(a), torch.zeros_like(s), torch.zeros_like(t)
        for r0, r1 in _blocks(a.shape[0], rows):
            for c0, c1 in _blocks(t.shape[0], cols):
                g = (a[r0:r1, None] - s[r0:r1, None] * t[None, c0:c1]).sign_().mul_(grad[r0:r1, c0:c1, None])
                g_a[r0:r1] += g.sum(1)
                g_s[r0:r1] -= (g * t[None, c0:c1]).sum(1)
                g_t[c0:c1] -= (g * s[r0:r1, None]).sum(0)
        return g_a, g_s, g_t, None


def pair_distance_reference(a: torch.Tensor, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``D[b, e] = sum_i |a_bi - s_bi t_ei|`` as one broadcast expression: ``(B, E, d)`` in plain PyTorch (what
    :func:`pair_distance` compiles; run as it is, only for small inputs)."""
    return (a[:, None, :] - s[:, None, :] * t[None, :, :]).abs().sum(-1)


def pair_distance(a: torch.Tensor, s: torch.Tensor, t: torch.Tensor, *, block_elements: int) -> torch.Tensor:
    """``D[b, e] = sum_i |a_bi - s_bi t_ei|`` for ``a, s`` ``(B, d)`` and ``t`` ``(E, d)``: compiled where
    :func:`~.compiled.compiled_kernels` says so, else blocked (``block_elements`` = ``rows * entities * d`` per
    block).

    :return: shape ``(B, E)``.
    """
    return run_compiled(
        "the PairRE distance",
        pair_distance_reference,
        a,
        s,
        t,
        fallback=lambda: _PairDistance.apply(a, s, t, block_elements),
    )
