"""Joint embedding and relation-aware gated decision fusion (paper section C, equation after Eq. 5).

Joint embedding over the modalities ``m`` present for an entity::

    e_J = sum_m softmax_m( w_m . P_m(e_m) ) P_m(e_m)

with one linear projection ``P_m`` (d -> d) and one attention vector ``w_m`` per modality. Modalities an entity lacks
(no image, no text) are masked out of the softmax; an entity lacking all of them gets a zero vector.

Decision fusion: the final plausibility is ``p = sum_m beta_m(r) sigmoid(S_m)`` with
``beta(r) = softmax(W_beta e_r)`` over the active branches (or the uniform average, the ablation).
:func:`fused_logit` returns ``logit(p)``: it ranks like ``p`` but does not saturate at 1 in float32 (which would
create ties among the top-ranked entities).
The training loss on ``p`` is in :mod:`.kernels.bce`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from imvia_core.errors import ConfigError
from imvia_core.layout import is_entity_major
from imvia_core.model._utils import float32_region, masked_softmax, upcast
from imvia_core.model.kernels.bce import resolve_chunk_rows
from imvia_core.model.kernels.compiled import run_compiled

__all__ = [
    "DECISION_FUSION_MODES",
    "JointEmbedding",
    "JointOutput",
    "RelationAwareDecisionFusion",
    "fused_logit",
    "fused_logit_single_pass",
]


@dataclass
class JointOutput:
    """Joint embedding of ``N`` entities.

    :param embedding: shape ``(N, d)``.
    :param weights: shape ``(N, M)``: attention over :attr:`modalities`, zero where a modality is missing.
    :param modalities: names in the column order of ``weights``.
    """

    embedding: torch.Tensor
    weights: torch.Tensor
    modalities: tuple[str, ...]


class JointEmbedding(nn.Module):
    """Attention-weighted sum of projected modality embeddings.

    :param modalities: names of the modalities that take part (e.g. ``("S", "V", "T")``).
    :param dim: dim of each modality embedding and of the result.
    """

    def __init__(self, *, modalities: Sequence[str], dim: int) -> None:
        super().__init__()
        if not modalities:
            raise ConfigError("joint embedding: found no modality; expected at least one of S, V, T")
        self.modalities = tuple(modalities)
        self.projections = nn.ModuleDict({m: nn.Linear(dim, dim) for m in self.modalities})
        self.attention = nn.ModuleDict({m: nn.Linear(dim, 1, bias=False) for m in self.modalities})

    def forward(
        self, embeddings: Mapping[str, torch.Tensor], present: Mapping[str, torch.Tensor] | None = None
    ) -> JointOutput:
        """:param embeddings: name -> ``(N, d)``. :param present: name -> ``(N,)`` bool (missing: all present)."""
        projected = [self.projections[m](embeddings[m]) for m in self.modalities]
        stacked = torch.stack(projected, dim=1)  # (N, M, d)
        scores = torch.cat([self.attention[m](p) for m, p in zip(self.modalities, projected)], dim=1)  # (N, M)
        n = stacked.shape[0]
        masks = []
        for m in self.modalities:
            if present is not None and m in present:
                masks.append(present[m])
            else:
                masks.append(torch.ones(n, dtype=torch.bool, device=stacked.device))
        mask = torch.stack(masks, dim=1)
        with float32_region(stacked.device):
            weights = masked_softmax(upcast(scores), mask, dim=1)
        joint = torch.bmm(weights.to(stacked.dtype).unsqueeze(1), stacked).squeeze(1)
        return JointOutput(embedding=joint, weights=weights, modalities=self.modalities)


#: values of ``decision_fusion``: ``"gated"`` the relation-aware ``beta(r)`` (paper), ``"uniform"`` the average,
#: ``"global"`` one learned weight per branch shared by every relation (what the gate gains by depending on ``r``)
DECISION_FUSION_MODES: tuple[str, ...] = ("gated", "uniform", "global")


class RelationAwareDecisionFusion(nn.Module):
    """``beta(r) = softmax(W_beta e_r)`` over the branches, uniform weights, or ``beta = softmax(w)`` with one
    learned logit per branch (``"global"``: started at uniform weights; the same for every relation).

    :param branches: branch names, in the column order of the weights.
    :param relation_dim: dim of the relation embedding fed to the gate.
    :param mode: ``"gated"`` (paper), ``"uniform"`` or ``"global"`` (ablations).
    """

    def __init__(self, *, branches: Sequence[str], relation_dim: int, mode: str = "gated") -> None:
        super().__init__()
        if mode not in DECISION_FUSION_MODES:
            raise ConfigError(f"decision_fusion: found {mode!r}; expected one of {DECISION_FUSION_MODES}")
        if not branches:
            raise ConfigError("decision fusion: found no branch; expected at least one")
        self.branches = tuple(branches)
        self.mode = mode
        self.gate = nn.Linear(relation_dim, len(self.branches)) if mode == "gated" else None
        self.branch_logits = nn.Parameter(torch.zeros(len(self.branches))) if mode == "global" else None

    def log_weights(self, relation_emb: torch.Tensor) -> torch.Tensor:
        """``log beta(r)``, shape ``(B, M)`` in float32.

        :param relation_emb: shape ``(B, relation_dim)``.
        """
        b = relation_emb.shape[0]
        if self.branch_logits is not None:
            with float32_region(relation_emb.device):
                return F.log_softmax(upcast(self.branch_logits), dim=-1).expand(b, -1)
        if self.gate is None:
            n = len(self.branches)
            return torch.full((b, n), -math.log(n), dtype=torch.float32, device=relation_emb.device)
        logits = self.gate(relation_emb)
        with float32_region(relation_emb.device):
            return F.log_softmax(upcast(logits), dim=-1)

    def weights(self, relation_emb: torch.Tensor) -> torch.Tensor:
        """``beta(r)``, shape ``(B, M)``; rows sum to 1."""
        return self.log_weights(relation_emb).exp()


def fused_logit_single_pass(beta: torch.Tensor, *logits: torch.Tensor) -> torch.Tensor:
    """:func:`fused_logit` as one expression, with one ``exp`` per branch score (what evaluation compiles).

    With ``e = exp(-|S|)`` and ``r = 1 / (1 + e)``: ``sigmoid(S) = r`` and ``sigmoid(-S) = e r`` for ``S >= 0``, and
    the other way round for ``S < 0``; both ends stay precise as in :func:`fused_logit`, which computes the two
    sigmoids separately (two ``exp``). Equal to it up to float rounding.

    :param beta: ``(B, M)`` branch weights (not their logarithms). :param logits: ``M`` tensors ``(B, E)``.
    """
    p = q = None
    for m, s in enumerate(logits):
        w = beta[:, m : m + 1]
        e = torch.exp(-s.abs())
        r = 1.0 / (1.0 + e)
        positive = s >= 0
        upper, lower = torch.where(positive, r, e * r) * w, torch.where(positive, e * r, r) * w
        p, q = (upper, lower) if p is None else (p + upper, q + lower)
    return torch.log(p.clamp_min(1e-30) / q.clamp_min(1e-30))


def fused_logit(
    logits: Sequence[torch.Tensor], log_weights: torch.Tensor, *, chunk_rows: int | None = None
) -> torch.Tensor:
    """``logit(p) = log(p / (1 - p))`` of ``p = sum_m beta_m sigmoid(S_m)`` (float32 or float64).

    ``1 - p`` is computed as ``sum_m beta_m sigmoid(-S_m)``, so both ends are precise: near ``p = 1`` the score is
    resolved by ``1 - p`` (where ``p`` itself rounds to 1 in float32), near ``p = 0`` by ``p``. Monotone in ``p``,
    so it ranks exactly as the fused probability. ``p`` and ``1 - p`` are clamped at ``1e-30``.

    The element-wise work over ``(B, E)`` tensors is memory-bound: it runs in cache-sized chunks of the memory's
    outer dimension and writes into one output. When every ``S_m`` is entity-major (a transposed view, as
    :meth:`~imvia_core.model.tucker.TuckerScorer.logits` returns without autograd on a CPU) the chunks are blocks of
    entities and the result has the same layout. With ``IMVIA_COMPILE_KERNELS=1``, without autograd (evaluation) and
    in float32, the whole expression is instead one compiled pass with one ``exp`` per score
    (:func:`fused_logit_single_pass`, :mod:`.kernels.compiled`): the same values up to float rounding; at DB15K size
    (2048 queries, 12842 entities, four branches, one thread) 106 ms against 275 ms for the chunked form. It is not
    the default because rounding can reorder entities whose scores differ by about 1e-6, and the committed results
    were ranked with the chunked form.

    :param logits: ``M`` tensors of shape ``(B, E)``: the branch scores ``S_m``.
    :param log_weights: shape ``(B, M)``: ``log beta``.
    :param chunk_rows: rows of ``(B, E)`` per chunk, or the same number of elements in entity blocks (default:
        :func:`~.kernels.bce.resolve_chunk_rows`: cache-sized on a CPU, everything at once on an accelerator).
    :return: shape ``(B, E)``.
    """
    b = log_weights.shape[0]
    chunk_rows = resolve_chunk_rows(chunk_rows, log_weights.device, b)
    with float32_region(log_weights.device):
        values = [upcast(s) for s in logits]
        dtype = values[0].dtype
        beta = upcast(log_weights).exp().to(dtype)
        if dtype == torch.float32 and not (torch.is_grad_enabled() and any(v.requires_grad for v in values)):
            # evaluation: one compiled pass over the scores on request (IMVIA_COMPILE_KERNELS=1; kernels.compiled)
            return run_compiled(
                "the fused logit",
                fused_logit_single_pass,
                beta,
                *values,
                fallback=lambda: _fused_logit_chunked(values, beta, chunk_rows),
                by_default=False,
            )
        return _fused_logit_chunked(values, beta, chunk_rows)


def _fused_logit_chunked(values: Sequence[torch.Tensor], beta: torch.Tensor, chunk_rows: int) -> torch.Tensor:
    """The eager form of :func:`fused_logit`: element-wise work in cache-sized chunks, written into one output."""
    dtype = values[0].dtype
    with float32_region(beta.device):
        transposed = all(is_entity_major(v) for v in values)
        if transposed:
            # work on the (E, B) memory: weights broadcast along rows, chunks are blocks of entities
            values = [v.t() for v in values]
            beta = beta.t()
            weight = [beta[m : m + 1] for m in range(len(values))]  # (1, B)
            num_cols = max(1, values[0].shape[1])
            chunk = max(1, chunk_rows * values[0].shape[0] // num_cols)
        else:
            weight = [beta[:, m : m + 1] for m in range(len(values))]  # (B, 1)
            chunk = chunk_rows
        rows = values[0].shape[0]
        out = torch.empty(values[0].shape, dtype=dtype, device=beta.device)
        for r0 in range(0, rows, chunk):
            r1 = min(rows, r0 + chunk)
            p = q = None
            for s, w in zip(values, weight):
                s = s[r0:r1]
                w = w if transposed else w[r0:r1]
                if p is None:
                    p, q = torch.sigmoid(s).mul_(w), torch.sigmoid(s.neg()).mul_(w)
                else:
                    p.addcmul_(torch.sigmoid(s), w)
                    q.addcmul_(torch.sigmoid(s.neg()), w)
            torch.log(p.clamp_min_(1e-30).div_(q.clamp_min_(1e-30)), out=out[r0:r1])
    return out.t() if transposed else out
