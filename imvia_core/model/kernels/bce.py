"""1-N binary cross-entropy of several score branches and of their fused probability (paper Eq. 7), in one pass.

For branch logits ``S_m`` ``(B, E)``, targets ``y`` smoothed as in TuckER (``(1 - eps) y + eps / E``) and decision
weights ``beta`` ``(B, M)`` (rows sum to 1)::

    L = sum_m BCE(sigmoid(S_m), y) + BCE(p, y),    p = sum_m beta_m sigmoid(S_m)

each BCE a mean over the ``B * E`` entries (all non-positive entities are negatives). ``1 - p`` is computed as
``sum_m beta_m sigmoid(-S_m)`` (no cancellation near 1) and both ``p`` and ``1 - p`` are clamped at ``1e-30``.

Why a hand-written autograd function: the loss is a chain of element-wise operations over ``M`` tensors of
``B x E`` entries (13 M entries per branch at DB15K size). Run one operation at a time over whole tensors, each
pass streams from main memory; on the development CPU this took as long as the scoring matmuls. Here the rows are
processed in small chunks that stay in cache, and the gradient is formed in the same pass (closed form below) and
kept for the backward call:

* ``dBCE_m / dS_m = (sigmoid(S_m) - y) / N``
* ``dBCE_fused / dS_m = -beta_m sigmoid(S_m) sigmoid(-S_m) (y / p - (1 - y) / (1 - p)) / N``
* ``dBCE_fused / dlog beta_m = -beta_m sum_e (y sigmoid(S_m) / p + (1 - y) sigmoid(-S_m) / (1 - p)) / N``

A branch's BCE is computed as ``log sigmoid(-S) + y S`` (the same sum, one logarithm instead of two), with
``log(max(sigmoid(-S), 1e-30))``: exact for scores below 69 (the gradients are exact everywhere the clamps are
inactive). The fused BCE uses ``log(max(p, 1e-30))`` and ``log(max(1 - p, 1e-30))``.

:func:`one_to_n_bce_linear` goes one step further for logits of the form ``S_m = q_m T_m^T + b_m`` (every Tucker
branch): it computes the logits of a block of rows, the loss and ``dL/dS`` on that block, and turns the block's
``dL/dS`` into ``dL/dq``, ``dL/dT`` and ``dL/db`` at once, so that no ``(B, E)`` matrix outlives its block. The
matmul FLOPs are those of scoring plus autograd; the memory is a few ``(128, E)`` blocks per branch.

:func:`one_to_n_bce_reference` is the plain autograd version the tests compare against.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from imvia_core.layout import prefer_entity_major
from imvia_core.model._utils import float32_region

__all__ = ["one_to_n_bce", "one_to_n_bce_linear", "one_to_n_bce_reference", "resolve_chunk_rows"]

_TINY = 1e-30

#: rows per chunk on a CPU, where a chunk of every branch should stay in cache
CPU_CHUNK_ROWS = 32
#: rows per scoring block of :func:`one_to_n_bce_linear` on a CPU (a multiple of the chunk)
SCORING_BLOCK_ROWS = 128


def resolve_chunk_rows(chunk_rows: int | None, device: torch.device, rows: int) -> int:
    """``chunk_rows``, or by default :data:`CPU_CHUNK_ROWS` on a CPU and the whole batch on an accelerator.

    On a GPU the element-wise work is bound by kernel launches, not by cache: one chunk (a few ``(B, E)``
    temporaries per branch, a few hundred MB at DB15K size) keeps the launches per step to a few dozen.
    """
    if chunk_rows is not None:
        return max(1, int(chunk_rows))
    return CPU_CHUNK_ROWS if device.type == "cpu" else max(1, rows)


def _smoothed(targets: torch.Tensor, dt: torch.dtype, label_smoothing: float) -> torch.Tensor:
    ys = targets.to(dt)
    if label_smoothing:
        ys = ys.mul(1.0 - label_smoothing).add_(label_smoothing / targets.shape[-1])
    return ys


def _chunk_terms(
    ys: torch.Tensor,
    scores: Sequence[torch.Tensor],
    bw: torch.Tensor | None,
    terms: torch.Tensor,
    grads: Sequence[torch.Tensor],
    grad_lw: torch.Tensor | None,
) -> None:
    """Loss and closed-form gradients of a chunk of rows (see the module docstring).

    Adds each branch's BCE sum (and the fused one) into ``terms`` ``(M + 1,)``, writes ``dL/dS_m`` (not yet divided
    by ``N``) into ``grads[m]`` and, with decision weights ``bw`` (the chunk's ``beta``), ``dL/dlog beta`` into
    ``grad_lw``.
    """
    sigs, signs = [], []
    flat_ys = ys.reshape(-1)
    for m, s in enumerate(scores):
        sig = torch.sigmoid(s)
        sign = torch.sigmoid(s.neg())
        # y log sigmoid(s) + (1 - y) log sigmoid(-s) = log sigmoid(-s) + y s: one log and a dot product
        log_sign_sum = sign.clamp_min(_TINY).log().sum(dtype=terms.dtype if s.dtype == torch.float64 else None)
        terms[m] -= log_sign_sum + torch.dot(flat_ys, s.reshape(-1))
        torch.sub(sig, ys, out=grads[m])
        if bw is not None:
            sigs.append(sig)
            signs.append(sign)
    if bw is None:
        return
    m_count = len(scores)
    p = sigs[0] * bw[:, 0:1]
    q = signs[0] * bw[:, 0:1]
    for m in range(1, m_count):
        p.addcmul_(sigs[m], bw[:, m : m + 1])
        q.addcmul_(signs[m], bw[:, m : m + 1])
    p.clamp_min_(_TINY)
    q.clamp_min_(_TINY)
    terms[m_count] -= torch.lerp(q.log(), p.log(), ys).sum()
    a = ys / p  # y / p
    c = torch.rsub(ys, 1.0).div_(q)  # (1 - y) / (1 - p)
    diff = a - c
    for m in range(m_count):
        t = sigs[m] * signs[m]
        t.mul_(diff)
        grads[m].addcmul_(t, bw[:, m : m + 1], value=-1.0)
        dot = torch.bmm(sigs[m].unsqueeze(1), a.unsqueeze(2)).view(-1)
        dot += torch.bmm(signs[m].unsqueeze(1), c.unsqueeze(2)).view(-1)
        grad_lw[:, m] = -bw[:, m] * dot


def _finish_forward(
    ctx: Any,
    terms: torch.Tensor,
    count: int,
    dt: torch.dtype,
    saved: Sequence[torch.Tensor],
    log_weights: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shared end of both forwards: mean the loss sums, keep the precomputed gradients for backward."""
    terms /= float(count)
    ctx.save_for_backward(*saved)
    ctx.scale = 1.0 / float(count)
    ctx.lw_dtype = log_weights.dtype if log_weights is not None else None
    total = terms.sum().to(dt)
    terms = terms.to(dt)
    ctx.mark_non_differentiable(terms)
    return total, terms


class _OneToNBCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, targets, log_weights, label_smoothing, chunk_rows, *logits):  # type: ignore[override]
        with float32_region(targets.device):
            return _OneToNBCE._forward(ctx, targets, log_weights, label_smoothing, chunk_rows, logits)

    @staticmethod
    def _forward(ctx, targets, log_weights, label_smoothing, chunk_rows, logits):
        b, e = targets.shape
        dt = torch.float64 if any(s.dtype == torch.float64 for s in logits) else torch.float32
        m_count = len(logits)
        device = targets.device
        fused = log_weights is not None
        grads = [torch.empty(b, e, dtype=dt, device=device) for _ in range(m_count)]
        terms = torch.zeros(m_count + 1, dtype=torch.float64, device=device)
        grad_lw = torch.zeros(b, m_count, dtype=dt, device=device) if fused else None
        beta = log_weights.detach().to(dt).exp() if fused else None
        for r0 in range(0, b, chunk_rows):
            r1 = min(b, r0 + chunk_rows)
            _chunk_terms(
                _smoothed(targets[r0:r1], dt, label_smoothing),
                [s[r0:r1].detach().to(dt) for s in logits],
                beta[r0:r1] if fused else None,
                terms,
                [g[r0:r1] for g in grads],
                grad_lw[r0:r1] if fused else None,
            )
        ctx.logit_dtypes = [s.dtype for s in logits]
        return _finish_forward(ctx, terms, b * e, dt, [*grads, *([grad_lw] if fused else [])], log_weights)

    @staticmethod
    def backward(ctx, grad_total, _grad_terms):  # type: ignore[override]
        saved = ctx.saved_tensors
        m_count = len(ctx.logit_dtypes)
        scale = grad_total * ctx.scale
        grad_logits = [(saved[m] * scale).to(ctx.logit_dtypes[m]) for m in range(m_count)]
        grad_lw = (saved[m_count] * scale).to(ctx.lw_dtype) if ctx.lw_dtype is not None else None
        return (None, grad_lw, None, None, *grad_logits)


def _autocast_gemm_dtype(device: torch.device) -> torch.dtype | None:
    """bfloat16 where CPU autocast to bfloat16 is active (the fused loss then runs its GEMMs in it; CUDA as before)."""
    kind = device.type
    if kind == "cpu" and torch.is_autocast_enabled(kind) and torch.get_autocast_dtype(kind) == torch.bfloat16:
        return torch.bfloat16
    return None


def _accumulators(b: int, m_count: int, dt: torch.dtype, device: torch.device, log_weights: torch.Tensor | None):
    """``grad_b`` ``(M,)`` and ``terms`` ``(M + 1,)`` in float64; ``dL/dlog beta`` ``(B, M)`` and ``beta`` in ``dt``
    (both ``None`` without ``log_weights``)."""
    fused = log_weights is not None
    grad_b = torch.zeros(m_count, dtype=torch.float64, device=device)
    terms = torch.zeros(m_count + 1, dtype=torch.float64, device=device)
    grad_lw = torch.zeros(b, m_count, dtype=dt, device=device) if fused else None
    beta = log_weights.detach().to(dt).exp() if fused else None
    return grad_b, terms, grad_lw, beta


def _block_rows(chunk_rows: int) -> tuple[int, int]:
    """Rows per chunk of the element-wise work, and rows per scoring matmul (wide enough for a fast GEMM)."""
    rows = max(1, chunk_rows)
    return rows, rows * max(1, SCORING_BLOCK_ROWS // rows)


def _block_terms(targets, k0, k1, rows, dt, label_smoothing, scores, beta, terms, grad_lw) -> None:
    """The loss terms and ``dL/dS`` of rows ``k0..k1``, whose scores fill the first rows of ``scores`` (one
    ``(block, E)`` buffer per branch), chunk by chunk. ``dL/dS`` overwrites the scores: :func:`_chunk_terms`
    reads each branch's scores once, into the sigmoids, before it writes that branch's gradient."""
    for r0 in range(k0, k1, rows):
        r1 = min(k1, r0 + rows)
        _chunk_terms(
            _smoothed(targets[r0:r1], dt, label_smoothing),
            [sc[r0 - k0 : r1 - k0] for sc in scores],
            beta[r0:r1] if beta is not None else None,
            terms,
            [g[r0 - k0 : r1 - k0] for g in scores],
            grad_lw[r0:r1] if grad_lw is not None else None,
        )


class _OneToNBCELinear(torch.autograd.Function):
    """:func:`one_to_n_bce` of ``S_m = q_m T_m^T + b_m``, never holding a whole ``(B, E)`` matrix."""

    @staticmethod
    def forward(ctx, targets, log_weights, label_smoothing, chunk_rows, m_count, *parts):  # type: ignore[override]
        gemm_dtype = _autocast_gemm_dtype(targets.device)  # read before the float32 region turns autocast off
        with float32_region(targets.device):
            return _OneToNBCELinear._forward(
                ctx, targets, log_weights, label_smoothing, chunk_rows, m_count, parts, gemm_dtype
            )

    @staticmethod
    def _forward(ctx, targets, log_weights, label_smoothing, chunk_rows, m_count, parts, gemm_dtype=None):
        queries, tables, biases = parts[:m_count], parts[m_count : 2 * m_count], parts[2 * m_count :]
        b, e = targets.shape
        dt = torch.float64 if any(q.dtype == torch.float64 for q in queries) else torch.float32
        if gemm_dtype is not None and dt == torch.float32:
            return _OneToNBCELinear._forward_low(
                ctx, targets, log_weights, label_smoothing, chunk_rows, m_count, parts, gemm_dtype
            )
        device = targets.device
        fused = log_weights is not None
        qs = [q.detach().to(dt) for q in queries]
        ts = [t.detach().to(dt) for t in tables]
        bs = [bias.detach().to(dt) for bias in biases]
        grad_q = [torch.empty_like(q) for q in qs]
        grad_t = [torch.zeros_like(t) for t in ts]
        grad_b, terms, grad_lw, beta = _accumulators(b, m_count, dt, device, log_weights)
        rows, block = _block_rows(chunk_rows)
        scores = [torch.empty(min(block, b), e, dtype=dt, device=device) for _ in range(m_count)]
        # where the entity-major GEMM is the faster one (prefer_entity_major: a CPU; this forward runs without
        # autograd), it plus a transposing copy beats the (n, d) x (d, E) GEMM with the same values, bit for bit:
        # 7.0 against 9.2 ms for 128 rows at DB15K size on the development machine
        entity_major = torch.empty(e * min(block, b), dtype=dt, device=device) if prefer_entity_major(device) else None
        # dL/dS of a row chunk overwrites its scores (_block_terms)
        grads = scores
        for k0 in range(0, b, block):
            k1 = min(b, k0 + block)
            n = k1 - k0
            for m in range(m_count):
                if entity_major is not None:
                    by_entity = torch.addmm(bs[m], ts[m], qs[m][k0:k1].t(), out=entity_major[: e * n].view(e, n))
                    scores[m][:n].copy_(by_entity.t())
                else:
                    torch.addmm(bs[m], qs[m][k0:k1], ts[m].t(), out=scores[m][:n])
            _block_terms(targets, k0, k1, rows, dt, label_smoothing, scores, beta, terms, grad_lw)
            for m in range(m_count):
                g = grads[m][:n]
                torch.mm(g, ts[m], out=grad_q[m][k0:k1])
                grad_t[m].addmm_(g.t(), qs[m][k0:k1])
                grad_b[m] += g.sum()  # float32 block sums (a float64 sum converts the block first)
        ctx.dtypes = [p.dtype for p in parts]
        saved = [*grad_q, *grad_t, grad_b, *([grad_lw] if fused else [])]
        return _finish_forward(ctx, terms, b * e, dt, saved, log_weights)

    @staticmethod
    def _forward_low(ctx, targets, log_weights, label_smoothing, chunk_rows, m_count, parts, gemm_dtype):
        """The same loss with the three GEMMs of every block in ``gemm_dtype`` (bf16 autocast): scores, ``dL/dq``
        and ``dL/dT`` take ``gemm_dtype`` inputs; the bias, the element-wise loss, its gradient and the sums over
        blocks stay float32. Row-major GEMMs on every device (no entity-major copy: the output is converted anyway).
        """
        queries, tables, biases = parts[:m_count], parts[m_count : 2 * m_count], parts[2 * m_count :]
        b, e = targets.shape
        dt, low, device = torch.float32, gemm_dtype, targets.device
        fused = log_weights is not None
        qs = [q.detach().to(low) for q in queries]
        ts = [t.detach().to(low) for t in tables]
        bs = [bias.detach().to(dt) for bias in biases]
        grad_q = [torch.empty(q.shape, dtype=dt, device=device) for q in qs]
        grad_t = [torch.zeros(t.shape, dtype=dt, device=device) for t in ts]
        grad_b, terms, grad_lw, beta = _accumulators(b, m_count, dt, device, log_weights)
        rows, block = _block_rows(chunk_rows)
        scores = [torch.empty(min(block, b), e, dtype=dt, device=device) for _ in range(m_count)]
        low_block = torch.empty(min(block, b), e, dtype=low, device=device)
        for k0 in range(0, b, block):
            k1 = min(b, k0 + block)
            n = k1 - k0
            for m in range(m_count):
                torch.mm(qs[m][k0:k1], ts[m].t(), out=low_block[:n])
                torch.add(low_block[:n], bs[m], out=scores[m][:n])  # the bias in float32
            _block_terms(targets, k0, k1, rows, dt, label_smoothing, scores, beta, terms, grad_lw)
            for m in range(m_count):
                g = scores[m][:n]
                grad_b[m] += g.sum()
                g_low = low_block[:n].copy_(g)
                grad_q[m][k0:k1].copy_(torch.mm(g_low, ts[m]))
                grad_t[m].add_(torch.mm(g_low.t(), qs[m][k0:k1]))
        ctx.dtypes = [p.dtype for p in parts]
        saved = [*grad_q, *grad_t, grad_b, *([grad_lw] if fused else [])]
        return _finish_forward(ctx, terms, b * e, dt, saved, log_weights)

    @staticmethod
    def backward(ctx, grad_total, _grad_terms):  # type: ignore[override]
        saved = ctx.saved_tensors
        m = len(ctx.dtypes) // 3  # queries, tables, biases
        scale = grad_total * ctx.scale
        grad_q = [saved[i] * scale for i in range(m)]
        grad_t = [saved[m + i] * scale for i in range(m)]
        grad_b = [(saved[2 * m][i] * scale).reshape(()) for i in range(m)]
        grads = [g.to(dt) for g, dt in zip(grad_q + grad_t + grad_b, ctx.dtypes)]
        grad_lw = (saved[2 * m + 1] * scale).to(ctx.lw_dtype) if ctx.lw_dtype is not None else None
        return (None, grad_lw, None, None, None, *grads)


def one_to_n_bce_linear(
    queries: Sequence[torch.Tensor],
    tables: Sequence[torch.Tensor],
    biases: Sequence[torch.Tensor],
    targets: torch.Tensor,
    *,
    label_smoothing: float = 0.0,
    log_weights: torch.Tensor | None = None,
    chunk_rows: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`one_to_n_bce` of the logits ``S_m = q_m @ T_m.T + b_m``, fused with their matmuls.

    The same loss and gradients as scoring first and calling :func:`one_to_n_bce`, but rows are scored a block at
    a time (128 rows), the loss and ``dL/dS`` are formed on that block, and ``dL/dq``, ``dL/dT`` and ``dL/db`` are
    accumulated from it at once. No ``(B, E)`` matrix of logits or of their gradient is kept: the working set is
    a few ``(128, E)`` blocks per branch instead of about three ``(B, E)`` matrices per branch.

    :param queries: ``M`` tensors ``(B, d_m)``.
    :param tables: ``M`` candidate tables ``(E, d_m)``.
    :param biases: ``M`` scalars (0-d tensors) added to every logit.
    :param targets: ``(B, E)`` in {0, 1}.
    :param chunk_rows: rows per chunk of the element-wise work (default: :func:`resolve_chunk_rows`); on a CPU the
        scoring blocks are 128 rows, elsewhere they are the chunks.
    :return: as :func:`one_to_n_bce`; the loss is differentiable w.r.t. queries, tables, biases and ``log_weights``.
    """
    m_count = len(queries)
    if not m_count or len(tables) != m_count or len(biases) != m_count:
        raise ValueError("one_to_n_bce_linear needs as many queries, tables and biases, at least one of each")
    b, e = targets.shape
    for q, t, bias in zip(queries, tables, biases):
        if q.dim() != 2 or t.dim() != 2 or q.shape[0] != b or t.shape[0] != e or q.shape[1] != t.shape[1]:
            raise ValueError(f"query {tuple(q.shape)} and table {tuple(t.shape)} do not match targets {(b, e)}")
        if bias.dim() != 0:
            raise ValueError(f"bias must be a scalar tensor, got shape {tuple(bias.shape)}")
    if log_weights is not None and log_weights.shape != (b, m_count):
        raise ValueError(f"log_weights shape {tuple(log_weights.shape)}; expected ({b}, {m_count})")
    rows = resolve_chunk_rows(chunk_rows, targets.device, b)
    return _OneToNBCELinear.apply(
        targets, log_weights, float(label_smoothing), rows, m_count, *queries, *tables, *biases
    )


def one_to_n_bce(
    logits: Sequence[torch.Tensor],
    targets: torch.Tensor,
    *,
    label_smoothing: float = 0.0,
    log_weights: torch.Tensor | None = None,
    chunk_rows: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of the branch BCEs and, with ``log_weights``, the BCE of the fused probability.

    :param logits: ``M`` tensors ``(B, E)`` (any float dtype).
    :param targets: ``(B, E)`` in {0, 1}.
    :param label_smoothing: TuckER's ``eps``.
    :param log_weights: ``(B, M)`` ``log beta`` of the decision fusion, or ``None`` for no fused term.
    :param chunk_rows: rows per chunk (default: :func:`resolve_chunk_rows`).
    :return: the scalar loss (differentiable w.r.t. ``logits`` and ``log_weights``; float32, or float64 for
        float64 logits) and the detached
        terms ``(M + 1,)``: each branch's BCE, then the fused BCE (0 without ``log_weights``).
    """
    if not logits:
        raise ValueError("one_to_n_bce needs at least one branch")
    for s in logits:
        if s.shape != targets.shape:
            raise ValueError(f"logits shape {tuple(s.shape)} does not match targets {tuple(targets.shape)}")
    if log_weights is not None and log_weights.shape != (targets.shape[0], len(logits)):
        raise ValueError(f"log_weights shape {tuple(log_weights.shape)}; expected ({targets.shape[0]}, {len(logits)})")
    rows = resolve_chunk_rows(chunk_rows, targets.device, targets.shape[0])
    return _OneToNBCE.apply(targets, log_weights, float(label_smoothing), rows, *logits)


def one_to_n_bce_reference(
    logits: Sequence[torch.Tensor],
    targets: torch.Tensor,
    *,
    label_smoothing: float = 0.0,
    log_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain autograd version of :func:`one_to_n_bce` (same clamps), for tests."""
    y = targets.to(logits[0].dtype)
    if label_smoothing:
        y = (1.0 - label_smoothing) * y + label_smoothing / y.shape[-1]
    terms = []
    for s in logits:
        lp = torch.log(torch.sigmoid(s).clamp_min(_TINY))
        lq = torch.log(torch.sigmoid(-s).clamp_min(_TINY))
        terms.append(-(y * lp + (1 - y) * lq).mean())
    if log_weights is not None:
        beta = log_weights.exp()
        p = sum(beta[:, m : m + 1] * torch.sigmoid(s) for m, s in enumerate(logits)).clamp_min(_TINY)
        q = sum(beta[:, m : m + 1] * torch.sigmoid(-s) for m, s in enumerate(logits)).clamp_min(_TINY)
        terms.append(-(y * torch.log(p) + (1 - y) * torch.log(q)).mean())
    else:
        terms.append(torch.zeros((), dtype=logits[0].dtype))
    stacked = torch.stack(terms)
    return stacked.sum(), stacked.detach()
