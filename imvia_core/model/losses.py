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

Loss values use ``log(max(sigmoid(s), 1e-30))``, exact for scores above -69 (the gradients are exact everywhere
the clamps are inactive). :func:`one_to_n_bce_reference` is the plain autograd version the tests compare against.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from imvia_core.model._utils import float32_region

__all__ = ["one_to_n_bce", "one_to_n_bce_reference"]

_TINY = 1e-30


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
            ys = targets[r0:r1].to(dt)
            if label_smoothing:
                ys = ys.mul(1.0 - label_smoothing).add_(label_smoothing / e)
            sigs, signs = [], []
            for m, s_full in enumerate(logits):
                s = s_full[r0:r1].detach().to(dt)
                sig = torch.sigmoid(s)
                sign = torch.sigmoid(s.neg())
                bce = torch.lerp(sign.clamp_min(_TINY).log_(), sig.clamp_min(_TINY).log_(), ys)
                terms[m] -= bce.sum(dtype=torch.float64)
                torch.sub(sig, ys, out=grads[m][r0:r1])
                if fused:
                    sigs.append(sig)
                    signs.append(sign)
            if not fused:
                continue
            bw = beta[r0:r1]
            p = sigs[0] * bw[:, 0:1]
            q = signs[0] * bw[:, 0:1]
            for m in range(1, m_count):
                p.addcmul_(sigs[m], bw[:, m : m + 1])
                q.addcmul_(signs[m], bw[:, m : m + 1])
            p.clamp_min_(_TINY)
            q.clamp_min_(_TINY)
            terms[m_count] -= torch.lerp(q.log(), p.log(), ys).sum(dtype=torch.float64)
            a = ys / p  # y / p
            c = torch.rsub(ys, 1.0).div_(q)  # (1 - y) / (1 - p)
            diff = a - c
            for m in range(m_count):
                t = sigs[m] * signs[m]
                t.mul_(diff)
                grads[m][r0:r1].addcmul_(t, bw[:, m : m + 1], value=-1.0)
                dot = torch.bmm(sigs[m].unsqueeze(1), a.unsqueeze(2)).view(-1)
                dot += torch.bmm(signs[m].unsqueeze(1), c.unsqueeze(2)).view(-1)
                grad_lw[r0:r1, m] = -bw[:, m] * dot
        terms /= float(b * e)
        ctx.save_for_backward(*grads, *([grad_lw] if fused else []))
        ctx.fused = fused
        ctx.scale = 1.0 / float(b * e)
        ctx.logit_dtypes = [s.dtype for s in logits]
        ctx.lw_dtype = log_weights.dtype if fused else None
        total = terms.sum().to(dt)
        terms = terms.to(dt)
        ctx.mark_non_differentiable(terms)
        return total, terms

    @staticmethod
    def backward(ctx, grad_total, _grad_terms):  # type: ignore[override]
        saved = ctx.saved_tensors
        m_count = len(ctx.logit_dtypes)
        scale = grad_total * ctx.scale
        grad_logits = [(saved[m] * scale).to(ctx.logit_dtypes[m]) for m in range(m_count)]
        grad_lw = (saved[m_count] * scale).to(ctx.lw_dtype) if ctx.fused else None
        return (None, grad_lw, None, None, *grad_logits)


def one_to_n_bce(
    logits: Sequence[torch.Tensor],
    targets: torch.Tensor,
    *,
    label_smoothing: float = 0.0,
    log_weights: torch.Tensor | None = None,
    chunk_rows: int = 32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of the branch BCEs and, with ``log_weights``, the BCE of the fused probability.

    :param logits: ``M`` tensors ``(B, E)`` (any float dtype).
    :param targets: ``(B, E)`` in {0, 1}.
    :param label_smoothing: TuckER's ``eps``.
    :param log_weights: ``(B, M)`` ``log beta`` of the decision fusion, or ``None`` for no fused term.
    :param chunk_rows: rows per cache-sized chunk.
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
    return _OneToNBCE.apply(targets, log_weights, float(label_smoothing), int(chunk_rows), *logits)


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
