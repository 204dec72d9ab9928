"""The memory layout of a ``(B, E)`` score matrix, shared by the scorers (model) and the ranker (evaluation).

Scores computed without autograd on a CPU are entity-major: the transpose of a contiguous ``(E, B)`` product, which
the CPU's GEMM computes faster. Both the model that produces them and the evaluation that ranks them ask here.
"""

from __future__ import annotations

import torch

__all__ = ["is_entity_major", "prefer_entity_major"]


def prefer_entity_major(device: torch.device) -> bool:
    """Whether scores without autograd should be computed entity-major (:meth:`~imvia_core.model.TuckerScorer.logits`).

    On the development CPU (MKL, 2 threads), ``(E, d) @ (d, B)`` ran at 170 GFLOP/s where ``(B, d) @ (d, E)`` ran at
    90 to 110 (``E = 12842``, ``d = 256``, ``B = 512``). The evaluation's element-wise work and ranking read either
    layout (:func:`~imvia_core.model.joint.fused_logit`, :func:`~imvia_core.evaluation.ranks.compute_ranks`).
    Under autograd (the unfused training path) and on accelerators scores stay row-major.
    """
    return device.type == "cpu" and not torch.is_grad_enabled()


def is_entity_major(scores: torch.Tensor) -> bool:
    """Whether ``(B, E)`` scores are entity-major: the transpose of a contiguous ``(E, B)`` tensor, as
    :meth:`~imvia_core.model.tucker.TuckerScorer.logits` returns them when :func:`prefer_entity_major` holds."""
    return scores.dim() == 2 and scores.shape[0] > 1 and scores.stride(0) == 1 and scores.stride(1) == scores.shape[0]
